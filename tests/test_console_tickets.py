"""The 工单 pages: a department's inbox in deadline order, the ticket page and its forms."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.clock import utcnow
from bot.context import Context
from bot.emulator.testing import EmulatorAdmin
from bot.models import Account, Department, Message, Ticket, TicketNote
from bot.tickets.service import open_ticket
from bot.web.app import create_app
from tests.test_console import login, post_form


def make_ticket(ctx: Context, *, text: str, department: str, intent: str = "complaint", days_ago: float = 0,
                key: str = "m1") -> int:
    with ctx.session() as s:
        account = s.exec(select(Account).where(Account.name == "示例县住建")).one()
        dept = s.exec(select(Department).where(Department.name == department)).one()
        message = Message(account_id=account.id, kind="wechat_message", dedupe_key=key, sender_id="openid-1",
                          text=text, received_at=utcnow() - timedelta(days=days_ago), intent=intent,
                          topic="城乡建设", confidence=0.9, needs_answer=True, rules="complaint.problem:没人管",
                          department_id=dept.id)
        return open_ticket(session=s, ctx=ctx, message=message).id


@pytest.fixture
def client(ctx: Context) -> TestClient:
    return TestClient(create_app(ctx))


def test_inbox_in_deadline_order_with_overdue_in_red(ctx: Context, client: TestClient) -> None:
    fresh = make_ticket(ctx, text="路灯坏了一个月没人管", department="住建局", key="a")
    late = make_ticket(ctx, text="小区电梯停了十多天没人修", department="住建局", days_ago=20, key="b")
    make_ticket(ctx, text="别的部门的事", department="教育局", key="c")
    html = login(client, "zhujian").get("/tickets").text
    assert html.index(f"工单 {late}") < html.index(f"工单 {fresh}")
    assert "超期" in html and 'class="overdue"' in html
    assert "别的部门的事" not in html
    assert "路灯坏了一个月没人管" in html


def test_ticket_page_and_its_forms(ctx: Context, client: TestClient) -> None:
    tid = make_ticket(ctx, text="路灯坏了一个月没人管", department="住建局")
    login(client, "zhujian")
    page = client.get(f"/tickets/{tid}").text
    assert "路灯坏了一个月没人管" in page and "“没人管”" in page and "complaint.problem" not in page

    r = post_form(client, f"/tickets/{tid}/acknowledge", page=f"/tickets/{tid}")
    assert r.status_code == 200 and "已签收" in r.text
    r = post_form(client, f"/tickets/{tid}/note", {"text": "已联系路灯所"}, page=f"/tickets/{tid}")
    assert "已联系路灯所" in r.text

    # A domain error (no reason) is shown on the page, with what was typed kept.
    with ctx.session() as s:
        edu = s.exec(select(Department).where(Department.name == "教育局")).one().id
    r = post_form(client, f"/tickets/{tid}/reassign", {"department": str(edu), "reason": "  "}, page=f"/tickets/{tid}")
    assert r.status_code == 422 and "reason" in r.text
    assert f'value="{edu}" selected' in r.text

    r = post_form(client, f"/tickets/{tid}/close", {"reason": "duplicate", "note": "与 #1 重复"}, page=f"/tickets/{tid}")
    assert "工单已关闭" in r.text and "重复" in r.text
    with ctx.session() as s:
        t = s.get(Ticket, tid)
        assert t.state == "closed" and t.close_reason == "duplicate"
        assert len(s.exec(select(TicketNote).where(TicketNote.ticket_id == tid)).all()) == 2


def test_reassign_moves_the_ticket_out_of_the_inbox(ctx: Context, client: TestClient) -> None:
    tid = make_ticket(ctx, text="学校门口堵车", department="住建局")
    with ctx.session() as s:
        edu = s.exec(select(Department).where(Department.name == "教育局")).one().id
    login(client, "zhujian")
    r = post_form(client, f"/tickets/{tid}/reassign", {"department": str(edu), "reason": "属教育局职责"},
                  page=f"/tickets/{tid}")
    assert "已转办" in r.text and "学校门口堵车" not in r.text
    html = login(TestClient(client.app), "admin").get(f"/tickets/{tid}").text
    assert "属教育局职责" in html and "教育局" in html


def test_another_department_cannot_act(ctx: Context, client: TestClient) -> None:
    tid = make_ticket(ctx, text="路灯坏了", department="住建局")
    login(client, "gongkai")
    page = client.get(f"/tickets/{tid}")
    assert page.status_code == 403 and "无权进行此操作" in page.text and "路灯坏了" not in page.text
    r = post_form(client, f"/tickets/{tid}/note", {"text": "x"}, page=f"/tickets/{tid}")
    assert r.status_code == 403 and "无权进行此操作" in r.text
    assert client.get("/tickets/99999").status_code == 404


def test_reply_templates_page(ctx: Context, client: TestClient) -> None:
    login(client, "zhujian")
    r = post_form(client, "/tickets/templates", {"name": "路灯报修", "text": "您好，已转路灯所处理。"})
    assert "模板已保存" in r.text and "路灯报修" in r.text
    r = post_form(client, "/tickets/templates", {"name": "路灯报修", "text": "重复"})
    assert r.status_code == 422 and "路灯报修" in r.text


def wechat_message_ticket(ctx: Context, *, hours_ago: float) -> int:
    with ctx.session() as s:
        account = s.exec(select(Account).where(Account.name == "示例县发布")).one()
        dept = s.exec(select(Department).where(Department.name == "住建局")).one()
        message = Message(account_id=account.id, kind="wechat_message", dedupe_key=f"msg-{hours_ago}",
                          sender_id="oCitizen0001", text="请问老旧小区改造什么时候开始？",
                          received_at=utcnow() - timedelta(hours=hours_ago), intent="question", topic="城乡建设",
                          confidence=0.8, needs_answer=True, rules="question_form:请问", department_id=dept.id)
        return open_ticket(session=s, ctx=ctx, message=message).id


def weibo_comment_ticket(ctx: Context, emulator: str) -> int:
    """A citizen's comment under a Weibo post on the emulator, stored and ticketed as inbound would."""
    status = httpx.post(f"{emulator}/weibo/2/statuses/share.json",
                        data={"access_token": "demo-weibo-token-0001",
                              "status": "老旧小区改造启动 http://gov.example.cn/n/1", "rip": "203.0.113.7"}).json()
    with EmulatorAdmin(emulator) as admin:
        c = admin.weibo_comment(status_id=status["id"], uid=6000000001, screen_name="老张", text="我们小区什么时候改造？")
    with ctx.session() as s:
        account = s.exec(select(Account).where(Account.name == "示例县发布微博")).one()
        dept = s.exec(select(Department).where(Department.name == "住建局")).one()
        message = Message(account_id=account.id, kind="weibo_comment", dedupe_key=str(c["id"]), sender_id="6000000001",
                          sender_name="老张", text="我们小区什么时候改造？", remote_ref=str(status["id"]),
                          raw=json.dumps({"reply_target": {"cid": str(c["id"]), "id": str(status["id"])}}),
                          received_at=utcnow() - timedelta(hours=1), intent="question", needs_answer=True,
                          department_id=dept.id)
        return open_ticket(session=s, ctx=ctx, message=message).id


