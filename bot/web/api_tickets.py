"""JSON API for tickets and answers under /api/tickets (Bearer API token or the console's session).

Every action runs in its own transaction that commits before the response, with the calling user's
permissions (bot.tickets.service.can_handle) and audit trail. Domain errors become JSON errors in
bot.web.app (404 not found, 403 permission, 409 state, 422 failed checks with the problems).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from bot.clock import utcnow
from bot.context import Context
from bot.errors import PermissionDenied
from bot.models import AuditEvent, Message, Reply, ReplyTemplate, Ticket, TicketNote, User
from bot.tickets import answering, service
from bot.web.deps import current_user, get_ctx
from bot.web.schemas.common import ERROR_RESPONSES, Page, PageParams, page
from bot.web.schemas.tickets import (
    AnswerOut,
    InboxItemOut,
    NoteOut,
    OfflineAnswerOut,
    ReplyOut,
    TemplateOut,
    TicketDetailOut,
    TicketOut,
)

router = APIRouter(prefix="/api/tickets", tags=["tickets"], responses=ERROR_RESPONSES)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnswerIn(_Body):
    text: str = Field(min_length=1)


class OfflineAnswerIn(_Body):
    text: str = Field(min_length=1)
    how: str = "phone"
    answered_at: datetime | None = None


class ReassignIn(_Body):
    department: str | int
    reason: str = Field(min_length=1)


class CloseIn(_Body):
    reason: str
    note: str = ""


class NoteIn(_Body):
    text: str = Field(min_length=1)


class TemplateIn(_Body):
    name: str
    text: str
    department_id: int | None = None


class TemplateEdit(_Body):
    name: str | None = None
    text: str | None = None


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def ticket_json(t: Ticket, now: datetime) -> dict[str, Any]:
    return {
        "id": t.id, "message_id": t.message_id, "department_id": t.department_id, "intent": t.intent,
        "topic": t.topic, "priority": t.priority, "state": t.state, "close_reason": t.close_reason,
        "assignee_id": t.assignee_id, "created_at": _iso(t.created_at),
        "first_response_due": _iso(t.first_response_due), "resolution_due": _iso(t.resolution_due),
        "warn_at": _iso(t.warn_at), "due": _iso(service.ticket_next_due(t)), "overdue": service.is_overdue(t, now),
        "warned_at": _iso(t.warned_at), "escalated_at": _iso(t.escalated_at),
        "first_response_at": _iso(t.first_response_at), "answered_at": _iso(t.answered_at),
        "closed_at": _iso(t.closed_at),
    }


def message_json(m: Message) -> dict[str, Any]:
    return {"id": m.id, "account_id": m.account_id, "kind": m.kind, "sender_id": m.sender_id,
            "sender_name": m.sender_name, "text": m.text, "received_at": _iso(m.received_at),
            "intent": m.intent, "topic": m.topic, "replied_at": _iso(m.replied_at)}


def reply_json(r: Reply) -> dict[str, Any]:
    return {"id": r.id, "ticket_id": r.ticket_id, "message_id": r.message_id, "channel": r.channel,
            "text": r.text, "state": r.state, "automatic": r.automatic, "author_id": r.author_id,
            "attempts": r.attempts, "last_error": r.last_error, "remote_id": r.remote_id,
            "created_at": _iso(r.created_at), "sent_at": _iso(r.sent_at),
            "next_attempt_at": _iso(r.lease_until) if r.state == "pending" else None}


def note_json(n: TicketNote) -> dict[str, Any]:
    return {"id": n.id, "ticket_id": n.ticket_id, "author_id": n.author_id, "text": n.text,
            "created_at": _iso(n.created_at)}


def event_json(e: AuditEvent) -> dict[str, Any]:
    return {"at": _iso(e.at), "actor": e.actor, "action": e.action, "subject_type": e.subject_type,
            "subject_id": e.subject_id, "detail": e.detail}


def template_json(t: ReplyTemplate) -> dict[str, Any]:
    return {"id": t.id, "department_id": t.department_id, "name": t.name, "text": t.text}


def _department_of(user: User, department_id: int | None) -> int:
    dept = department_id if department_id is not None else user.department_id
    if dept is None:
        raise PermissionDenied("user.no_department_give", user=user.username)
    return dept


# -- templates and failed replies (before /{ticket_id} so the paths do not clash) ----------------


@router.get("/templates", response_model=Page[TemplateOut])
def list_templates(request: Request, department_id: int | None = None, params: PageParams = Depends(),
                   ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as s:
        return page(request, params, [template_json(t) for t in service.list_templates(
            session=s, department_id=_department_of(user, department_id))])


@router.post("/templates", status_code=201, response_model=TemplateOut)
def create_template(body: TemplateIn, ctx: Context = Depends(get_ctx),
                    user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as s:
        return template_json(service.create_template(
            session=s, department_id=_department_of(user, body.department_id), name=body.name, text=body.text,
            user=user))


@router.put("/templates/{template_id}", response_model=TemplateOut)
def update_template(template_id: int, body: TemplateEdit, ctx: Context = Depends(get_ctx),
                    user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as s:
        return template_json(service.update_template(session=s, template_id=template_id, user=user,
                                                     name=body.name, text=body.text))


@router.delete("/templates/{template_id}", status_code=204)
def delete_template(template_id: int, ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> None:
    with ctx.session() as s:
        service.delete_template(session=s, template_id=template_id, user=user)


@router.get("/replies/failed", response_model=Page[ReplyOut])
def failed_replies(request: Request, params: PageParams = Depends(), ctx: Context = Depends(get_ctx),
                   user: User = Depends(current_user)) -> dict[str, Any]:
    """Replies of the user's department that did not go out (admins without a department: all)."""
    if user.department_id is None and not user.has_role("admin"):
        raise PermissionDenied("user.no_department", user=user.username)
    with ctx.session() as s:
        return page(request, params,
                    [reply_json(r) for r in answering.failed_replies(session=s, department_id=user.department_id)])


