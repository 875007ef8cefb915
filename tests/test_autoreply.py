"""Automatic FAQ replies: when they are given, when never, once per citizen per period, and sending."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import xmltodict
from sqlalchemy import select

from bot import replies as sender
from bot.clock import utcnow
from bot.connectors.base import ReplyRefused, TransientError
from bot.context import Context
from bot.inbound.autoreply import GivenAnswer, passive_text_xml, send_pending_replies
from bot.inbound.store import Incoming, ingest
from bot.models import Message, Reply, Ticket

QUESTION = "请问社保卡丢了怎么补办？"


def ask(ctx: Context, text: str = QUESTION, *, key: str, sender: str = "oA", kind: str = "wechat_comment",
        account_id: int = 1, answered: GivenAnswer | None = None):
    raw = '{"reply_target": {"msg_data_id": "1", "index": "0", "user_comment_id": "7"}}' if kind != "wechat_message" else ""
    with ctx.session() as s:
        return ingest(session=s, ctx=ctx, incoming=Incoming(
            account_id=account_id, kind=kind, dedupe_key=key, received_at=datetime.now(UTC), sender_id=sender,
            text=text, raw=raw, own_id="gh_x", answered=answered))


def replies(ctx: Context) -> list[Reply]:
    with ctx.session() as s:
        return list(s.execute(select(Reply).order_by(Reply.id)).scalars())


def test_confident_question_is_answered_and_logged(ctx):
    r = ask(ctx, key="m1")
    assert r.auto_reply is not None and r.ticket is None
    (rep,) = replies(ctx)
    assert rep.automatic and rep.author_id is None and rep.faq_rule == "faq.social_security_card"
    assert rep.channel == "wechat_comment" and rep.state == "pending" and rep.sender_id == "oA"
    assert r.message.replied_at is None  # until the platform took it


def test_a_wechat_message_is_never_decided_after_the_callback_answered(ctx):
    """The callback's answer is the only chance of a passive reply: after it, a question is a ticket."""
    r = ask(ctx, key="m1", kind="wechat_message")
    assert r.auto_reply is None and r.ticket is not None and replies(ctx) == []


def test_the_answer_the_callback_gave_is_recorded_as_sent(ctx):
    sent_at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    r = ask(ctx, key="m1", kind="wechat_message", answered=GivenAnswer("faq.social_security_card", "补办请到……", sent_at))
    assert r.ticket is None
    (rep,) = replies(ctx)
    assert (rep.channel, rep.state, rep.faq_rule, rep.text) == ("wechat_passive", "sent", "faq.social_security_card",
                                                               "补办请到……")
    assert rep.sent_at.replace(tzinfo=UTC) == sent_at and rep.created_at.replace(tzinfo=UTC) == sent_at
    assert r.message.replied_at is not None


def test_complaint_is_never_answered_automatically(ctx):
    r = ask(ctx, "社保卡补办了三次都没办好，工作人员推诿扯皮，投诉！", key="m1")
    assert r.message.intent == "complaint"
    assert r.auto_reply is None and r.ticket is not None


def test_below_min_confidence_goes_to_a_person(make_config, open_ctx):
    ctx = open_ctx(make_config({"autoreply": {"min_confidence": 0.99}}))
    r = ask(ctx, key="m1")
    assert r.auto_reply is None and r.ticket is not None


def test_switched_off_globally(make_config, open_ctx):
    ctx = open_ctx(make_config({"autoreply": {"enabled": False}}))
    r = ask(ctx, key="m1")
    assert r.auto_reply is None and r.ticket is not None


def test_once_per_citizen_per_rule_within_the_period(ctx):
    assert ask(ctx, key="m1").auto_reply is not None
    second = ask(ctx, "请问社保卡在哪里补办？", key="m2")
    assert second.auto_reply is None and second.ticket is not None
    assert ask(ctx, key="m3", sender="oB").auto_reply is not None  # another citizen
    with ctx.session() as s:  # the period (24 h) passes
        for rep in s.execute(select(Reply)).scalars():
            rep.created_at = utcnow() - timedelta(hours=25)
    assert ask(ctx, key="m4").auto_reply is not None


def test_a_failed_earlier_reply_does_not_block_the_next(ctx):
    ask(ctx, key="c1", kind="wechat_comment")
    with ctx.session() as s:
        s.execute(select(Reply)).scalars().one().state = "failed"
    assert ask(ctx, key="c2", kind="wechat_comment").auto_reply is not None


def test_passive_reply_xml_escapes_cdata():
    text = "a]]>b]]]]>c<![CDATA[d"
    xml = passive_text_xml(to_user="o]]>x", from_user="gh", text=text, create_time=1)
    doc = xmltodict.parse(xml)["xml"]
    assert doc == {"ToUserName": "o]]>x", "FromUserName": "gh", "CreateTime": "1", "MsgType": "text", "Content": text}


