"""Answering citizens (答复): a responder's inbox, the answer through the right channel, retries.

The channel follows the message:

- wechat_comment -> a WeChat comment reply (留言回复). WeChat takes one reply per comment; a second
  is refused (88005), so a comment that already has one is a closed channel.
- wechat_message -> a WeChat customer-service message (客服消息), only within 48 hours of the
  citizen's last message to the account (computed from the stored messages). Outside the window
  the platform is not called: the ticket says the channel is closed and what is still possible.
- weibo_comment -> a Weibo comment reply (comments/reply).

Whatever the channel cannot do, a person can: `record_offline_answer` records an answer given by
phone, in person or directly on the platform, so the ticket and the reply figures stay true.

An answer is first written as a pending Reply row (committed) and only then sent by bot.replies,
either at once (`answer_and_send`) or by the periodic job. A transient error is retried with bounded
backoff (config scheduler.*); a refusal or a permanent error leaves the reply failed with the reason,
visible on the ticket and retryable (`retry_reply`): never lost silently. `RESPONDERS` is what this
module adds to the sending: the channel is checked again before each attempt, and every step is an
audit event on the reply (subject_type "reply") or the ticket, with a note when a person must act.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from bot import audit, replies
from bot.clock import to_local, utcnow
from bot.connectors.base import PlatformError
from bot.context import Context
from bot.errors import CheckFailed, InvalidState, NotFound, PermissionDenied, text_en, text_zh
from bot.labels import label
from bot.models import AuditEvent, Department, Message, Reply, Ticket, TicketNote, User
from bot.replies import reply_target
from bot.textcheck import Problem, check_sensitive, check_typos, problem, rules_for
from bot.tickets import service
from bot.tickets.service import CLOSE_REASONS, OPEN_STATES, SYSTEM, TicketError

# Message.kind -> Reply.channel of a responder's answer.
CHANNELS = {"wechat_comment": "wechat_comment", "wechat_message": "wechat_custom", "weibo_comment": "weibo_comment"}
# An answer given outside govbot (phone, in person, on the platform's own console), recorded afterwards.
OFFLINE = "offline"
OFFLINE_HOW = ("phone", "in_person", "letter", "platform", "other")
# WeChat customer-service messages: only within 48 hours of the citizen's last message (客服消息 48 小时).
WECHAT_CUSTOM_WINDOW = timedelta(hours=48)
WECHAT_CUSTOM_MAX_BYTES = 2048
# Platform codes of a refused reply: the comment already has one; the 48-hour window is closed.
ALREADY_REPLIED = 88005
WINDOW_CLOSED = 45015
INBOX_STATES = {"open": OPEN_STATES, "new": ("new",), "acknowledged": ("acknowledged",), "answered": ("answered",),
                "closed": ("closed",), "all": None}
OFFLINE_OPTION = "option.offline"


@dataclass(frozen=True)
class ChannelStatus:
    """Whether a ticket can be answered through its platform now, and if not, why and what else is possible."""

    channel: str
    open: bool
    code: str = ""  # catalogue code of the reason ("channel.window_closed")
    params: tuple[tuple[str, Any], ...] = ()
    closes_at: datetime | None = None  # wechat_custom: the end of the 48-hour window
    option_codes: tuple[str, ...] = ()  # catalogue codes of what else is possible ("option.offline")

    @property
    def reason(self) -> str:
        return text_zh(self.code, **dict(self.params)) if self.code else ""

    @property
    def reason_en(self) -> str:
        return text_en(self.code, **dict(self.params)) if self.code else ""

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(text_zh(o) for o in self.option_codes)

    def as_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "open": self.open, "reason": self.reason, "reason_code": self.code or None,
                "closes_at": self.closes_at.isoformat() if self.closes_at else None, "options": list(self.options),
                "option_codes": list(self.option_codes)}


@dataclass(frozen=True)
class InboxEntry:
    ticket: Ticket
    message: Message
    due: datetime  # the deadline the ticket works towards now
    overdue: bool
    failed_replies: int


@dataclass(frozen=True)
class TicketDetail:
    ticket: Ticket
    message: Message
    department: str
    channel: ChannelStatus
    replies: list[Reply]
    notes: list[TicketNote]
    history: list[AuditEvent] = field(default_factory=list)


# -- reading -------------------------------------------------------------------------------------


def inbox(*, session: Session, user: User, state: str = "open", now: datetime | None = None) -> list[InboxEntry]:
    """The user's department's tickets in deadline order, the most overdue first (admins without a
    department see every department's)."""
    now = now or utcnow()
    if state not in INBOX_STATES:
        raise TicketError("ticket.unknown_inbox", state=state, known=", ".join(INBOX_STATES))
    if user.department_id is None and not user.has_role("admin"):
        raise PermissionDenied("user.no_department", user=user.username)
    tickets = service.list_tickets(session=session, department_id=user.department_id, states=INBOX_STATES[state],
                                   now=now)
    if not tickets:
        return []
    ids = [t.message_id for t in tickets]
    messages = {m.id: m for m in session.exec(select(Message).where(Message.id.in_(ids)))}
    failed = dict(session.exec(select(Reply.ticket_id, func.count(Reply.id))
                               .where(Reply.ticket_id.in_([t.id for t in tickets]), Reply.state == "failed")
                               .group_by(Reply.ticket_id)).all())
    return [InboxEntry(ticket=t, message=messages[t.message_id], due=service.ticket_next_due(t),
                       overdue=service.is_overdue(t, now), failed_replies=failed.get(t.id, 0)) for t in tickets]


def replies_of(*, session: Session, ticket: Ticket) -> list[Reply]:
    """Every reply to the ticket's message, automatic ones included, oldest first."""
    return list(session.exec(select(Reply).where(Reply.message_id == ticket.message_id)
                             .order_by(Reply.created_at, Reply.id)))


def ticket_history(*, session: Session, ticket: Ticket) -> list[AuditEvent]:
    reply_ids = list(session.exec(select(Reply.id).where(Reply.message_id == ticket.message_id)))
    events = list(session.exec(select(AuditEvent).where(AuditEvent.subject_type == "ticket",
                                                        AuditEvent.subject_id == ticket.id)))
    if reply_ids:
        events += session.exec(select(AuditEvent).where(AuditEvent.subject_type == "reply",
                                                        AuditEvent.subject_id.in_(reply_ids)))
    return sorted(events, key=lambda e: (e.at, e.id))


def ticket_detail(*, session: Session, ctx: Context, ticket_id: int, user: User | None,
                  now: datetime | None = None) -> TicketDetail:
    """Everything about a ticket. user None: a trusted caller (the CLI on the server) sees any ticket."""
    ticket = service.get_ticket(session=session, ticket_id=ticket_id)
    if user is not None:
        service.require_handler(session=session, user=user, ticket=ticket)
    message = session.get(Message, ticket.message_id)
    dept = session.get(Department, ticket.department_id) if ticket.department_id else None
    return TicketDetail(
        ticket=ticket, message=message, department=dept.name if dept else "",
        channel=channel_status(session=session, ctx=ctx, message=message, now=now or utcnow()),
        replies=replies_of(session=session, ticket=ticket), notes=service.notes(session=session, ticket_id=ticket.id),
        history=ticket_history(session=session, ticket=ticket),
    )


def failed_replies(*, session: Session, department_id: int | None = None) -> list[Reply]:
    """Replies that did not go out and wait for a person (retry, or answer another way)."""
    query = select(Reply).where(Reply.state == "failed")
    if department_id is not None:
        query = query.join(Ticket, Ticket.id == Reply.ticket_id).where(Ticket.department_id == department_id)
    return list(session.exec(query.order_by(Reply.created_at)))


# -- the channel ---------------------------------------------------------------------------------


def _refused_with(session: Session, message: Message, code: int) -> AuditEvent | None:
    reply_ids = list(session.exec(select(Reply.id).where(Reply.message_id == message.id)))
    if not reply_ids:
        return None
    for event in session.exec(select(AuditEvent).where(AuditEvent.subject_type == "reply",
                                                       AuditEvent.action == "reply.refused",
                                                       AuditEvent.subject_id.in_(reply_ids))):
        if event.detail.get("code") == code:
            return event
    return None


def last_citizen_message(*, session: Session, message: Message) -> Message | None:
    """The citizen's latest message or event to the account (what opens the 48-hour window)."""
    if not message.sender_id:
        return None
    return session.exec(select(Message).where(
        Message.account_id == message.account_id, Message.sender_id == message.sender_id,
        Message.kind == "wechat_message",
    ).order_by(Message.received_at.desc(), Message.id.desc()).limit(1)).first()


def channel_status(*, session: Session, ctx: Context, message: Message, now: datetime | None = None) -> ChannelStatus:
    """Whether the message can be answered through its platform now (`.as_dict()` for templates and JSON)."""
    now = now or utcnow()
    channel = CHANNELS[message.kind]
    if channel == "wechat_custom":
        return _custom_window(session=session, ctx=ctx, message=message, now=now)
    if not reply_target(message):
        return ChannelStatus(channel, False, "channel.no_target", option_codes=(OFFLINE_OPTION,))
    if channel == "wechat_comment":
        sent = session.exec(select(Reply).where(Reply.message_id == message.id, Reply.channel == "wechat_comment",
                                                Reply.state == "sent").limit(1)).first()
        if sent is not None:
            return ChannelStatus(channel, False, "channel.already_replied", (
                ("reply_id", sent.id), ("sent_at", f"{to_local(sent.sent_at, ctx.tz):%Y-%m-%d %H:%M}")),
                option_codes=(OFFLINE_OPTION, "option.close_if_answered"))
        # Polling marks a comment replied when the platform shows a reply nobody gave through govbot.
        outside = message.replied_at is not None and session.exec(select(Reply.id).where(
            Reply.message_id == message.id, Reply.state == "sent").limit(1)).first() is None
        if outside or _refused_with(session, message, ALREADY_REPLIED) is not None:
            return ChannelStatus(channel, False, "channel.answered_outside",
                                 option_codes=("option.record_platform", OFFLINE_OPTION, "option.close_resolved"))
    return ChannelStatus(channel, True)


def _custom_window(*, session: Session, ctx: Context, message: Message, now: datetime) -> ChannelStatus:
    channel = "wechat_custom"
    last = last_citizen_message(session=session, message=message)
    if last is None:
        return ChannelStatus(channel, False, "channel.no_sender", option_codes=(OFFLINE_OPTION,))
    if last.msg_type == "event" and last.dedupe_key.endswith(":unsubscribe"):
        return ChannelStatus(channel, False, "channel.unfollowed",
                             (("at", f"{to_local(last.received_at, ctx.tz):%Y-%m-%d %H:%M}"),),
                             option_codes=(OFFLINE_OPTION, "option.close_impossible"))
    closes_at = last.received_at + WECHAT_CUSTOM_WINDOW
    if now < closes_at:
        return ChannelStatus(channel, True, closes_at=closes_at)
    return ChannelStatus(channel, False, "channel.window_closed", (
        ("closed_at", f"{to_local(closes_at, ctx.tz):%Y-%m-%d %H:%M}"),
        ("last_at", f"{to_local(last.received_at, ctx.tz):%Y-%m-%d %H:%M}")), closes_at=closes_at,
        option_codes=(OFFLINE_OPTION, "option.wait_for_citizen", "option.close_not_needed"))


# -- answering -----------------------------------------------------------------------------------


def check_answer(*, ctx: Context, text: str, channel: str) -> list[Problem]:
    """The pre-send checks posts get (sensitive words, typos), plus the channel's length limit."""
    rules = rules_for(ctx.config)
    problems = check_sensitive("answer", text, rules) + check_typos("answer", text, rules)
    if channel == "weibo_comment" and len(text) > ctx.config.platforms.weibo.max_chars:
        problems.append(problem("answer_too_long", "answer", what="a Weibo comment", limit=ctx.config.platforms.weibo.max_chars,
                                length=len(text), unit="字", unit_en="characters"))
    if channel == "wechat_custom" and len(text.encode("utf-8")) > WECHAT_CUSTOM_MAX_BYTES:
        problems.append(problem("answer_too_long", "answer", what="a WeChat customer-service message",
                                limit=WECHAT_CUSTOM_MAX_BYTES, length=len(text.encode("utf-8")), unit=" 字节", unit_en="bytes"))
    return problems


def _note(session: Session, ticket_id: int | None, text: str) -> None:
    if ticket_id is not None:
        service.add_note(session=session, ticket_id=ticket_id, user=None, text=text)


def answer(*, session: Session, ctx: Context, ticket_id: int, user: User, text: str,
           now: datetime | None = None) -> Reply:
    """Write the user's answer as a Reply row: pending when the channel is open, else failed with the
    reason (the platform is not called). The caller commits, then sends (`send_reply`).

    Raises CheckFailed when the text fails the pre-send checks (nothing is written then).
    """
    now = now or utcnow()
    ticket = service.get_ticket(session=session, ticket_id=ticket_id)
    service.require_handler(session=session, user=user, ticket=ticket)
    if ticket.state == "closed":
        raise InvalidState("ticket.closed_answer", ticket_id=ticket.id, reason=ticket.close_reason,
                           reason_zh=CLOSE_REASONS.get(ticket.close_reason, ticket.close_reason))
    text = text.strip()
    if not text:
        raise TicketError("ticket.answer_empty")
    message = session.get(Message, ticket.message_id)
    channel = CHANNELS[message.kind]
    problems = check_answer(ctx=ctx, text=text, channel=channel)
    if problems:
        raise CheckFailed(problems)
    status = channel_status(session=session, ctx=ctx, message=message, now=now)
    reply = Reply(message_id=message.id, ticket_id=ticket.id, account_id=message.account_id,
                  sender_id=message.sender_id, author_id=user.id, channel=channel, text=text, created_at=now)
    if ticket.assignee_id is None:
        ticket.assignee_id = user.id
        session.add(ticket)
    if status.open:
        session.add(reply)
        session.flush()
        audit.record(session=session, actor=user.username, action="reply.queued", subject_type="reply",
                     subject_id=reply.id, ticket_id=ticket.id, channel=channel)
        return reply
    _not_sent(session, reply, status, actor=user.username)
    return reply


def record_offline_answer(*, session: Session, ticket_id: int, user: User, text: str, how: str = "phone",
                          answered_at: datetime | None = None) -> Reply:
    """Record an answer given outside the platform channel (phone 电话, in person 当面, letter, or on the
    platform's own console): it counts as the ticket's answer and as a reply to the message."""
    ticket = service.get_ticket(session=session, ticket_id=ticket_id)
    service.require_handler(session=session, user=user, ticket=ticket)
    if ticket.state == "closed":
        raise InvalidState("ticket.closed", ticket_id=ticket.id, reason=ticket.close_reason, action="record an answer",
                           reason_zh=CLOSE_REASONS.get(ticket.close_reason, ticket.close_reason), action_zh="登记答复")
    if how not in OFFLINE_HOW:
        raise TicketError("ticket.unknown_how", how=how, known=", ".join(OFFLINE_HOW))
    text = text.strip()
    if not text:
        raise TicketError("ticket.offline_text")
    now = utcnow()
    at = answered_at or now
    if at.utcoffset() is None:
        raise TicketError("ticket.answered_at_tz")
    if at > now + timedelta(minutes=5):
        raise TicketError("ticket.answered_future")
    message = session.get(Message, ticket.message_id)
    if at < message.received_at:
        raise TicketError("ticket.answered_before")
    reply = Reply(message_id=message.id, ticket_id=ticket.id, account_id=message.account_id,
                  sender_id=message.sender_id, author_id=user.id, channel=OFFLINE, text=text, state="sent",
                  attempts=0, created_at=now, sent_at=at)
    session.add(reply)
    session.flush()
    replies.mark_answered(session, ticket, message, at)
    audit.record(session=session, actor=user.username, action="reply.recorded_offline", subject_type="reply",
                 subject_id=reply.id, ticket_id=ticket.id, how=how, answered_at=at.isoformat())
    return reply


def retry_reply(*, session: Session, reply_id: int, user: User) -> Reply:
    """Put a failed reply back in line (or bring a waiting retry forward); the caller commits and sends."""
    reply = session.get(Reply, reply_id)
    if reply is None:
        raise NotFound("reply.not_found", reply_id=reply_id)
    if reply.ticket_id is not None:
        service.require_handler(session=session, user=user,
                                ticket=service.get_ticket(session=session, ticket_id=reply.ticket_id))
    elif not user.has_role("admin"):
        raise PermissionDenied("reply.retry_admin_only", user=user.username, reply_id=reply.id)
    if reply.state not in ("failed", "pending"):
        raise InvalidState("reply.not_retryable", reply_id=reply.id, state=reply.state, state_zh=label(reply.state, "reply"))
    message = session.get(Message, reply.message_id)
    if reply.channel == "wechat_comment" and _refused_with(session, message, ALREADY_REPLIED) is not None:
        raise InvalidState("reply.already_replied", reply_id=reply.id)
    reply.state, reply.attempts, reply.lease_owner, reply.lease_until = "pending", 0, None, None
    session.add(reply)
    audit.record(session=session, actor=user.username, action="reply.retry_requested", subject_type="reply",
                 subject_id=reply.id, ticket_id=reply.ticket_id, last_error=reply.last_error)
    return reply


# -- sending (bot.replies) -----------------------------------------------------------------------


def _not_sent(session: Session, reply: Reply, status: ChannelStatus, *, actor: str) -> None:
    """The channel is closed: the reply fails without calling the platform, and the ticket says what else works."""
    reply.state, reply.lease_owner, reply.lease_until = "failed", None, None
    reply.last_error = text_zh("reply.not_sent", reason=status.reason)
    session.add(reply)
    session.flush()
    audit.record(session=session, actor=actor, action="reply.channel_closed", subject_type="reply",
                 subject_id=reply.id, ticket_id=reply.ticket_id, channel=reply.channel, reason=status.reason,
                 reason_code=status.code, options=list(status.options))
    _note(session, reply.ticket_id, text_zh("note.not_sent", reply_id=reply.id, reason=status.reason,
                                            options="；".join(status.options)))


def _may_send(session: Session, ctx: Context, reply: Reply, message: Message, now: datetime) -> bool:
    """The channel may have closed while the reply waited (the 48-hour window, an answer on the platform)."""
    status = channel_status(session=session, ctx=ctx, message=message, now=now)
    if reply.channel in CHANNELS.values() and not status.open:
        _not_sent(session, reply, status, actor=SYSTEM)
        return False
    return True


def _refusal_note(reply_id: int, exc: PlatformError) -> str:
    if exc.code == ALREADY_REPLIED:
        return text_zh("note.refused_replied", reply_id=reply_id)
    if exc.code == WINDOW_CLOSED:
        return text_zh("note.refused_window", reply_id=reply_id)
    return text_zh("note.refused", reply_id=reply_id, error=exc.message_zh)


_ACTIONS = {"sent": "reply.sent", "retry": "reply.retry_scheduled", "failed": "reply.failed",
            "refused": "reply.refused", "interrupted": "reply.interrupted"}


def _settled(session: Session, ctx: Context, reply: Reply, message: Message, result: replies.Result) -> None:
    """Every step is an audit event on the reply; what a person must do next is a note on the ticket."""
    detail: dict[str, Any] = {"ticket_id": reply.ticket_id, "channel": reply.channel, "attempt": result.attempt}
    if result.outcome == "retry":
        detail.update(error=reply.last_error, retry_in_s=round(result.retry_in, 1))
    elif result.outcome in ("failed", "refused"):
        detail.update(error=reply.last_error, code=getattr(result.exc, "code", None))
    audit.record(session=session, actor=SYSTEM, action=_ACTIONS[result.outcome], subject_type="reply",
                 subject_id=reply.id, **detail)
    if result.outcome == "refused":
        _note(session, reply.ticket_id, _refusal_note(reply.id, result.exc))
    elif result.outcome == "interrupted":
        _note(session, reply.ticket_id, text_zh("note.reply_error", reply_id=reply.id, error=reply.last_error))


RESPONDERS = replies.Policy(settled=_settled, may_send=_may_send)


def send_pending_replies(ctx: Context, *, now: datetime | None = None) -> int:
    """Send the responders' replies that are due; returns how many were handed to their platform."""
    return replies.send_due(ctx, {False: RESPONDERS}, now=now).attempted


def answer_and_send(ctx: Context, *, ticket_id: int, username: str, text: str) -> Reply:
    """`answer`, committed, then sent at once: what the CLI and the API do."""
    with ctx.session() as session:
        user = _user(session, username)
        reply = answer(session=session, ctx=ctx, ticket_id=ticket_id, user=user, text=text)
    if reply.state != "pending":
        return reply
    return replies.send_reply(ctx, reply.id, {False: RESPONDERS})


def retry_and_send(ctx: Context, *, reply_id: int, username: str) -> Reply:
    with ctx.session() as session:
        retry_reply(session=session, reply_id=reply_id, user=_user(session, username))
    return replies.send_reply(ctx, reply_id, {False: RESPONDERS})


def _user(session: Session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound("user.not_found", username=username)
    return user
