"""Answering citizens through every channel on the live emulator, and what happens when it cannot be sent."""

from __future__ import annotations

import io
import itertools
import json
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from sqlmodel import select

from bot.clock import utcnow
from bot.emulator.push import make_openid
from bot.emulator.testing import EmulatorAdmin, serve_app, wechat_client
from bot.errors import CheckFailed, InvalidState, PermissionDenied
from bot.models import Account, AuditEvent, Department, Message, Reply, Ticket, User
from bot.tickets import answering, service
from bot.tickets.answering import answer_and_send, record_offline_answer, retry_and_send, send_pending_replies
from bot.tickets.service import open_ticket
from tests.test_tickets import database_url, shared_config  # noqa: F401 - a fixture, used by name

APPID, SECRET, TOKEN = "wxdemo0000000001", "demo-appsecret-0001", "demotoken0001"
WEIBO_TOKEN = "demo-weibo-token-0001"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
CITIZEN = make_openid("citizen-answering")
_pages = itertools.count(1)


@pytest.fixture
def admin(emulator):
    with EmulatorAdmin(emulator) as a:
        yield a


def account(s, name: str) -> Account:
    return s.exec(select(Account).where(Account.name == name)).one()


def user(s, username: str) -> User:
    return s.exec(select(User).where(User.username == username)).one()


def store(ctx, *, account_name: str, kind: str, dedupe_key: str, sender_id: str, received_at: datetime,
          remote_ref: str | None = None, raw: str = "", text: str = "路灯坏了一个月了，什么时候修？",
          intent: str = "complaint") -> int:
    """Store a message as inbound would, and open its ticket (routed to 政务公开办); returns the ticket id."""
    with ctx.session() as s:
        dept = s.exec(select(Department).where(Department.name == "政务公开办")).one()
        msg = Message(account_id=account(s, account_name).id, kind=kind, dedupe_key=dedupe_key, sender_id=sender_id,
                      text=text, raw=raw, remote_ref=remote_ref, received_at=received_at, intent=intent,
                      needs_answer=True, department_id=dept.id)
        s.add(msg)
        s.flush()
        return open_ticket(session=s, ctx=ctx, message=msg).id


def publish_article(emulator: str) -> int:
    client = wechat_client(emulator, APPID, SECRET)
    thumb = client.material.add("image", ("cover.png", io.BytesIO(PNG), "image/png"))["media_id"]
    article = {"title": "关于路灯维修的通知", "author": "政务公开办", "digest": "", "content": "<p>路灯维修安排。</p>",
               "content_source_url": "", "thumb_media_id": thumb, "need_open_comment": 1, "only_fans_can_comment": 0}
    media_id = client.post("draft/add", data={"articles": [article]})["media_id"]
    submitted = client.post("freepublish/submit", data={"media_id": media_id})
    # The job ends after its run time (wechat_publish_delay_s) on the emulator's clock.
    httpx.post(f"{emulator}/_emulator/clock", json={"advance_s": 3}).raise_for_status()
    client.post("freepublish/get", data={"publish_id": submitted["publish_id"]})
    return submitted["msg_data_id"]


def wechat_comment_ticket(ctx, admin, emulator, *, with_raw: bool = True) -> tuple[int, dict]:
    msg_data_id = publish_article(emulator)
    c = admin.wechat_comment(msg_data_id=msg_data_id, index=0, openid=CITIZEN, content="路灯坏了一个月了")
    target = {"msg_data_id": str(msg_data_id), "index": "0", "user_comment_id": str(c["user_comment_id"])}
    ticket_id = store(ctx, account_name="示例县发布", kind="wechat_comment",
                      dedupe_key=f"{msg_data_id}/0/{c['user_comment_id']}", sender_id=CITIZEN,
                      remote_ref=f"{msg_data_id}/0", received_at=utcnow() - timedelta(hours=1),
                      raw=json.dumps({"comment": {}, "reply_target": target}) if with_raw else "")
    return ticket_id, c


def weibo_comment_ticket(ctx, admin, emulator) -> tuple[int, dict]:
    # Weibo refuses the same text twice within a day: each status links to its own page.
    page = next(_pages)
    status = httpx.post(f"{emulator}/weibo/2/statuses/share.json",
                        data={"access_token": WEIBO_TOKEN, "status": f"路灯维修安排 http://gov.example.cn/n/{page}", "rip": "203.0.113.7"}).json()
    c = admin.weibo_comment(status_id=status["id"], uid=6000000001, screen_name="老张", text="我家门口的路灯还没修")
    ticket_id = store(ctx, account_name="示例县发布微博", kind="weibo_comment", dedupe_key=str(c["id"]),
                      sender_id="6000000001", remote_ref=str(status["id"]), received_at=utcnow() - timedelta(hours=1),
                      raw=json.dumps({"reply_target": {"cid": str(c["id"]), "id": str(status["id"])}}))
    return ticket_id, c


