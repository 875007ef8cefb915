"""Response models of /api/tickets."""

from __future__ import annotations

from typing import Any

from bot.web.schemas.common import Out


class TicketOut(Out):
    id: int
    message_id: int
    department_id: int | None
    intent: str
    topic: str | None
    priority: int
    state: str
    close_reason: str | None
    created_at: str | None
    due: str | None
    overdue: bool


class MessageOut(Out):
    id: int
    account_id: int
    kind: str
    text: str
    received_at: str | None
    intent: str | None
    topic: str | None


class InboxItemOut(TicketOut):
    message: MessageOut
    failed_replies: int


class ReplyOut(Out):
    id: int
    ticket_id: int | None
    channel: str
    text: str
    state: str
    automatic: bool
    attempts: int
    last_error: str | None
    created_at: str | None
    sent_at: str | None


class NoteOut(Out):
    id: int
    ticket_id: int
    text: str
    created_at: str | None


class EventOut(Out):
    at: str | None
    actor: str
    action: str
    subject_type: str
    subject_id: int | None
    detail: dict[str, Any]


class ChannelOut(Out):
    channel: str
    open: bool
    reason: str
    reason_code: str | None = None
    options: list[str]


class TicketDetailOut(TicketOut):
    department: str | None
    message: MessageOut
    channel: ChannelOut
    replies: list[ReplyOut]
    notes: list[NoteOut]
    history: list[EventOut]


class TemplateOut(Out):
    id: int
    department_id: int
    name: str
    text: str


class AnswerOut(Out):
    reply: ReplyOut
    ticket: TicketOut
    channel: ChannelOut


class OfflineAnswerOut(Out):
    reply: ReplyOut
    ticket: TicketOut
