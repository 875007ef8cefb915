"""The tickets JSON API (/api/tickets) with API tokens, on a real SQLite file (and the emulator for sending)."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.clock import utcnow
from bot.emulator.testing import EmulatorAdmin
from bot.models import Account, Department, Message, User
from bot.tickets.service import open_ticket
from bot.users import issue_api_token
from bot.web.app import create_app


def make_ticket(ctx, *, dept: str = "政务公开办", kind: str = "wechat_message", account_name: str = "示例县发布",
                days_ago: float = 0, key: str = "m1", remote_ref: str | None = None, raw: str = "") -> int:
    with ctx.session() as s:
        account = s.exec(select(Account).where(Account.name == account_name)).one()
        department = s.exec(select(Department).where(Department.name == dept)).one()
        msg = Message(account_id=account.id, kind=kind, dedupe_key=key, sender_id=f"o-{key}", text="楼道灯不亮，没人管",
                      received_at=utcnow() - timedelta(days=days_ago), intent="complaint", needs_answer=True,
                      department_id=department.id, remote_ref=remote_ref, raw=raw)
        s.add(msg)
        s.flush()
        return open_ticket(session=s, ctx=ctx, message=msg).id


def api(ctx, username: str) -> TestClient:
    with ctx.session() as s:
        token = issue_api_token(session=s, user=s.exec(select(User).where(User.username == username)).one())
    client = TestClient(create_app(ctx))
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def test_requires_a_user(ctx):
    assert TestClient(create_app(ctx)).get("/api/tickets").status_code == 401


def test_inbox_show_and_handling(ctx):
    fresh = make_ticket(ctx, key="a")
    late = make_ticket(ctx, key="b", days_ago=20)
    make_ticket(ctx, key="c", dept="住建局")
    gongkai = api(ctx, "gongkai")
    inbox = gongkai.get("/api/tickets").json()["items"]
    assert [t["id"] for t in inbox] == [late, fresh]
    assert [t["overdue"] for t in inbox] == [True, False]
    assert inbox[0]["message"]["text"] == "楼道灯不亮，没人管"
    assert gongkai.get("/api/tickets", params={"state": "bogus"}).status_code == 400

    shown = gongkai.get(f"/api/tickets/{late}").json()
    assert shown["department"] == "政务公开办"
    assert shown["channel"]["open"] is False and shown["channel"]["reason_code"] == "channel.window_closed"
    assert [e["action"] for e in shown["history"]] == ["ticket.opened"]
    assert api(ctx, "zhujian").get(f"/api/tickets/{late}").status_code == 403
    assert gongkai.get("/api/tickets/9999").status_code == 404

    assert gongkai.post(f"/api/tickets/{fresh}/acknowledge").json()["state"] == "acknowledged"
    assert gongkai.post(f"/api/tickets/{fresh}/acknowledge").status_code == 409
    note = gongkai.post(f"/api/tickets/{fresh}/notes", json={"text": "已派电工"})
    assert note.status_code == 201
    assert [n["text"] for n in gongkai.get(f"/api/tickets/{fresh}/notes").json()["items"]] == ["已派电工"]
    moved = gongkai.post(f"/api/tickets/{fresh}/reassign", json={"department": "住建局", "reason": "楼道照明归住建"})
    assert moved.status_code == 200 and moved.json()["state"] == "new"
    assert gongkai.get(f"/api/tickets/{fresh}").status_code == 403
    closed = api(ctx, "zhujian").post(f"/api/tickets/{fresh}/close", json={"reason": "resolved", "note": "已修"})
    assert closed.json()["state"] == "closed" and closed.json()["close_reason"] == "resolved"
    assert api(ctx, "zhujian").post(f"/api/tickets/{fresh}/close", json={"reason": "resolved"}).status_code == 409


def test_answer_closed_window_then_offline_and_checks(ctx):
    tid = make_ticket(ctx, days_ago=3)
    gongkai = api(ctx, "gongkai")
    blocked = gongkai.post(f"/api/tickets/{tid}/answer", json={"text": "此为内部资料"})
    assert blocked.status_code == 422 and blocked.json()["detail"]["problems"]
    res = gongkai.post(f"/api/tickets/{tid}/answer", json={"text": "您好，已修复。"}).json()
    assert res["reply"]["state"] == "failed" and "48 小时时限" in res["reply"]["last_error"]
    assert res["channel"]["open"] is False and res["channel"]["options"]
    assert [r["id"] for r in gongkai.get("/api/tickets/replies/failed").json()["items"]] == [res["reply"]["id"]]
    offline = gongkai.post(f"/api/tickets/{tid}/offline-answer", json={"text": "电话告知已修复", "how": "phone"})
    assert offline.status_code == 201 and offline.json()["ticket"]["state"] == "answered"
    assert gongkai.post(f"/api/tickets/{tid}/offline-answer", json={"text": "x", "how": "pigeon"}).status_code == 400


def test_templates(ctx):
    gongkai = api(ctx, "gongkai")
    created = gongkai.post("/api/tickets/templates", json={"name": "已转办", "text": "您好，已转相关部门。"})
    assert created.status_code == 201
    tid = created.json()["id"]
    assert gongkai.post("/api/tickets/templates", json={"name": "已转办", "text": "x"}).status_code == 409
    edited = gongkai.put(f"/api/tickets/templates/{tid}", json={"text": "您好，已转城管部门。"})
    assert edited.json()["text"] == "您好，已转城管部门。"
    assert [t["name"] for t in gongkai.get("/api/tickets/templates").json()["items"]] == ["已转办"]
    assert api(ctx, "zhujian").delete(f"/api/tickets/templates/{tid}").status_code == 403
    assert gongkai.delete(f"/api/tickets/templates/{tid}").status_code == 204
    assert gongkai.get("/api/tickets/templates").json() == {"items": [], "total": 0, "next": None}
    assert api(ctx, "fenguan").get("/api/tickets/templates").status_code == 403


def test_answer_and_retry_on_the_emulator(ectx, emulator):
    status = httpx.post(f"{emulator}/weibo/2/statuses/share.json",
                        data={"access_token": "demo-weibo-token-0001", "status": "通知 http://gov.example.cn/2", "rip": "203.0.113.7"}).json()
    with EmulatorAdmin(emulator) as admin:
        c = admin.weibo_comment(status_id=status["id"], uid=6000000010, screen_name="老王", text="楼道灯不亮")
        admin.fault("weibo", "comments/reply.json", "reject")
    tid = make_ticket(ectx, kind="weibo_comment", account_name="示例县发布微博", key=str(c["id"]),
                      remote_ref=str(status["id"]),
                      raw=json.dumps({"reply_target": {"cid": str(c["id"]), "id": str(status["id"])}}))
    gongkai = api(ectx, "gongkai")
    first = gongkai.post(f"/api/tickets/{tid}/answer", json={"text": "您好，已安排电工。"}).json()
    assert first["reply"]["state"] == "failed" and first["ticket"]["state"] == "new"
    retried = gongkai.post(f"/api/tickets/replies/{first['reply']['id']}/retry")
    assert retried.status_code == 200 and retried.json()["state"] == "sent"
    shown = gongkai.get(f"/api/tickets/{tid}").json()
    assert shown["state"] == "answered" and [r["state"] for r in shown["replies"]] == ["sent"]
    assert [e["action"] for e in shown["history"]] == [
        "ticket.opened", "reply.queued", "reply.failed", "reply.retry_requested", "reply.sent"]


@pytest.mark.parametrize("path", ["/api/tickets/1/answer", "/api/tickets/1/notes"])
def test_body_is_validated(ctx, path):
    make_ticket(ctx)
    assert api(ctx, "gongkai").post(path, json={"txt": "x"}).status_code == 422