@pytest.fixture
def callback_receiver(emulator, admin):
    """Stand in for govbot's callback so the emulator's push reaches something that answers "success"."""
    app = FastAPI()

    @app.post("/cb")
    def cb() -> PlainTextResponse:
        return PlainTextResponse("success")

    with serve_app(app) as url:
        admin.register_wechat(appid=APPID, secret=SECRET, token=TOKEN, callback_url=f"{url}/cb")
        yield url


def citizen_writes(ctx, admin, *, received_at: datetime | None = None, key: str = "msg:1") -> int:
    """The citizen sends a message: the platform opens the 48-hour window; govbot stores it and tickets it."""
    pushed = admin.push(APPID, "text", openid=CITIZEN, content="请问路灯什么时候修？", retries=0)
    assert pushed["ok"], pushed
    return store(ctx, account_name="示例县发布", kind="wechat_message", dedupe_key=key, sender_id=CITIZEN,
                 received_at=received_at or utcnow())


def audit_actions(ctx, reply_id: int) -> list[str]:
    with ctx.session() as s:
        return [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.subject_type == "reply",
                                                                  AuditEvent.subject_id == reply_id)
                                         .order_by(AuditEvent.id))]


def load(ctx, model, row_id):
    with ctx.session() as s:
        return s.get(model, row_id)


def notes_text(ctx, ticket_id: int) -> str:
    with ctx.session() as s:
        return "\n".join(n.text for n in service.notes(session=s, ticket_id=ticket_id))


# -- WeChat comments (留言) ----------------------------------------------------------------------

def test_wechat_comment_answered_once_and_a_second_answer_is_not_sent(ectx, admin, emulator):
    ticket_id, comment = wechat_comment_ticket(ectx, admin, emulator)
    before = utcnow()
    reply = answer_and_send(ectx, ticket_id=ticket_id, username="gongkai", text="您好，已安排维修，三日内修复。")
    assert reply.state == "sent" and reply.channel == "wechat_comment" and reply.attempts == 1
    assert reply.sent_at >= before
    with ectx.session() as s:
        assert reply.author_id == user(s, "gongkai").id
        ticket = s.get(Ticket, ticket_id)
        assert ticket.state == "answered"
        assert ticket.first_response_at == ticket.answered_at == reply.sent_at
        assert s.get(Message, ticket.message_id).replied_at == reply.sent_at
    assert audit_actions(ectx, reply.id) == ["reply.queued", "reply.sent"]
    listed = admin.state()["wechat"]["comments"][f"{comment['msg_data_id']}:0"]
    assert listed[0]["reply"]["content"] == "您好，已安排维修，三日内修复。"

    second = answer_and_send(ectx, ticket_id=ticket_id, username="gongkai", text="补充：已修好。")
    assert second.state == "failed" and "每条留言只能回复一次" in second.last_error
    assert audit_actions(ectx, second.id) == ["reply.channel_closed"]
    assert f"答复 #{second.id} 未发送" in notes_text(ectx, ticket_id)
    # The platform kept the first reply only.
    assert admin.state()["wechat"]["comments"][f"{comment['msg_data_id']}:0"][0]["reply"]["content"] == \
        "您好，已安排维修，三日内修复。"


