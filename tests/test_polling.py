"""Comment polling end to end: real connectors against the live emulator on loopback.

Posts are published through the connectors, citizens comment through the emulator's admin API,
`poll_comments` stores them (once, however often it polls), and `send_pending_replies` answers
FAQ comments on the platform.
"""

from __future__ import annotations

import struct
import zlib
from datetime import time, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from bot.clock import at, to_local, utcnow
from bot.connectors.base import Cover, OutgoingPost
from bot.connectors.registry import connector_for
from bot.context import Context
from bot.inbound.autoreply import send_pending_replies
from bot.inbound.polling import ACCOUNT_SCOPE, poll_comments, release_lease, take_lease
from bot.models import Account, Message, PollCursor, Post, Publication, Reply, Ticket, User

FAQ_QUESTION = "请问社保卡丢了怎么补办？"  # faq.social_security_card
COMPLAINT = "小区门口的路灯坏了一个多月了，一直没人管，强烈要求尽快维修！"
PRAISE = "点赞👍 政府办事效率真高，谢谢！"


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x00\xff\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _account(ctx: Context, platform: str) -> Account:
    with ctx.session() as s:
        return s.execute(select(Account).where(Account.platform == platform).order_by(Account.id)).scalars().first()


def publish(ctx: Context, platform: str) -> tuple[Account, Publication]:
    """Publish a post on the emulator through the real connector; record it as published."""
    account = _account(ctx, platform)
    connector, ids = connector_for(ctx, account), {}
    result = connector.publish(
        OutgoingPost(publication_id=0, title="关于社保卡办理的通知", body="<p>社保卡办理指南</p>",
                     weibo_text="社保卡办理指南 https://gov.example.cn/a/1", cover=Cover("c.png", _png(), "image/png")),
        progress=lambda _step, got: ids.update(got), resume={})
    if result.pending:  # a WeChat job: let it run on the emulator's clock, then read its outcome
        httpx.post(ctx.config.wechat_api_base.split("/wechat/")[0] + "/_emulator/clock", json={"advance_s": 3})
        result = connector.job_outcome(ids["publish_id"], ids["msg_data_id"])
    now = utcnow()
    with ctx.session() as s:
        author = s.execute(select(User)).scalars().first()
        post = Post(title="关于社保卡办理的通知", body="社保卡办理指南", author_id=author.id, content_hash="h",
                    status="published")
        s.add(post)
        s.flush()
        pub = Publication(post_id=post.id, account_id=account.id, state="published", due_at=now, next_attempt_at=now,
                          published_at=now, remote_id=result.remote_id, remote_msg_data_id=result.msg_data_id)
        s.add(pub)
    return account, pub


def wechat_comment(emulator: str, msg_data_id: str, openid: str, content: str) -> dict:
    r = httpx.post(f"{emulator}/_emulator/wechat/comments",
                   json={"msg_data_id": msg_data_id, "index": 0, "openid": openid, "content": content})
    r.raise_for_status()
    return r.json()


def weibo_comment(emulator: str, status_id: str, uid: int, text: str) -> dict:
    r = httpx.post(f"{emulator}/_emulator/weibo/comments",
                   json={"status_id": status_id, "uid": uid, "screen_name": f"网友{uid}", "text": text})
    r.raise_for_status()
    return r.json()


def emulator_state(emulator: str) -> dict:
    return httpx.get(f"{emulator}/_emulator/state").json()


def faq_answer(ctx: Context, rule_id: str) -> str:
    return next(r.answer for r in ctx.rules.current_faq().rules if r.id == rule_id)


def count(ctx: Context, model, *where) -> int:
    with ctx.session() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_wechat_comments_stored_once_and_faq_answered_once(ectx, emulator):
    account, pub = publish(ectx, "wechat")
    wechat_comment(emulator, pub.remote_msg_data_id, "oCitizenA", FAQ_QUESTION)
    wechat_comment(emulator, pub.remote_msg_data_id, "oCitizenB", COMPLAINT)
    wechat_comment(emulator, pub.remote_msg_data_id, "oCitizenC", PRAISE)

    report = poll_comments(ectx)
    assert report.new == 3 and not report.errors
    again = poll_comments(ectx)
    assert again.new == 0 and not again.errors
    assert count(ectx, Message) == 3

    with ectx.session() as s:
        msgs = {m.sender_id: m for m in s.execute(select(Message)).scalars()}
    faq, complaint, praise = msgs["oCitizenA"], msgs["oCitizenB"], msgs["oCitizenC"]
    assert all(m.kind == "wechat_comment" and m.publication_id == pub.id for m in msgs.values())
    assert faq.remote_ref == f"{pub.remote_msg_data_id}/0" and faq.intent == "question"
    assert complaint.intent == "complaint" and praise.intent == "praise"
    assert count(ectx, Ticket, Ticket.message_id == complaint.id) == 1
    assert count(ectx, Ticket, Ticket.message_id == praise.id) == 0
    assert count(ectx, Ticket, Ticket.message_id == faq.id) == 0  # answered automatically instead
    assert count(ectx, Reply, Reply.state == "pending", Reply.channel == "wechat_comment") == 1

    assert send_pending_replies(ectx) == 1
    assert send_pending_replies(ectx) == 0  # nothing left: sent once
    comments = emulator_state(emulator)["wechat"]["comments"]
    replies = [c["reply"]["content"] for cs in comments.values() for c in cs if c.get("reply")]
    assert replies == [faq_answer(ectx, "faq.social_security_card")]
    with ectx.session() as s:
        rep = s.execute(select(Reply)).scalars().one()
        assert rep.state == "sent" and rep.sent_at is not None and rep.attempts == 1
        assert s.get(Message, faq.id).replied_at is not None

    # Our reply shows in the next listing: nothing new is stored, nothing is answered twice.
    assert poll_comments(ectx).new == 0
    assert send_pending_replies(ectx) == 0