@router.post("/replies/{reply_id}/retry", response_model=ReplyOut)
def retry_reply(reply_id: int, ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> dict[str, Any]:
    return reply_json(answering.retry_and_send(ctx, reply_id=reply_id, username=user.username))


# -- tickets -------------------------------------------------------------------------------------


@router.get("", response_model=Page[InboxItemOut])
def inbox(request: Request, state: str = "open", overdue: bool = False, params: PageParams = Depends(),
          ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> dict[str, Any]:
    """The user's department's tickets in deadline order, the most overdue first (`overdue`: only those past
    their deadline, as `govbot tickets list --overdue`)."""
    now = utcnow()
    with ctx.session() as s:
        entries = [e for e in answering.inbox(session=s, user=user, state=state, now=now) if e.overdue or not overdue]
        chosen = entries[params.offset:params.offset + params.limit]
        return page(request, params, [{**ticket_json(e.ticket, now), "message": message_json(e.message),
                                       "failed_replies": e.failed_replies} for e in chosen], total=len(entries))


@router.get("/{ticket_id}", response_model=TicketDetailOut)
def show(ticket_id: int, ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> dict[str, Any]:
    now = utcnow()
    with ctx.session() as s:
        d = answering.ticket_detail(session=s, ctx=ctx, ticket_id=ticket_id, user=user, now=now)
        return {**ticket_json(d.ticket, now), "department": d.department, "message": message_json(d.message),
                "channel": d.channel.as_dict(), "replies": [reply_json(r) for r in d.replies],
                "notes": [note_json(n) for n in d.notes], "history": [event_json(e) for e in d.history]}


def _ticket(ctx: Context, ticket_id: int) -> dict[str, Any]:
    with ctx.session() as s:
        return ticket_json(service.get_ticket(session=s, ticket_id=ticket_id), utcnow())


@router.post("/{ticket_id}/acknowledge", response_model=TicketOut)
def acknowledge(ticket_id: int, ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as s:
        service.acknowledge(session=s, ticket_id=ticket_id, user=user)
    return _ticket(ctx, ticket_id)


@router.post("/{ticket_id}/answer", response_model=AnswerOut)
def answer(ticket_id: int, body: AnswerIn, ctx: Context = Depends(get_ctx),
           user: User = Depends(current_user)) -> dict[str, Any]:
    """Answer through the ticket's channel. The reply's state says what happened: sent, pending (retried
    automatically), or failed with the reason; `channel` says what is still possible."""
    reply = answering.answer_and_send(ctx, ticket_id=ticket_id, username=user.username, text=body.text)
    with ctx.session() as s:
        message = s.get(Message, reply.message_id)
        channel = answering.channel_status(session=s, ctx=ctx, message=message)
    return {"reply": reply_json(reply), "ticket": _ticket(ctx, ticket_id), "channel": channel.as_dict()}


@router.post("/{ticket_id}/offline-answer", status_code=201, response_model=OfflineAnswerOut)
def offline_answer(ticket_id: int, body: OfflineAnswerIn, ctx: Context = Depends(get_ctx),
                   user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as s:
        reply = answering.record_offline_answer(session=s, ticket_id=ticket_id, user=user, text=body.text,
                                                how=body.how, answered_at=body.answered_at)
    return {"reply": reply_json(reply), "ticket": _ticket(ctx, ticket_id)}


@router.post("/{ticket_id}/reassign", response_model=TicketOut)
def reassign(ticket_id: int, body: ReassignIn, ctx: Context = Depends(get_ctx),
             user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as s:
        service.reassign(session=s, ticket_id=ticket_id, department=body.department, reason=body.reason, user=user)
    return _ticket(ctx, ticket_id)


@router.post("/{ticket_id}/close", response_model=TicketOut)
def close(ticket_id: int, body: CloseIn, ctx: Context = Depends(get_ctx),
          user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as s:
        service.close(session=s, ticket_id=ticket_id, reason=body.reason, note=body.note, user=user)
    return _ticket(ctx, ticket_id)


@router.get("/{ticket_id}/notes", response_model=Page[NoteOut])
def list_notes(request: Request, ticket_id: int, params: PageParams = Depends(), ctx: Context = Depends(get_ctx),
               user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as s:
        service.require_handler(session=s, user=user, ticket=service.get_ticket(session=s, ticket_id=ticket_id))
        return page(request, params, [note_json(n) for n in service.notes(session=s, ticket_id=ticket_id)])


@router.post("/{ticket_id}/notes", status_code=201, response_model=NoteOut)
def add_note(ticket_id: int, body: NoteIn, ctx: Context = Depends(get_ctx),
             user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as s:
        return note_json(service.add_note(session=s, ticket_id=ticket_id, user=user, text=body.text))
