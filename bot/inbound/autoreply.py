"""Automatic replies to common questions (常见问题自动回复): decide, record, send.

An automatic reply is a Reply row (automatic=True, faq_rule) like any other answer, so it counts
in the reply rate. It is given only when
- auto-replies are on (config autoreply.enabled) and on for the account (Account.auto_reply),
- the message is a question matched by an FAQ rule with intent confidence >= autoreply.min_confidence,
  never a complaint or spam,
- the same citizen did not get an automatic answer from the same FAQ rule within
  autoreply.per_user_period_hours.

Channels: a WeChat message is answered in the callback's own response (被动回复), so its Reply is
"sent" at once. A comment (WeChat 留言, Weibo) is answered by `send_pending_replies`, a periodic job
that claims pending rows with a lease (several workers never send the same one twice), retries
transient errors with backoff and, when the platform refuses or the retries run out, marks the
reply failed and opens a ticket so a person answers instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy import func, select
from sqlmodel import Session

from bot.clock import utcnow
from bot.connectors.base import PlatformError, ReplyRefused
from bot.connectors.registry import connector_for
from bot.context import Context
from bot.db import claim
from bot.models import Account, Message, Reply, Ticket
from bot.tickets.service import open_ticket
from bot.triage.classifier import Classification

# Message.kind -> Reply.channel of an automatic answer.
CHANNELS = {"wechat_message": "wechat_passive", "wechat_comment": "wechat_comment", "weibo_comment": "weibo_comment"}
COMMENT_CHANNELS = ("wechat_comment", "weibo_comment")
WELCOME_RULE = "welcome"
# WeChat limits a passive text reply to 2048 bytes.
PASSIVE_MAX_BYTES = 2048


@dataclass(frozen=True)
class Decision:
    """Why an automatic reply was or was not given (logged; tests read it)."""

    reply: Reply | None
    reason: str


def _cdata(text: str) -> str:
    """Text inside CDATA; a "]]>" in it is split over two sections so it cannot close the first."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def passive_text_xml(*, to_user: str, from_user: str, text: str, create_time: int) -> str:
    """A WeChat passive text reply. wechatpy's TextReply.render() does not escape CDATA content."""
    return (
        "<xml>"
        f"<ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(create_time)}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(text)}</Content>"
        "</xml>"
    )


def _fits_passive(text: str) -> bool:
    return len(text.encode("utf-8")) <= PASSIVE_MAX_BYTES


def answered_recently(*, session: Session, account_id: int, sender_id: str, faq_rule: str, since: datetime) -> bool:
    """Whether this citizen got (or is getting) an automatic answer from this rule since `since`."""
    count = session.execute(
        select(func.count(Reply.id)).where(
            Reply.account_id == account_id,
            Reply.sender_id == sender_id,
            Reply.faq_rule == faq_rule,
            Reply.created_at >= since,
            Reply.automatic.is_(True),
            Reply.state != "failed",
        )
    ).scalar_one()
    return count > 0


def decide(
    *, session: Session, ctx: Context, account: Account, message: Message, classification: Classification
) -> Decision:
    """Record an automatic FAQ answer to `message` if every condition holds (see the module doc)."""
    cfg = ctx.config.autoreply
    if not cfg.enabled or not account.auto_reply:
        return Decision(None, "automatic replies are switched off")
    if classification.intent == "complaint" or classification.spam:
        return Decision(None, f"never answered automatically: {'spam' if classification.spam else 'complaint'}")
    if classification.confidence < cfg.min_confidence:
        return Decision(None, f"confidence {classification.confidence:.2f} < {cfg.min_confidence:.2f}")
    match = ctx.rules.current_faq().match(message.text, classification, account=account.name)
    if match is None:
        return Decision(None, "no FAQ rule matches")
    channel = CHANNELS[message.kind]
    if channel == "weibo_comment" and len(match.answer) > ctx.config.platforms.weibo.max_chars:
        logger.warning("FAQ {} answer is longer than a Weibo comment allows; left to a person", match.rule_id)
        return Decision(None, f"answer of {match.rule_id} too long for a Weibo comment")
    if channel == "wechat_passive" and not _fits_passive(match.answer):
        logger.warning("FAQ {} answer exceeds {} bytes for a WeChat reply; left to a person", match.rule_id, PASSIVE_MAX_BYTES)
        return Decision(None, f"answer of {match.rule_id} too long for a WeChat reply")
    now = utcnow()
    since = now - timedelta(hours=cfg.per_user_period_hours)
    if message.sender_id and answered_recently(
        session=session, account_id=account.id, sender_id=message.sender_id, faq_rule=match.rule_id, since=since
    ):
        return Decision(None, f"{match.rule_id} already answered to this citizen within {cfg.per_user_period_hours:g} h")
    reply = Reply(
        message_id=message.id,
        account_id=account.id,
        sender_id=message.sender_id,
        automatic=True,
        faq_rule=match.rule_id,
        channel=channel,
        text=match.answer,
    )
    if channel == "wechat_passive":
        reply.state, reply.sent_at = "sent", now
        message.replied_at = message.replied_at or now
    session.add(reply)
    session.flush()
    logger.info("automatic reply {} to message {} by {} ({})", reply.id, message.id, match.rule_id, channel)
    return Decision(reply, f"FAQ {match.rule_id} matched {', '.join(match.words)}")