def test_same_citizen_same_question_is_auto_answered_once_per_period(ectx, emulator):
    _, pub = publish(ectx, "wechat")
    wechat_comment(emulator, pub.remote_msg_data_id, "oCitizenA", FAQ_QUESTION)
    wechat_comment(emulator, pub.remote_msg_data_id, "oCitizenA", "请问社保卡在哪里补办？")
    poll_comments(ectx)
    assert count(ectx, Reply) == 1
    assert count(ectx, Ticket) == 1  # the second time a person answers


def test_reply_refused_by_platform_fails_and_goes_to_a_person(ectx, emulator):
    account, pub = publish(ectx, "wechat")
    injected = wechat_comment(emulator, pub.remote_msg_data_id, "oCitizenA", FAQ_QUESTION)
    poll_comments(ectx)
    # Someone answers in the WeChat backend before our job runs: the platform refuses a second reply.
    connector_for(ectx, account).reply_comment(
        {"msg_data_id": str(pub.remote_msg_data_id), "index": "0", "user_comment_id": str(injected["user_comment_id"])},
        "人工答复")
    assert send_pending_replies(ectx) == 0
    with ectx.session() as s:
        rep = s.execute(select(Reply)).scalars().one()
        assert rep.state == "failed" and "88005" in rep.last_error
        msg = s.get(Message, rep.message_id)
        assert msg.replied_at is None
    assert count(ectx, Ticket, Ticket.message_id == rep.message_id) == 1
    assert send_pending_replies(ectx) == 0  # never retried


def test_transient_send_error_is_retried_with_backoff(ectx, emulator):
    _, pub = publish(ectx, "wechat")
    wechat_comment(emulator, pub.remote_msg_data_id, "oCitizenA", FAQ_QUESTION)
    poll_comments(ectx)
    httpx.post(f"{emulator}/_emulator/faults", json={"platform": "wechat", "path": "comment/reply", "kind": "http_500",
                                                     "count": 1}).raise_for_status()
    assert send_pending_replies(ectx) == 0
    with ectx.session() as s:
        rep = s.execute(select(Reply)).scalars().one()
        assert rep.state == "pending" and rep.attempts == 1 and rep.last_error
        assert rep.lease_until > utcnow()
        rep.lease_until = utcnow() - timedelta(seconds=1)  # the backoff has passed
    assert send_pending_replies(ectx) == 1
    with ectx.session() as s:
        assert s.execute(select(Reply)).scalars().one().state == "sent"


def test_new_comments_after_cursor_only(ectx, emulator):
    _, pub = publish(ectx, "wechat")
    for i in range(3):
        wechat_comment(emulator, pub.remote_msg_data_id, f"oFan{i}", f"{PRAISE}{i}")
    assert poll_comments(ectx).new == 3
    wechat_comment(emulator, pub.remote_msg_data_id, "oFan9", COMPLAINT)
    assert poll_comments(ectx).new == 0  # a new article is polled every fresh_interval_s, not every tick
    with at(utcnow() + timedelta(minutes=6)):
        assert poll_comments(ectx).new == 1
    assert count(ectx, Message) == 4
    with ectx.session() as s:
        cursor = s.get(PollCursor, (pub.account_id, f"wechat:{pub.remote_msg_data_id}/0"))
        assert cursor.cursor


def test_wechat_paging_over_49(ectx, emulator):
    _, pub = publish(ectx, "wechat")
    for i in range(60):
        wechat_comment(emulator, pub.remote_msg_data_id, f"oFan{i}", f"{PRAISE} {i}")
    assert poll_comments(ectx).new == 60
    assert poll_comments(ectx).new == 0
    assert count(ectx, Message) == 60


