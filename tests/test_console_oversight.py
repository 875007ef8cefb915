"""The 日报 and 报表 pages, the 消息 inbox and the update-gap colours, with data."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.clock import utcnow
from bot.context import Context
from bot.models import Account, Post, Publication, Reply, User
from bot.web.app import create_app
from tests.test_console import login
from tests.test_console_tickets import make_ticket


@pytest.fixture
def client(ctx: Context) -> TestClient:
    return TestClient(create_app(ctx))


def test_digest_page_shows_overdue_tickets(ctx: Context, client: TestClient) -> None:
    tid = make_ticket(ctx, text="小区电梯停了十多天没人修", department="住建局", days_ago=20)
    login(client, "gongkai")
    html = client.get("/digest").text
    assert "未答复留言日报" in html and "已逾期" in html and f"#{tid}" in html and "/digest/html?day=" in html
    embedded = client.get("/digest/html").text
    assert f"#{tid}" in embedded and "住建局" in embedded
    future = (date.today() + timedelta(days=3)).isoformat()
    assert "尚未到来，不能生成日报" in client.get(f"/digest?day={future}").text


def test_digest_send_is_for_admins(ctx: Context, client: TestClient) -> None:
    from tests.test_console import post_form

    login(client, "gongkai")
    r = post_form(client, "/digest/send", {"org": "示例县人民政府"}, page="/rules")
    assert "无权进行此操作" in r.text
    client.cookies.clear()
    login(client, "admin")
    r = post_form(client, "/digest/send", {"org": "示例县人民政府"}, page="/digest")
    assert "日报已生成" in r.text


def test_messages_page_shows_triage_and_auto_replies(ctx: Context, client: TestClient) -> None:
    tid = make_ticket(ctx, text="路灯坏了一个月没人管", department="住建局")
    with ctx.session() as s:
        from bot.models import Ticket

        t = s.get(Ticket, tid)
        s.add(Reply(message_id=t.message_id, account_id=1, automatic=True, faq_rule="faq.office_hours",
                    channel="wechat_passive", text="您好，路灯报修请拨打……", state="sent"))
    login(client, "zhujian")
    html = client.get("/messages").text
    assert "路灯坏了一个月没人管" in html and "投诉" in html and "住建局" in html
    # The FAQ answer by its Chinese name (rules/names.toml), never its id.
    assert "自动回复" in html and "办公时间" in html and "faq.office_hours" not in html and f"/tickets/{tid}" in html
    assert "路灯坏了" in client.get("/messages?q=路灯").text
    assert "路灯坏了" not in client.get("/messages?q=电梯").text
    assert client.get("/messages?intent=praise&account=&department=").status_code == 200
    assert "路灯坏了" not in client.get("/messages?intent=praise").text


def test_update_gap_colours(ctx: Context, client: TestClient) -> None:
    now = utcnow()
    with ctx.session() as s:
        author = s.exec(select(User).where(User.username == "xuanchuan")).one()
        post = Post(title="旧闻", body="<p>x</p>", author_id=author.id, status="published", content_hash="h")
        s.add(post)
        s.flush()
        for name, days in (("示例县发布", 2), ("示例县住建", 11), ("示例县发布微博", 15)):
            acc = s.exec(select(Account).where(Account.name == name)).one()
            s.add(Publication(post_id=post.id, account_id=acc.id, state="published", due_at=now,
                              next_attempt_at=now, published_at=now - timedelta(days=days)))
    html = login(client, "xuanchuan").get("/").text
    assert 'gap gap-ok">2 天' in html
    assert 'gap gap-warn">11 天' in html
    assert 'gap gap-limit">15 天' in html and "超过 14 天限值" in html


def test_reports_page_and_csv(ctx: Context, client: TestClient) -> None:
    make_ticket(ctx, text="小区电梯停了十多天没人修", department="住建局", days_ago=1)
    login(client, "gongkai")
    month = date.today().strftime("%Y-%m")
    html = client.get(f"/reports?month={month}").text
    assert "月度检查记录表" in html and "检查结论" in html and "示例县住建" in html and "合计" in html
    html = client.get(f"/reports?month={month}&kind=department&name=住建局").text
    assert "部门：住建局" in html and "<td>示例县发布微博</td>" not in html and "<td>示例县住建</td>" in html
    r = client.get(f"/reports/csv?month={month}&kind=account&name=示例县住建")
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    assert "账号名称" in r.content.decode("utf-8-sig")
    assert "格式不正确，应为 年-月" in client.get("/reports?month=2026-13").text
    assert "没有名为“nope”的账号" in client.get(f"/reports?month={month}&kind=account&name=nope").text