def record_welcome(*, session: Session, ctx: Context, account: Account, message: Message) -> Reply | None:
    """The welcome text answered to a subscribe event, logged as an automatic reply."""
    text = ctx.config.autoreply.welcome
    if not (ctx.config.autoreply.enabled and account.auto_reply and text.strip() and _fits_passive(text)):
        return None
    now = utcnow()
    reply = Reply(
        message_id=message.id, account_id=account.id, sender_id=message.sender_id, automatic=True,
        faq_rule=WELCOME_RULE, channel="wechat_passive", text=text, state="sent", sent_at=now,
    )
    session.add(reply)
    session.flush()
    return reply


# ---- sending comment replies ------------------------------------------------------------------


def _backoff(ctx: Context, attempts: int, retry_after: float | None) -> float:
    s = ctx.config.scheduler
    delay = min(s.backoff_max_s, s.backoff_base_s * 2 ** max(0, attempts - 1))
    return max(delay, retry_after or 0.0)


def reply_target(message: Message) -> dict[str, str]:
    """The platform ids a comment reply needs, stored with the comment by polling."""
    try:
        data = json.loads(message.raw or "{}")
    except ValueError:
        return {}
    target = data.get("reply_target") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in target.items()} if isinstance(target, dict) else {}


def _hand_to_person(*, session: Session, ctx: Context, message: Message) -> None:
    """An automatic answer did not go out: the question needs a ticket like any other."""
    if session.execute(select(Ticket.id).where(Ticket.message_id == message.id)).first() is None:
        open_ticket(session=session, ctx=ctx, message=message)


def _finish(ctx: Context, reply_id: int, *, state: str, remote_id: str | None = None, error: str | None = None,
            retry_in: float | None = None) -> None:
    with ctx.session() as session:
        reply = session.get(Reply, reply_id)
        message = session.get(Message, reply.message_id)
        now = utcnow()
        reply.last_error = error
        reply.lease_owner = None
        if state == "sent":
            reply.state, reply.sent_at, reply.remote_id, reply.lease_until = "sent", now, remote_id, None
            message.replied_at = message.replied_at or now
        elif state == "retry":
            # The lease doubles as the time of the next attempt: claim skips the row until then.
            reply.state, reply.lease_until = "pending", now + timedelta(seconds=retry_in or 0)
        else:
            reply.state, reply.lease_until = "failed", None
            _hand_to_person(session=session, ctx=ctx, message=message)


def send_pending_replies(ctx: Context) -> int:
    """Send the automatic comment replies that are due; returns how many went out."""
    s = ctx.config.scheduler
    with ctx.session() as session:
        replies = claim(
            session, Reply,
            [Reply.automatic.is_(True), Reply.state.in_(("pending", "sending")), Reply.channel.in_(COMMENT_CHANNELS)],
            owner=ctx.worker_id, lease=timedelta(seconds=s.lease_seconds), limit=s.batch_size, order_by=Reply.id,
        )
        work = []
        for reply in replies:
            reply.state, reply.attempts = "sending", reply.attempts + 1
            message = session.get(Message, reply.message_id)
            account = session.get(Account, reply.account_id)
            work.append((reply.id, reply.attempts, reply.text, reply_target(message), account))
    sent = 0
    for reply_id, attempts, text, target, account in work:
        if not target:
            _finish(ctx, reply_id, state="failed", error="the comment carries no reply target")
            continue
        try:
            remote_id = connector_for(ctx, account).reply_comment(target, text)
        except ReplyRefused as exc:
            logger.warning("automatic reply {} refused: {}", reply_id, exc)
            _finish(ctx, reply_id, state="failed", error=f"refused: {exc}")
        except PlatformError as exc:
            if exc.transient and attempts < s.max_attempts:
                delay = _backoff(ctx, attempts, getattr(exc, "retry_after", None))
                logger.info("automatic reply {} will be retried in {:.0f}s: {}", reply_id, delay, exc)
                _finish(ctx, reply_id, state="retry", error=str(exc), retry_in=delay)
            else:
                logger.error("automatic reply {} failed after {} attempt(s): {}", reply_id, attempts, exc)
                _finish(ctx, reply_id, state="failed", error=str(exc))
        except Exception as exc:  # a connector bug must not stop the other replies; bounded by max_attempts
            logger.exception("automatic reply {} raised", reply_id)
            if attempts < s.max_attempts:
                _finish(ctx, reply_id, state="retry", error=repr(exc), retry_in=_backoff(ctx, attempts, None))
            else:
                _finish(ctx, reply_id, state="failed", error=repr(exc))
        else:
            _finish(ctx, reply_id, state="sent", remote_id=remote_id or None)
            sent += 1
    return sent
