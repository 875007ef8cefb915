"""Automatic replies to common questions (常见问题自动回复): decide, record, send.

An automatic reply is a Reply row (automatic=True, faq_rule) like any other answer, so it counts
in the reply rate. It is given only when
- auto-replies are on (config autoreply.enabled) and on for the account (Account.auto_reply),
- the message is a question matched by an FAQ rule with intent confidence >= autoreply.min_confidence,
  never a complaint or spam,
- the same citizen did not get an automatic answer from the same FAQ rule within
  autoreply.per_user_period_hours.

Channels: a WeChat message is answered in the callback's own response (被动回复): the request
chooses the answer (`choose`; the limit is checked as the delivery is stored, bot.inbound.rows),
and the worker records it as a sent Reply (`record_given`). A comment (WeChat 留言, Weibo) is
answered by the sender every reply goes through (bot.replies: a lease, bounded retries). `AUTOMATIC` is what differs: the comment is not checked again
before sending (the platform's refusal is the check), and when the platform refuses, the retries run
out or a worker died mid-send, the reply is failed and a ticket opened so a person answers instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy import Integer, String, bindparam, literal_column, select, union_all
from sqlmodel import Session

from bot.clock import utcnow
from bot.context import Context
from bot.logthrottle import log_throttled
from bot.models import Account, InboundDelivery, Message, Reply, Ticket
from bot.replies import Policy, Result, send_due
from bot.tickets.service import open_ticket
from bot.triage.classifier import Classification
from bot.triage.faq import FaqMatch

# Message.kind -> Reply.channel of an automatic answer to a comment (a WeChat message's is wechat_passive).
COMMENT_CHANNELS = {"wechat_comment": "wechat_comment", "weibo_comment": "weibo_comment"}
PASSIVE_CHANNEL = "wechat_passive"
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


@dataclass(frozen=True)
class GivenAnswer:
    """A passive answer the callback already gave (FAQ rule id or WELCOME_RULE, its text, when)."""

    faq_rule: str
    text: str
    sent_at: datetime


# Whether a citizen got (or is getting) an automatic answer from a rule since a moment: a Reply not
# failed, or a delivery the callback answered that the worker has not recorded yet. One statement,
# run by the ORM (answered_recently) and as driver SQL in the callback (bot.inbound.rows).
ANSWERED_SINCE = union_all(
    select(literal_column("1")).where(
        Reply.account_id == bindparam("account_id", type_=Integer),
        Reply.sender_id == bindparam("sender_id", type_=String),
        Reply.faq_rule == bindparam("faq_rule", type_=String),
        Reply.created_at >= bindparam("since", type_=Reply.__table__.c.created_at.type),
        Reply.automatic.is_(True),
        Reply.state != "failed",
    ),
    select(literal_column("1")).where(
        InboundDelivery.processed_at.is_(None),
        InboundDelivery.account_id == bindparam("account_id", type_=Integer),
        InboundDelivery.sender_id == bindparam("sender_id", type_=String),
        InboundDelivery.faq_rule == bindparam("faq_rule", type_=String),
        InboundDelivery.arrived_at >= bindparam("since", type_=InboundDelivery.__table__.c.arrived_at.type),
    ),
).limit(1)


def answered_recently(*, session: Session, account_id: int, sender_id: str, faq_rule: str, since: datetime) -> bool:
    """Whether this citizen got (or is getting) an automatic answer from this rule since `since`."""
    params = dict(account_id=account_id, sender_id=sender_id, faq_rule=faq_rule, since=since)
    return session.execute(ANSWERED_SINCE, params).first() is not None


def once_since(ctx: Context) -> datetime:
    """The start of the period within which a citizen gets one automatic answer per rule."""
    return utcnow() - timedelta(hours=ctx.config.autoreply.per_user_period_hours)


def choose(ctx: Context, *, account_name: str, auto_reply: bool, channel: str, text: str,
           classification: Classification) -> tuple[FaqMatch | None, str]:
    """The FAQ answer for a message if every condition but the once-per-citizen limit holds, and why
    (or why not). Pure: the callback asks it in the request, `decide` after."""
    cfg = ctx.config.autoreply
    if not cfg.enabled or not auto_reply:
        return None, "automatic replies are switched off"
    if classification.intent == "complaint" or classification.spam:
        return None, f"never answered automatically: {'spam' if classification.spam else 'complaint'}"
    if classification.confidence < cfg.min_confidence:
        return None, f"confidence {classification.confidence:.2f} < {cfg.min_confidence:.2f}"
    match = ctx.rules.current_faq().match(text, classification, account=account_name)
    if match is None:
        return None, "no FAQ rule matches"
    if channel == "weibo_comment" and len(match.answer) > ctx.config.platforms.weibo.max_chars:
        log_throttled(f"faq.too_long.{match.rule_id}", "WARNING",
                      "FAQ {} answer is longer than a Weibo comment allows; left to a person", match.rule_id)
        return None, f"answer of {match.rule_id} too long for a Weibo comment"
    if channel == PASSIVE_CHANNEL and not _fits_passive(match.answer):
        # Asked in the callback's request for every matching message: logged once a minute, not per message.
        log_throttled(f"faq.too_long.{match.rule_id}", "WARNING",
                      "FAQ {} answer exceeds {} bytes for a WeChat reply; left to a person", match.rule_id, PASSIVE_MAX_BYTES)
        return None, f"answer of {match.rule_id} too long for a WeChat reply"
    return match, f"FAQ {match.rule_id} matched {', '.join(match.words)}"


def welcome_text(ctx: Context, *, auto_reply: bool) -> str | None:
    """The welcome answered to a subscribe (关注), or None when none is to be given."""
    text = ctx.config.autoreply.welcome
    if not (ctx.config.autoreply.enabled and auto_reply and text.strip() and _fits_passive(text)):
        return None
    return text


def decide(
    *, session: Session, ctx: Context, account: Account, message: Message, classification: Classification
) -> Decision:
    """Record an automatic FAQ answer to the comment `message` if every condition holds (module doc).

    A WeChat message is never decided here: the callback answered it already (its passive answer,
    if any, comes to `record_given`)."""
    channel = COMMENT_CHANNELS[message.kind]
    match, reason = choose(ctx, account_name=account.name, auto_reply=account.auto_reply, channel=channel,
                           text=message.text, classification=classification)
    if match is None:
        return Decision(None, reason)
    if message.sender_id and answered_recently(
        session=session, account_id=account.id, sender_id=message.sender_id, faq_rule=match.rule_id, since=once_since(ctx)
    ):
        period = ctx.config.autoreply.per_user_period_hours
        return Decision(None, f"{match.rule_id} already answered to this citizen within {period:g} h")
    reply = Reply(
        message_id=message.id,
        account_id=account.id,
        sender_id=message.sender_id,
        automatic=True,
        faq_rule=match.rule_id,
        channel=channel,
        text=match.answer,
    )
    session.add(reply)
    session.flush()
    logger.info("automatic reply {} to message {} by {} ({})", reply.id, message.id, match.rule_id, channel)
    return Decision(reply, reason)


def record_given(*, session: Session, account: Account, message: Message, given: GivenAnswer) -> Reply:
    """The passive answer the callback gave to `message`, logged as a sent automatic reply."""
    reply = Reply(
        message_id=message.id, account_id=account.id, sender_id=message.sender_id, automatic=True,
        faq_rule=given.faq_rule, channel=PASSIVE_CHANNEL, text=given.text, state="sent",
        created_at=given.sent_at, sent_at=given.sent_at,
    )
    message.replied_at = message.replied_at or given.sent_at
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