def test_rate_limit_backs_off_the_account(ectx, emulator):
    account, pub = publish(ectx, "wechat")
    wechat_comment(emulator, pub.remote_msg_data_id, "oCitizenA", COMPLAINT)
    httpx.post(f"{emulator}/_emulator/faults", json={"platform": "wechat", "path": "comment/list",
                                                     "kind": "rate_limit", "count": 1}).raise_for_status()
    report = poll_comments(ectx)
    assert report.new == 0 and any("45009" in e for e in report.errors)
    with ectx.session() as s:
        backoff = s.get(PollCursor, (account.id, ACCOUNT_SCOPE)).backoff_until
    # Until the next window opens (midnight in Beijing: at 23:59 that is under a minute away).
    assert backoff > utcnow()
    calls = emulator_state(emulator)["counters"]["calls"]
    listed = sum(n for k, n in calls.items() if "comment/list" in k)
    assert poll_comments(ectx).new == 0  # backing off: the platform is not asked
    calls = emulator_state(emulator)["counters"]["calls"]
    assert sum(n for k, n in calls.items() if "comment/list" in k) == listed
    # The platform's 45009 closed the day's window: polling resumes when the next one opens.
    assert to_local(backoff, "Asia/Shanghai").time() == time(0, 0)
    with at(backoff + timedelta(seconds=1)):
        assert poll_comments(ectx).new == 1


def test_weibo_to_me_and_status_comments_stored_once(ectx, emulator):
    account, pub = publish(ectx, "weibo")
    weibo_comment(emulator, pub.remote_id, 6000000001, "请问社保卡怎么补办？")
    weibo_comment(emulator, pub.remote_id, 6000000002, COMPLAINT)
    report = poll_comments(ectx)
    assert report.new == 2 and not report.errors  # to_me and comments/show list the same two: stored once
    assert report.seen == 2
    assert poll_comments(ectx).targets == 0  # within WEIBO_ACCOUNT_EVERY_S: Weibo is not asked again
    with ectx.session() as s:
        msgs = list(s.execute(select(Message)).scalars())
    assert {m.kind for m in msgs} == {"weibo_comment"}
    assert all(m.publication_id == pub.id and m.remote_ref == pub.remote_id for m in msgs)
    assert send_pending_replies(ectx) == 1
    statuses = emulator_state(emulator)["weibo"]["comments"]
    ours = [c for c in statuses.values() if str(c["uid"]) == account.remote_id]
    assert len(ours) == 1 and ours[0]["text"].startswith("回复@")
    # Everything listed again from the start (cursors lost): nothing is stored twice, and our own
    # reply under the status is not taken for a citizen's comment.
    with ectx.session() as s:
        for row in s.execute(select(PollCursor)).scalars():
            row.updated_at, row.cursor = utcnow() - timedelta(hours=1), ""
    again = poll_comments(ectx)
    assert again.targets == 2 and again.new == 0 and again.seen == 4
    assert count(ectx, Message) == 2


def test_weibo_rate_limit_sets_backoff(ectx, emulator):
    account, pub = publish(ectx, "weibo")
    httpx.post(f"{emulator}/_emulator/faults", json={"platform": "weibo", "path": "comments/",
                                                     "kind": "rate_limit", "count": 5}).raise_for_status()
    report = poll_comments(ectx)
    assert any("10023" in e for e in report.errors)
    with ectx.session() as s:
        assert s.get(PollCursor, (account.id, ACCOUNT_SCOPE)).backoff_until > utcnow()


def test_poll_lease_keeps_a_second_worker_out(ctx):
    other = Context(config=ctx.config, engine=ctx.engine, worker_id="other-worker:1")
    assert take_lease(ctx, 1, seconds=60)
    assert take_lease(ctx, 1, seconds=60)  # the holder may renew
    assert not take_lease(other, 1, seconds=60)
    release_lease(ctx, 1)
    assert take_lease(other, 1, seconds=60)
    assert not take_lease(ctx, 1, seconds=60)


@pytest.mark.parametrize("platform", ["wechat", "weibo"])
def test_disabled_account_is_not_polled(make_config, open_ctx, emulator, platform):
    from bot.service import register_emulator_accounts

    cfg = make_config(emulator_url=emulator)
    accounts = [a.model_dump() for a in cfg.accounts]
    for a in accounts:
        a["enabled"] = a["platform"] != platform
    ctx = open_ctx(make_config({"accounts": accounts}, emulator_url=emulator))
    register_emulator_accounts(ctx, emulator_url=emulator)
    with ctx.session() as s:
        ids = [a.id for a in s.execute(select(Account).where(Account.platform == platform)).scalars()]
    poll_comments(ctx)
    assert count(ctx, PollCursor, PollCursor.account_id.in_(ids)) == 0