# ---- sending comment replies ------------------------------------------------------------------


class FakeConnector:
    def __init__(self, *results):
        self.results = list(results)
        self.calls: list[tuple[dict, str]] = []

    def reply_comment(self, target, text):
        self.calls.append((target, text))
        result = self.results.pop(0) if self.results else "r-1"
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture
def fake(monkeypatch):
    def install(*results):
        connector = FakeConnector(*results)
        monkeypatch.setattr(sender, "connector_for", lambda ctx, account: connector)
        return connector

    return install


def test_pending_comment_reply_is_sent_once(ctx, fake):
    connector = fake("remote-1")
    ask(ctx, key="c1", kind="wechat_comment")
    assert send_pending_replies(ctx) == 1
    assert send_pending_replies(ctx) == 0
    assert connector.calls == [({"msg_data_id": "1", "index": "0", "user_comment_id": "7"}, replies(ctx)[0].text)]
    (rep,) = replies(ctx)
    assert rep.state == "sent" and rep.remote_id == "remote-1" and rep.attempts == 1
    with ctx.session() as s:
        assert s.get(Message, rep.message_id).replied_at is not None


def test_refused_reply_fails_with_reason_and_opens_a_ticket(ctx, fake):
    fake(ReplyRefused("wechat", 88005, "this comment already has a reply"))
    r = ask(ctx, key="c1", kind="wechat_comment")
    assert r.ticket is None
    assert send_pending_replies(ctx) == 0
    (rep,) = replies(ctx)
    assert rep.state == "failed" and "88005" in rep.last_error
    with ctx.session() as s:
        assert s.execute(select(Ticket).where(Ticket.message_id == rep.message_id)).scalar_one()


def test_transient_errors_retry_with_backoff_then_give_up(make_config, open_ctx, fake):
    ctx = open_ctx(make_config({"scheduler": {"max_attempts": 2, "backoff_base_s": 30}}))
    fake(TransientError("weibo", 10023, "rate limited"), TransientError("weibo", None, "HTTP 502"))
    ask(ctx, key="c1", kind="weibo_comment", account_id=3)
    assert send_pending_replies(ctx) == 0
    (rep,) = replies(ctx)
    assert rep.state == "pending" and rep.attempts == 1
    assert rep.lease_until - utcnow() > timedelta(seconds=25)  # backoff_base_s
    assert send_pending_replies(ctx) == 0  # not due yet
    with ctx.session() as s:
        s.get(Reply, rep.id).lease_until = utcnow() - timedelta(seconds=1)
    assert send_pending_replies(ctx) == 0
    (rep,) = replies(ctx)
    assert rep.state == "failed" and rep.attempts == 2
    with ctx.session() as s:
        assert s.execute(select(Ticket).where(Ticket.message_id == rep.message_id)).scalar_one()


def test_two_workers_never_send_the_same_reply(ctx, monkeypatch):
    ask(ctx, key="c1", kind="wechat_comment")
    other = Context(config=ctx.config, engine=ctx.engine, worker_id="other:2")
    release, sending = threading.Event(), threading.Event()
    sent: list[str] = []

    class Blocking:
        def reply_comment(self, target, text):
            sent.append(target["user_comment_id"])
            sending.set()
            release.wait(5)  # the first worker is mid-send while the second ticks
            return "r"

    monkeypatch.setattr(sender, "connector_for", lambda c, a: Blocking())
    worker = threading.Thread(target=send_pending_replies, args=(ctx,))
    worker.start()
    assert sending.wait(5)
    assert send_pending_replies(other) == 0
    release.set()
    worker.join(10)
    assert sent == ["7"]
    assert replies(ctx)[0].state == "sent"


def test_reply_interrupted_while_sending_goes_to_a_person_not_resent(ctx, fake):
    connector = fake("remote-1")
    ask(ctx, key="c1", kind="wechat_comment")
    with ctx.session() as s:
        rep = s.execute(select(Reply)).scalars().one()
        rep.state, rep.attempts = "sending", 1
        rep.lease_owner, rep.lease_until = "dead-host:1", utcnow() - timedelta(seconds=1)  # the worker died
    assert send_pending_replies(ctx) == 0
    assert connector.calls == []  # a second comment reply would be refused (88005) or double the answer
    (rep,) = replies(ctx)
    assert rep.state == "failed" and "发送过程中工作进程停止" in rep.last_error
    with ctx.session() as s:
        assert s.execute(select(Ticket).where(Ticket.message_id == rep.message_id)).scalar_one()