def test_comment_already_answered_on_the_platform_is_refused(ectx, admin, emulator):
    ticket_id, comment = wechat_comment_ticket(ectx, admin, emulator, with_raw=False)
    # Someone answers in the WeChat admin console, outside govbot.
    wechat_client(emulator, APPID, SECRET).material.add_reply_comment(
        comment["msg_data_id"], 0, comment["user_comment_id"], "已处理")
    reply = answer_and_send(ectx, ticket_id=ticket_id, username="gongkai", text="您好，已安排维修。")
    assert reply.state == "failed" and "88005" in reply.last_error
    assert audit_actions(ectx, reply.id) == ["reply.queued", "reply.refused"]
    with ectx.session() as s:
        [refused] = s.exec(select(AuditEvent).where(AuditEvent.action == "reply.refused")).all()
        assert refused.detail["code"] == 88005
        ticket = s.get(Ticket, ticket_id)
        assert ticket.state == "new" and ticket.first_response_at is None
        status = answering.channel_status(session=s, ctx=ectx, message=s.get(Message, ticket.message_id))
        assert not status.open and "已在平台上（不经本系统）回复过" in status.reason
        assert "option.record_platform" in status.option_codes
    assert "已在平台上回复过" in notes_text(ectx, ticket_id)
    with ectx.session() as s, pytest.raises(InvalidState, match="88005"):
        answering.retry_reply(session=s, reply_id=reply.id, user=user(s, "gongkai"))
    # What is still possible: record the answer given on the platform.
    with ectx.session() as s:
        offline = record_offline_answer(session=s, ticket_id=ticket_id, user=user(s, "gongkai"), text="已处理",
                                        how="platform")
        assert offline.channel == "offline" and offline.state == "sent"
        assert s.get(Ticket, ticket_id).state == "answered"


# -- WeChat messages (客服消息, 48 hours) -----------------------------------------------------------

def test_wechat_message_answered_within_the_48_hour_window(ectx, admin, callback_receiver):
    ticket_id = citizen_writes(ectx, admin)
    with ectx.session() as s:
        status = answering.channel_status(session=s, ctx=ectx,
                                          message=s.get(Message, s.get(Ticket, ticket_id).message_id))
        assert status.open and status.closes_at > utcnow() + timedelta(hours=47)
    reply = answer_and_send(ectx, ticket_id=ticket_id, username="gongkai", text="您好，路灯将于本周五前修复。")
    assert reply.state == "sent" and reply.channel == "wechat_custom"
    sent = admin.state()["wechat"]["custom_messages"]
    assert [(m["touser"], m["text"]["content"]) for m in sent] == [(CITIZEN, "您好，路灯将于本周五前修复。")]
    assert load(ectx, Ticket, ticket_id).state == "answered"


def test_wechat_message_outside_the_window_is_not_sent(ectx, admin, callback_receiver):
    ticket_id = citizen_writes(ectx, admin, received_at=utcnow() - timedelta(hours=49))
    reply = answer_and_send(ectx, ticket_id=ticket_id, username="gongkai", text="您好，已修复。")
    assert reply.state == "failed" and "48 小时时限已于" in reply.last_error
    assert admin.state()["wechat"]["custom_messages"] == []  # the platform was not called
    assert audit_actions(ectx, reply.id) == ["reply.channel_closed"]
    with ectx.session() as s:
        [event] = s.exec(select(AuditEvent).where(AuditEvent.action == "reply.channel_closed")).all()
        assert event.detail["reason_code"] == "channel.window_closed" and event.detail["options"]
        assert s.get(Ticket, ticket_id).state == "new"
    assert "时限已于" in notes_text(ectx, ticket_id)

    # A later message from the same citizen reopens the window for the old ticket too.
    citizen_writes(ectx, admin, key="msg:2")
    retried = retry_and_send(ectx, reply_id=reply.id, username="gongkai")
    assert retried.state == "sent"
    assert audit_actions(ectx, reply.id) == ["reply.channel_closed", "reply.retry_requested", "reply.sent"]


def test_answer_by_phone_when_the_window_is_closed(ectx, admin, callback_receiver):
    ticket_id = citizen_writes(ectx, admin, received_at=utcnow() - timedelta(days=3))
    with ectx.session() as s:
        gongkai = user(s, "gongkai")
        with pytest.raises(service.TicketError, match="unknown way"):
            record_offline_answer(session=s, ticket_id=ticket_id, user=gongkai, text="x", how="pigeon")
        at = utcnow() - timedelta(hours=2)
        reply = record_offline_answer(session=s, ticket_id=ticket_id, user=gongkai, how="phone",
                                      text="电话告知：路灯已列入本周维修计划", answered_at=at)
        assert (reply.channel, reply.state, reply.sent_at, reply.author_id) == ("offline", "sent", at, gongkai.id)
        ticket = s.get(Ticket, ticket_id)
        assert (ticket.state, ticket.first_response_at, ticket.answered_at) == ("answered", at, at)
        assert s.get(Message, ticket.message_id).replied_at == at
        [event] = s.exec(select(AuditEvent).where(AuditEvent.action == "reply.recorded_offline")).all()
        assert event.actor == "gongkai" and event.detail["how"] == "phone"
        with pytest.raises(InvalidState, match="is sent"):
            answering.retry_reply(session=s, reply_id=reply.id, user=gongkai)