def test_answer_through_the_form_on_the_emulator(ectx: Context, emulator: str) -> None:
    tid = weibo_comment_ticket(ectx, emulator)
    client = login(TestClient(create_app(ectx)), "zhujian")
    assert "发送答复" in client.get(f"/tickets/{tid}").text
    r = post_form(client, f"/tickets/{tid}/answer", {"text": "您好，改造计划将于明年春季启动。"}, page=f"/tickets/{tid}")
    assert r.status_code == 200 and "答复已发送给群众" in r.text, r.text
    assert "改造计划将于明年春季启动" in r.text
    with ectx.session() as s:
        assert s.get(Ticket, tid).state == "answered"


def test_closed_48_hour_window_is_explained_and_the_answer_kept(ectx: Context) -> None:
    tid = wechat_message_ticket(ectx, hours_ago=72)
    client = login(TestClient(create_app(ectx)), "zhujian")
    page = client.get(f"/tickets/{tid}").text
    assert "无法通过公众号答复" in page and "48 小时" in page and "登记线下答复" in page
    r = post_form(client, f"/tickets/{tid}/answer", {"text": "您好，改造计划将于明年春季启动。"}, page=f"/tickets/{tid}")
    assert "答复未能发送" in r.text and "重试发送" in r.text
    # The failed answer stays visible and retryable; retrying with the window still closed says so again.
    reply_id = int(re.search(r"/replies/(\d+)/retry", r.text).group(1))
    assert "答复发送失败" in client.get("/tickets").text
    r = post_form(client, f"/tickets/{tid}/replies/{reply_id}/retry", page=f"/tickets/{tid}")
    assert "答复未能发送" in r.text
    r = post_form(client, f"/tickets/{tid}/offline", {"how": "phone", "text": "已电话告知改造时间"},
                  page=f"/tickets/{tid}")
    assert "已登记线下答复" in r.text
    with ectx.session() as s:
        assert s.get(Ticket, tid).state == "answered"


def test_answer_failing_checks_keeps_the_text(ctx: Context) -> None:
    tid = wechat_message_ticket(ctx, hours_ago=1)
    client = login(TestClient(create_app(ctx)), "zhujian")
    r = post_form(client, f"/tickets/{tid}/answer", {"text": "此事见内部资料"}, page=f"/tickets/{tid}")
    assert r.status_code == 422 and "内部资料" in r.text and "此事见内部资料</textarea>" in r.text
