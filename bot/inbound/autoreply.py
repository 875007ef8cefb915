"""Automatic replies to common questions (常见问题自动回复): decide, record, send.

An automatic reply is a Reply row (automatic=True, faq_rule) like any other answer, so it counts
in the reply rate. It is given only when
- auto-replies are on (config autoreply.enabled) and on for the account (Account.auto_reply),
- the message is a question matched by an FAQ rule with intent confidence >= autoreply.min_confidence,
  never a complaint or spam,
- the same citizen did not get an automatic answer from the same FAQ rule within
  autoreply.per_user_period_hours.

Channels: a WeChat message is answered in the callback's own response (被动回复), so its Reply is
"sent" at once. A comment (WeChat 留言, Weibo) is answered by the sender every reply goes through
(bot.replies: a lease, bounded retries). `AUTOMATIC` is what differs: the comment is not checked again
before sending (the platform's refusal is the check), and when the platform refuses, the retries run
out or a worker died mid-send, the reply is failed and a ticket opened so a person answers instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy import func, select
from sqlmodel import Session

from bot.clock import utcnow
from bot.context import Context
from bot.models import Account, Message, Reply, Ticket
from bot.replies import Policy, Result, send_due
from bot.tickets.service import open_ticket
from bot.triage.classifier import Classification

# Message.kind -> Reply.channel of an automatic answer.
CHANNELS = {"wechat_message": "wechat_passive", "wechat_comment": "wechat_comment", "weibo_comment": "weibo_comment"}
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


# ---- sending comment replies (bot.replies) ---------------------------------------------------


def _hand_to_person(session: Session, ctx: Context, reply: Reply, message: Message, result: Result) -> None:
    """An automatic answer that did not go out: the question needs a ticket like any other."""
    if reply.state != "failed":
        return
    if session.execute(select(Ticket.id).where(Ticket.message_id == message.id)).first() is None:
        open_ticket(session=session, ctx=ctx, message=message)


AUTOMATIC = Policy(settled=_hand_to_person)


def send_pending_replies(ctx: Context) -> int:
    """Send the automatic comment replies that are due; returns how many went out."""
    return send_due(ctx, {True: AUTOMATIC}).sent