def test_platform_closing_the_window_is_a_clear_refusal(ectx, admin, callback_receiver):
    ticket_id = citizen_writes(ectx, admin)
    admin.advance(49 * 3600)  # on the platform, 49 hours pass; govbot's own records still say the window is open
    reply = answer_and_send(ectx, ticket_id=ticket_id, username="gongkai", text="您好，已修复。")
    assert reply.state == "failed" and "45015" in reply.last_error
    assert audit_actions(ectx, reply.id) == ["reply.queued", "reply.refused"]
    assert "48 小时时限已过" in notes_text(ectx, ticket_id)


# -- Weibo comments ------------------------------------------------------------------------------

def test_weibo_comment_reply(ectx, admin, emulator):
    ticket_id, comment = weibo_comment_ticket(ectx, admin, emulator)
    reply = answer_and_send(ectx, ticket_id=ticket_id, username="gongkai", text="您好，已转城管部门处理。")
    assert reply.state == "sent" and reply.channel == "weibo_comment" and reply.remote_id
    replies = [c for c in admin.state()["weibo"]["comments"].values() if c.get("reply_to") == comment["id"]]
    assert len(replies) == 1 and str(replies[0]["id"]) == reply.remote_id
    assert load(ectx, Ticket, ticket_id).state == "answered"


def test_weibo_comment_too_long_is_refused_before_sending(ectx, admin, emulator):
    ticket_id, _ = weibo_comment_ticket(ectx, admin, emulator)
    with pytest.raises(CheckFailed, match="140 characters"):
        answer_and_send(ectx, ticket_id=ticket_id, username="gongkai", text="答" * 141)
    with ectx.session() as s:
        assert s.exec(select(Reply)).all() == []


# -- failures and retries ------------------------------------------------------------------------

def test_transient_failure_is_retried_with_backoff(ectx, admin, emulator):
    ticket_id, _ = weibo_comment_ticket(ectx, admin, emulator)
    admin.fault("weibo", "comments/reply.json", "http_500", count=1)
    reply = answer_and_send(ectx, ticket_id=ticket_id, username="gongkai", text="您好，已转城管部门处理。")
    assert reply.state == "pending" and reply.attempts == 1 and reply.last_error
    wait = reply.lease_until - utcnow()
    assert timedelta(seconds=1) < wait <= timedelta(seconds=ectx.config.scheduler.backoff_base_s + 1)
    assert send_pending_replies(ectx) == 0  # not due yet
    assert send_pending_replies(ectx, now=reply.lease_until + timedelta(seconds=1)) == 1
    sent = load(ectx, Reply, reply.id)
    assert sent.state == "sent" and sent.attempts == 2 and sent.last_error is None
    assert audit_actions(ectx, reply.id) == ["reply.queued", "reply.retry_scheduled", "reply.sent"]


def test_retries_are_bounded(make_config, open_ctx, emulator, admin):
    from bot.service import register_emulator_accounts

    ctx = open_ctx(make_config({"scheduler": {"max_attempts": 2}}, emulator_url=emulator))
    register_emulator_accounts(ctx, emulator_url=emulator)
    ticket_id, _ = weibo_comment_ticket(ctx, admin, emulator)
    admin.fault("weibo", "comments/reply.json", "http_500", count=5)
    reply = answer_and_send(ctx, ticket_id=ticket_id, username="gongkai", text="您好，已处理。")
    assert reply.state == "pending"
    assert send_pending_replies(ctx, now=reply.lease_until + timedelta(seconds=1)) == 1
    failed = load(ctx, Reply, reply.id)
    assert failed.state == "failed" and failed.attempts == 2 and "system error" in failed.last_error
    assert send_pending_replies(ctx, now=utcnow() + timedelta(hours=1)) == 0  # nothing more without a person
    assert audit_actions(ctx, reply.id) == ["reply.queued", "reply.retry_scheduled", "reply.failed"]
    with ctx.session() as s:
        assert [r.id for r in answering.failed_replies(session=s)] == [reply.id]
        [entry] = answering.inbox(session=s, user=user(s, "gongkai"))
        assert entry.failed_replies == 1


