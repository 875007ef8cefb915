"""A responder in the browser: finds a complaint by search, corrects its classification, and answers
a group of near-duplicates at once (each reply through its own channel, on the emulator)."""

from __future__ import annotations

import json

from sqlmodel import select

from bot.emulator.testing import EmulatorAdmin
from bot.models import Correction, Reply, Ticket
from tests.browser.helpers import assert_no_horizontal_scroll, login, shot
from tests.browser.seed import STREETLIGHT, weibo_comments


def test_responder_finds_corrects_and_answers_a_group(live, page, phone) -> None:
    ids = weibo_comments(live.ctx, live.emulator_url, [*STREETLIGHT, "学校门口早上接送孩子的车太多，建议错峰放学"])
    login(page, live, "zhujian")
    page.get_by_role("link", name="工单", exact=True).click()
    page.get_by_role("searchbox", name="查找").fill("路灯")
    page.get_by_role("button", name="查找", exact=True).click()
    page.wait_for_url("**q=**")
    assert "共 3 件" in page.locator("p.summary").inner_text()
    assert page.locator("table.inbox tbody tr").count() == 3
    assert page.get_by_text("相似留言 3 条").count() == 3
    shot(page, "inbox-search-laptop")

    page.locator("table.inbox tbody tr").first.locator("a").first.click()
    page.wait_for_url("**/tickets/*")
    first = int(page.url.rsplit("/", 1)[1])
    assert "系统为什么这样分类" in page.content() and "置信度" not in page.content()
    assert "幸福路路灯维修公告" in page.locator("dl.facts").first.inner_text()  # the article it is under
    page.get_by_text("分类不对？更正诉求或主题").click()
    page.get_by_label("诉求").select_option(label="投诉")
    page.get_by_role("button", name="保存更正").click()
    page.get_by_text("分类已更正").wait_for()

    others = page.locator('input[name="also"]')
    assert others.count() == 2 and all(others.nth(i).is_checked() for i in range(2))
    page.get_by_label("答复内容").first.fill("您好，幸福路路灯已安排本周内修复，感谢反映。")
    shot(page, "ticket-group-answer-laptop")
    page.get_by_role("button", name="发送答复").click()
    page.get_by_text("也已发给 2 条相似留言").wait_for()
    shot(page, "ticket-answered-laptop")

    with live.ctx.session() as s:
        group = [i for i in ids[:3]]
        assert first in group
        assert [s.get(Ticket, i).state for i in group] == ["answered"] * 3
        assert s.get(Ticket, ids[3]).state != "answered"
        replies = s.exec(select(Reply).where(Reply.ticket_id.in_(group))).all()
        assert {(r.channel, r.state) for r in replies} == {("weibo_comment", "sent")} and len(replies) == 3
        correction = s.exec(select(Correction)).one()
        assert correction.intent == "complaint"
    with EmulatorAdmin(live.emulator_url) as admin:
        comments = admin.state()["weibo"]["comments"].values()
        assert sum("本周内修复" in json.dumps(c, ensure_ascii=False) for c in comments) == 3

    login(phone, live, "zhujian")
    phone.goto(f"{live.url}/tickets?state=all&q=路灯")
    assert_no_horizontal_scroll(phone)
    shot(phone, "inbox-phone")
    phone.goto(f"{live.url}/tickets/{first}")
    assert_no_horizontal_scroll(phone)
    shot(phone, "ticket-phone")
