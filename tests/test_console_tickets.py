"""The 工单 pages: a department's inbox in deadline order, the ticket page and its forms."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.clock import utcnow
from bot.context import Context
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
                          topic="城乡建设", confidence=0.9, needs_answer=True, rules="complaint_words:没人管",
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
    assert html.index(f"#{late}") < html.index(f"#{fresh}")
    assert "超期" in html and 'class="overdue"' in html
    assert "别的部门的事" not in html
    assert "路灯坏了一个月没人管" in html


def test_ticket_page_and_its_forms(ctx: Context, client: TestClient) -> None:
    tid = make_ticket(ctx, text="路灯坏了一个月没人管", department="住建局")
    login(client, "zhujian")
    page = client.get(f"/tickets/{tid}").text
    assert "路灯坏了一个月没人管" in page and "complaint_words" in page and "没人管" in page

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
    r = post_form(client, f"/tickets/{tid}/note", {"text": "x"}, page=f"/tickets/{tid}")
    assert r.status_code == 422 and "无权进行此操作" in r.text
    assert client.get("/tickets/99999").status_code == 404


def test_reply_templates_page(ctx: Context, client: TestClient) -> None:
    login(client, "zhujian")
    r = post_form(client, "/tickets/templates", {"name": "路灯报修", "text": "您好，已转路灯所处理。"})
    assert "模板已保存" in r.text and "路灯报修" in r.text
    r = post_form(client, "/tickets/templates", {"name": "路灯报修", "text": "重复"})
    assert r.status_code == 422 and "路灯报修" in r.text