def test_permanent_failure_stays_visible_and_is_retried_by_a_person(ectx, admin, emulator):
    ticket_id, _ = weibo_comment_ticket(ectx, admin, emulator)
    admin.fault("weibo", "comments/reply.json", "reject")
    reply = answer_and_send(ectx, ticket_id=ticket_id, username="gongkai", text="您好，已处理。")
    assert reply.state == "failed" and "20021" in reply.last_error
    assert load(ectx, Ticket, ticket_id).state == "new"
    with ectx.session() as s, pytest.raises(PermissionDenied):
        answering.retry_reply(session=s, reply_id=reply.id, user=user(s, "zhujian"))
    retried = retry_and_send(ectx, reply_id=reply.id, username="gongkai")
    assert retried.state == "sent"
    assert audit_actions(ectx, reply.id) == ["reply.queued", "reply.failed", "reply.retry_requested", "reply.sent"]
    with ectx.session() as s, pytest.raises(InvalidState, match="sent"):
        answering.retry_reply(session=s, reply_id=reply.id, user=user(s, "gongkai"))


def test_reply_interrupted_while_sending_is_not_resent_blindly(ctx):
    ticket_id = store(ctx, account_name="示例县发布微博", kind="weibo_comment", dedupe_key="42", sender_id="1",
                      remote_ref="7", received_at=utcnow())
    with ctx.session() as s:
        reply = answering.answer(session=s, ctx=ctx, ticket_id=ticket_id, user=user(s, "gongkai"), text="您好。")
        reply.state, reply.lease_owner, reply.lease_until = "sending", "dead-host:1", utcnow() - timedelta(seconds=1)
    assert send_pending_replies(ctx) == 0
    failed = load(ctx, Reply, reply.id)
    assert failed.state == "failed" and "发送过程中工作进程停止" in failed.last_error
    assert audit_actions(ctx, reply.id) == ["reply.queued", "reply.interrupted"]


def test_pending_reply_is_sent_by_the_job(ectx, admin, emulator):
    ticket_id, _ = weibo_comment_ticket(ectx, admin, emulator)
    with ectx.session() as s:
        reply = answering.answer(session=s, ctx=ectx, ticket_id=ticket_id, user=user(s, "gongkai"), text="您好。")
    assert send_pending_replies(ectx) == 1
    assert load(ectx, Reply, reply.id).state == "sent"


# -- checks, permissions, inbox ------------------------------------------------------------------

def test_pre_send_checks_block_sensitive_words_and_typos(ctx):
    ticket_id = store(ctx, account_name="示例县发布微博", kind="weibo_comment", dedupe_key="42", sender_id="1",
                      remote_ref="7", received_at=utcnow())
    with ctx.session() as s:
        gongkai = user(s, "gongkai")
        with pytest.raises(CheckFailed) as caught:
            answering.answer(session=s, ctx=ctx, ticket_id=ticket_id, user=gongkai, text="此件为内部资料，请向人民政付咨询")
        codes = {p.code for p in caught.value.problems}
        assert codes == {"sensitive_word", "typo"}
        assert any(p.suggestion == "人民政府" for p in caught.value.problems)
        with pytest.raises(service.TicketError, match="empty"):
            answering.answer(session=s, ctx=ctx, ticket_id=ticket_id, user=gongkai, text="  ")
        with pytest.raises(PermissionDenied):
            answering.answer(session=s, ctx=ctx, ticket_id=ticket_id, user=user(s, "zhujian"), text="您好")
        assert s.exec(select(Reply)).all() == []


def test_closed_ticket_cannot_be_answered(ctx):
    ticket_id = store(ctx, account_name="示例县发布微博", kind="weibo_comment", dedupe_key="42", sender_id="1",
                      remote_ref="7", received_at=utcnow())
    with ctx.session() as s:
        service.close(session=s, ticket_id=ticket_id, reason="duplicate", user=user(s, "gongkai"))
        with pytest.raises(InvalidState, match="closed"):
            answering.answer(session=s, ctx=ctx, ticket_id=ticket_id, user=user(s, "gongkai"), text="您好")


def test_inbox_in_deadline_order_for_the_users_department(ctx):
    now = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # Tuesday noon in Shanghai
    ids = {}
    for key, days_ago, intent in (("fresh", 0, "question"), ("old", 6, "complaint"), ("older", 8, "suggestion")):
        ids[key] = store(ctx, account_name="示例县发布微博", kind="weibo_comment", dedupe_key=key, sender_id="1",
                         remote_ref="7", received_at=now - timedelta(days=days_ago), intent=intent)
    with ctx.session() as s:
        gongkai = user(s, "gongkai")
        entries = answering.inbox(session=s, user=gongkai, now=now)
        # "old" (complaint, 03-04) missed its first response on 03-05; "older" (suggestion, 03-02) on 03-04.
        assert [e.ticket.id for e in entries] == [ids["older"], ids["old"], ids["fresh"]]
        assert [e.overdue for e in entries] == [True, True, False]
        assert entries[0].message.dedupe_key == "older"
        service.close(session=s, ticket_id=ids["older"], reason="spam", user=gongkai)
        assert [e.ticket.id for e in answering.inbox(session=s, user=gongkai, now=now)] == [ids["old"], ids["fresh"]]
        assert [e.ticket.id for e in answering.inbox(session=s, user=gongkai, state="closed", now=now)] == [ids["older"]]
        assert answering.inbox(session=s, user=user(s, "zhujian"), now=now) == []
        assert len(answering.inbox(session=s, user=user(s, "admin"), state="all", now=now)) == 3
        with pytest.raises(PermissionDenied):
            answering.inbox(session=s, user=user(s, "fenguan"))
        with pytest.raises(service.TicketError, match="unknown inbox filter"):
            answering.inbox(session=s, user=gongkai, state="late")


def test_ticket_detail(ectx, admin, emulator):
    ticket_id, _ = weibo_comment_ticket(ectx, admin, emulator)
    answer_and_send(ectx, ticket_id=ticket_id, username="gongkai", text="您好，已处理。")
    with ectx.session() as s:
        detail = answering.ticket_detail(session=s, ctx=ectx, ticket_id=ticket_id, user=user(s, "gongkai"))
        assert detail.department == "政务公开办" and detail.channel.open
        assert [r.state for r in detail.replies] == ["sent"]
        assert [e.action for e in detail.history] == ["ticket.opened", "reply.queued", "reply.sent"]


def test_workers_sharing_a_database_send_each_reply_once(make_config, open_ctx, database_url, emulator,  # noqa: F811
                                                        admin):
    from bot.context import Context
    from bot.service import register_emulator_accounts

    config = shared_config(make_config, open_ctx, database_url, {"scheduler": {"batch_size": 2}},
                           emulator_url=emulator)
    workers = [Context.open(config, check_schema=False) for _ in range(3)]
    for i, w in enumerate(workers):
        w.worker_id = f"worker-{i}"
    try:
        register_emulator_accounts(workers[0], emulator_url=emulator)
        reply_ids = []
        for _ in range(6):
            ticket_id, _ = weibo_comment_ticket(workers[0], admin, emulator)
            with workers[0].session() as s:
                reply_ids.append(answering.answer(session=s, ctx=workers[0], ticket_id=ticket_id,
                                                  user=user(s, "gongkai"), text="您好，已转城管部门处理。").id)
        start = threading.Barrier(len(workers))

        def run(w):
            start.wait()
            while send_pending_replies(w):
                pass

        threads = [threading.Thread(target=run, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with workers[0].session() as s:
            assert [r.state for r in s.exec(select(Reply).order_by(Reply.id))] == ["sent"] * 6
            assert len(s.exec(select(AuditEvent).where(AuditEvent.action == "reply.sent")).all()) == 6
        replies = [c for c in admin.state()["weibo"]["comments"].values() if c.get("reply_to")]
        assert len(replies) == 6 and len({c["reply_to"] for c in replies}) == 6
    finally:
        for w in workers:
            w.close()


def test_comment_answered_by_phone_can_still_get_its_platform_reply(ectx, admin, emulator):
    ticket_id, _ = wechat_comment_ticket(ectx, admin, emulator)
    with ectx.session() as s:
        record_offline_answer(session=s, ticket_id=ticket_id, user=user(s, "gongkai"), text="电话答复", how="phone")
        status = answering.channel_status(session=s, ctx=ectx, message=s.get(Message, s.get(Ticket, ticket_id).message_id))
        assert status.open
    assert answer_and_send(ectx, ticket_id=ticket_id, username="gongkai", text="您好，已电话答复，路灯已修。").state == "sent"


def test_comment_polled_with_a_reply_from_outside_is_a_closed_channel(ectx, admin, emulator):
    ticket_id, _ = wechat_comment_ticket(ectx, admin, emulator)
    with ectx.session() as s:
        message = s.get(Message, s.get(Ticket, ticket_id).message_id)
        message.replied_at = utcnow()  # what polling records when the platform shows a reply already
        status = answering.channel_status(session=s, ctx=ectx, message=message)
        assert not status.open and "已在平台上（不经本系统）回复过" in status.reason
