"""Tickets (工单): opening them with working-day deadlines, warning and escalating, and handling them.

A ticket is opened for every citizen message or comment that needs an answer (complaint 投诉,
question 咨询, suggestion 建议), never for praise, other or spam. Its life:
new -> acknowledged (签收) -> answered (已答复) -> closed (办结, with a reason); reassigning (转办)
sends it back to new in the other department. Answering lives in bot/tickets/answering.py.

`check_deadlines` (a periodic job) claims tickets whose warning time or deadline passed: a warning
for the department's responders at warn_at, an escalation to the department leads (部门负责人) once a
deadline passes unanswered. Both are audit events (`ticket.warned`, `ticket.escalated`) naming who
is to be told and, in the same transaction, notifications (e-mail, WeCom robot) that the
`notifications.send` job delivers (bot/tickets/notifications.py); the daily digest lists them too.

Every change is an audit event with the acting user's name ("system" for jobs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy import and_, case, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot import audit
from bot.clock import utcnow
from bot.context import Context
from bot.db import claim
from bot.errors import GovbotError, InvalidState, NotFound, PermissionDenied
from bot.labels import label
from bot.models import Department, Message, ReplyTemplate, Ticket, TicketNote, User
from bot.permissions import allowed
from bot.tickets import notifications
from bot.tickets.policy import TICKET_INTENTS

# new | acknowledged | answered | closed
STATES = ("new", "acknowledged", "answered", "closed")
OPEN_STATES = ("new", "acknowledged")
CLOSE_REASONS = {
    "spam": "垃圾信息",
    "duplicate": "重复",
    "no_answer_needed": "无需答复",
    "resolved": "已办结",
}
# 1 high, 2 normal, 3 low (Ticket.priority): a complaint reports a problem someone must fix.
SYSTEM = "system"


class TicketError(GovbotError):
    """A ticket action got bad input (unknown reason, empty text ...)."""


def next_due():
    """SQL: the deadline a ticket is working towards - first response until there is one, then resolution."""
    return case((Ticket.first_response_at.is_(None), Ticket.first_response_due), else_=Ticket.resolution_due)


def ticket_next_due(ticket: Ticket) -> datetime:
    return ticket.first_response_due if ticket.first_response_at is None else ticket.resolution_due


def is_overdue(ticket: Ticket, now: datetime) -> bool:
    return ticket.state in OPEN_STATES and ticket_next_due(ticket) <= now


# -- opening -------------------------------------------------------------------------------------


def needs_ticket(message: Message) -> bool:
    return not message.spam and message.intent in TICKET_INTENTS


def default_department(*, session: Session, ctx: Context) -> Department:
    name = ctx.config.triage.default_department
    dept = session.exec(select(Department).where(Department.name == name)).first()
    if dept is None:
        raise NotFound("ticket.default_department_missing", name=name)
    return dept


def open_ticket(*, session: Session, ctx: Context, message: Message) -> Ticket | None:
    """The ticket for a classified message: created once per message, None when it needs no answer.

    Deadlines are counted in working days from when the citizen's message arrived. Safe to call
    again for the same message (returns the existing ticket), also from concurrent workers.
    """
    if message.id is None:
        session.add(message)
        session.flush()
    existing = session.exec(select(Ticket).where(Ticket.message_id == message.id)).first()
    if existing is not None:
        return existing
    if not needs_ticket(message):
        return None
    deadlines = ctx.policy.deadlines(message.received_at, message.intent, message.topic, ctx.calendar, ctx.tz)
    if deadlines is None:
        return None
    department_id = message.department_id or default_department(session=session, ctx=ctx).id
    ticket = Ticket(
        message_id=message.id,
        department_id=department_id,
        intent=message.intent,
        topic=message.topic,
        priority=ctx.config.tickets.priority.get(message.intent, 2),
        created_at=message.received_at,
        first_response_due=deadlines.first_response_due,
        resolution_due=deadlines.resolution_due,
        warn_at=deadlines.warn_at,
        # An automatic answer (FAQ) already reached the citizen: that is the first response.
        first_response_at=message.replied_at,
    )
    try:
        with session.begin_nested():
            session.add(ticket)
            session.flush()
    except IntegrityError:
        # Another worker opened it between our check and insert.
        return session.exec(select(Ticket).where(Ticket.message_id == message.id)).one()
    audit.record(session=session, actor=SYSTEM, action="ticket.opened", subject_type="ticket",
                 subject_id=ticket.id, message_id=message.id, department_id=department_id,
                 intent=ticket.intent, topic=ticket.topic, priority=ticket.priority,
                 first_response_due=deadlines.first_response_due.isoformat(),
                 resolution_due=deadlines.resolution_due.isoformat())
    return ticket


# -- warnings and escalations --------------------------------------------------------------------


@dataclass(frozen=True)
class DeadlineCheck:
    warned: list[int]
    escalated: list[int]


def _due_conditions(now: datetime) -> list:
    warn = and_(Ticket.warned_at.is_(None), Ticket.warn_at <= now)
    missed = or_(Ticket.resolution_due <= now,
                 and_(Ticket.first_response_at.is_(None), Ticket.first_response_due <= now))
    escalate = and_(Ticket.escalated_at.is_(None), missed)
    return [Ticket.state.in_(OPEN_STATES), or_(warn, escalate)]


def department_people(*, session: Session, department_id: int | None, leads: bool) -> list[User]:
    """Active responders of a department (leads=False) or its leads (leads=True)."""
    query = select(User).where(User.department_id == department_id, User.active.is_(True))
    if leads:
        query = query.where(User.department_lead.is_(True))
    users = list(session.exec(query.order_by(User.username)))
    return users if leads else [u for u in users if u.has_role("responder") or u.department_lead]


def check_deadlines(ctx: Context, *, now: datetime | None = None) -> DeadlineCheck:
    """Warn about and escalate the tickets whose times have passed (periodic job).

    Each ticket is claimed with a lease, so several workers share the work and none repeats it;
    warned_at and escalated_at make both happen once per ticket (per department, see reassign).
    """
    now = now or utcnow()
    lease = timedelta(seconds=ctx.config.scheduler.lease_seconds)
    warned: list[int] = []
    escalated: list[int] = []
    while True:
        # A handled ticket no longer matches the conditions, so each batch brings new ones.
        with ctx.session() as session:
            batch = claim(session, Ticket, _due_conditions(now), owner=ctx.worker_id, lease=lease,
                          limit=ctx.config.scheduler.batch_size, order_by=Ticket.id, now=now)
            for ticket in batch:
                if ticket.warned_at is None and ticket.warn_at <= now:
                    _warn(session=session, ctx=ctx, ticket=ticket, now=now)
                    warned.append(ticket.id)
                if ticket.escalated_at is None and _missed(ticket, now) is not None:
                    _escalate(session=session, ctx=ctx, ticket=ticket, now=now)
                    escalated.append(ticket.id)
                ticket.lease_owner = ticket.lease_until = None
                session.add(ticket)
        if not batch:
            return DeadlineCheck(warned=warned, escalated=escalated)


def _missed(ticket: Ticket, now: datetime) -> str | None:
    if ticket.resolution_due <= now:
        return "resolution"
    if ticket.first_response_at is None and ticket.first_response_due <= now:
        return "first_response"
    return None


def _department_name(session: Session, department_id: int | None) -> str:
    dept = session.get(Department, department_id) if department_id is not None else None
    return dept.name if dept is not None else "(none)"


def _warn(*, session: Session, ctx: Context, ticket: Ticket, now: datetime) -> None:
    people = department_people(session=session, department_id=ticket.department_id, leads=False)
    dept = _department_name(session, ticket.department_id)
    ticket.warned_at = now
    audit.record(session=session, actor=SYSTEM, action="ticket.warned", subject_type="ticket", subject_id=ticket.id,
                 department=dept, notify=[u.username for u in people],
                 due=ticket_next_due(ticket).isoformat(), resolution_due=ticket.resolution_due.isoformat())
    # warn_at is a share of the time to resolution: once the first response is late (escalated), the
    # warning is about the resolution deadline.
    first_pending = ticket.first_response_at is None and ticket.first_response_due > now
    deadline = "first_response" if first_pending else "resolution"
    notifications.queue(session=session, config=ctx.config, kind="warning", ticket=ticket, department=dept,
                        deadline=deadline, people=people, now=now)
    logger.warning("ticket {} ({}) is due {}: warning {}", ticket.id, dept, ticket.resolution_due.isoformat(),
                   ", ".join(u.username for u in people) or "nobody (the department has no responder)")


def _escalate(*, session: Session, ctx: Context, ticket: Ticket, now: datetime) -> None:
    leads = department_people(session=session, department_id=ticket.department_id, leads=True)
    dept = _department_name(session, ticket.department_id)
    missed = _missed(ticket, now)
    due = ticket.resolution_due if missed == "resolution" else ticket.first_response_due
    ticket.escalated_at = now
    audit.record(session=session, actor=SYSTEM, action="ticket.escalated", subject_type="ticket",
                 subject_id=ticket.id, department=dept, missed=missed, due=due.isoformat(),
                 notify=[u.username for u in leads])
    notifications.queue(session=session, config=ctx.config, kind="escalation", ticket=ticket, department=dept,
                        deadline=missed, people=leads, now=now)
    if leads:
        logger.warning("ticket {} ({}) missed its {} deadline {}: escalated to {}", ticket.id, dept, missed,
                       due.isoformat(), ", ".join(u.username for u in leads))
    else:
        logger.error("ticket {} ({}) missed its {} deadline {} and the department has no lead to escalate to "
                     "(set departments[].lead in the config)", ticket.id, dept, missed, due.isoformat())


# -- handling ------------------------------------------------------------------------------------


def get_ticket(*, session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound("ticket.not_found", ticket_id=ticket_id)
    return ticket


def get_department(*, session: Session, name_or_id: str | int) -> Department:
    if isinstance(name_or_id, int) or str(name_or_id).isdigit():
        dept = session.get(Department, int(name_or_id))
    else:
        dept = session.exec(select(Department).where(Department.name == name_or_id)).first()
    if dept is None:
        raise NotFound("department.not_found", name=name_or_id)
    return dept


def can_handle(user: User, department_id: int | None) -> bool:
    """Admins handle every department's tickets; responders and leads their own department's (bot.permissions)."""
    return allowed(user, "tickets.handle", department_id)


def require_handler(*, session: Session, user: User, ticket: Ticket) -> None:
    if not can_handle(user, ticket.department_id):
        raise PermissionDenied("ticket.other_department", user=user.username, ticket_id=ticket.id,
                           department=_department_name(session, ticket.department_id))


def _require_open(ticket: Ticket, action: str) -> None:
    if ticket.state == "closed":
        raise InvalidState("ticket.closed", ticket_id=ticket.id, reason=ticket.close_reason, action=action,
                           reason_zh=CLOSE_REASONS.get(ticket.close_reason, ticket.close_reason), action_zh=label(action, "verb"))


def add_note(*, session: Session, ticket_id: int, user: User | None, text: str) -> TicketNote:
    """An internal note (内部备注), never sent to the citizen. user None: written by the system."""
    ticket = get_ticket(session=session, ticket_id=ticket_id)
    if user is not None:
        require_handler(session=session, user=user, ticket=ticket)
    text = text.strip()
    if not text:
        raise TicketError("ticket.note_empty")
    note = TicketNote(ticket_id=ticket.id, author_id=user.id if user else None, text=text)
    session.add(note)
    session.flush()
    audit.record(session=session, actor=user.username if user else SYSTEM, action="ticket.note_added",
                 subject_type="ticket", subject_id=ticket.id, note_id=note.id)
    return note


def notes(*, session: Session, ticket_id: int) -> list[TicketNote]:
    return list(session.exec(select(TicketNote).where(TicketNote.ticket_id == ticket_id)
                             .order_by(TicketNote.created_at, TicketNote.id)))


def acknowledge(*, session: Session, ticket_id: int, user: User) -> Ticket:
    """签收: the user takes the ticket on; the citizen is not told (that is the first answer)."""
    ticket = get_ticket(session=session, ticket_id=ticket_id)
    require_handler(session=session, user=user, ticket=ticket)
    _require_open(ticket, "acknowledge it")
    if ticket.state != "new":
        raise InvalidState("ticket.already", ticket_id=ticket.id, state=ticket.state, state_zh=label(ticket.state, "ticket"))
    ticket.state = "acknowledged"
    ticket.assignee_id = user.id
    session.add(ticket)
    audit.record(session=session, actor=user.username, action="ticket.acknowledged", subject_type="ticket",
                 subject_id=ticket.id)
    return ticket


def assign(*, session: Session, ticket_id: int, assignee_id: int, user: User) -> Ticket:
    """指派: give the ticket to a named responder (or lead) of its department."""
    ticket = get_ticket(session=session, ticket_id=ticket_id)
    require_handler(session=session, user=user, ticket=ticket)
    _require_open(ticket, "assign it")
    assignee = session.get(User, assignee_id)
    if assignee is None or not assignee.active:
        raise NotFound("user.not_active", user_id=assignee_id)
    if assignee.department_id != ticket.department_id or not (assignee.has_role("responder") or assignee.department_lead):
        raise PermissionDenied("ticket.not_a_handler", user=assignee.username,
                               department=_department_name(session, ticket.department_id))
    ticket.assignee_id = assignee.id
    session.add(ticket)
    audit.record(session=session, actor=user.username, action="ticket.assigned", subject_type="ticket",
                 subject_id=ticket.id, assignee=assignee.username)
    return ticket


def reassign(*, session: Session, ticket_id: int, department: str | int, reason: str, user: User) -> Ticket:
    """转办: move the ticket to another department, with a reason (kept as an audit event and a note).

    The deadlines stay (the citizen's wait does not restart); the new department gets its own
    warning and escalation, and takes the ticket on afresh (state new).
    """
    ticket = get_ticket(session=session, ticket_id=ticket_id)
    require_handler(session=session, user=user, ticket=ticket)
    _require_open(ticket, "reassign it")
    reason = reason.strip()
    if not reason:
        raise TicketError("ticket.reassign_reason")
    target = get_department(session=session, name_or_id=department)
    if target.id == ticket.department_id:
        raise InvalidState("ticket.same_department", ticket_id=ticket.id, department=target.name)
    source = _department_name(session, ticket.department_id)
    ticket.department_id = target.id
    ticket.assignee_id = None
    ticket.warned_at = ticket.escalated_at = None
    if ticket.state == "acknowledged":
        ticket.state = "new"
    session.add(ticket)
    audit.record(session=session, actor=user.username, action="ticket.reassigned", subject_type="ticket",
                 subject_id=ticket.id, from_department=source, to_department=target.name, reason=reason)
    add_note(session=session, ticket_id=ticket.id, user=None, text=f"转办 {source} → {target.name}"
             f"（{user.display_name or user.username}）: {reason}")
    return ticket


def close(*, session: Session, ticket_id: int, reason: str, user: User, note: str = "") -> Ticket:
    """Close with a reason: spam, duplicate, no_answer_needed or resolved (see CLOSE_REASONS)."""
    ticket = get_ticket(session=session, ticket_id=ticket_id)
    require_handler(session=session, user=user, ticket=ticket)
    _require_open(ticket, "close it again")
    if reason not in CLOSE_REASONS:
        raise TicketError("ticket.unknown_close_reason", reason=reason, known=", ".join(CLOSE_REASONS))
    now = utcnow()
    ticket.state = "closed"
    ticket.close_reason = reason
    ticket.closed_at = now
    session.add(ticket)
    if reason == "spam":
        # A person's verdict: reports leave spam out of the messages that needed an answer.
        message = session.get(Message, ticket.message_id)
        message.spam = True
        message.needs_answer = False
        session.add(message)
    audit.record(session=session, actor=user.username, action="ticket.closed", subject_type="ticket",
                 subject_id=ticket.id, reason=reason, note=note.strip() or None)
    if note.strip():
        add_note(session=session, ticket_id=ticket.id, user=user, text=note)
    return ticket


def list_tickets(
    *,
    session: Session,
    department_id: int | None = None,
    states: tuple[str, ...] | None = OPEN_STATES,
    overdue: bool = False,
    now: datetime | None = None,
    limit: int | None = None,
) -> list[Ticket]:
    """Tickets in deadline order (the next deadline each works towards): the most overdue first."""
    now = now or utcnow()
    query = select(Ticket)
    if department_id is not None:
        query = query.where(Ticket.department_id == department_id)
    if states is not None:
        unknown = [s for s in states if s not in STATES]
        if unknown:
            raise TicketError("ticket.unknown_states", states=", ".join(unknown), known=", ".join(STATES))
        query = query.where(Ticket.state.in_(states))
    if overdue:
        query = query.where(Ticket.state.in_(OPEN_STATES), next_due() <= now)
    query = query.order_by(next_due(), Ticket.priority, Ticket.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


# -- reply templates (答复模板) ------------------------------------------------------------------


def _require_department_member(user: User, department_id: int) -> None:
    if not allowed(user, "templates.write", department_id):
        raise PermissionDenied("template.other_department", user=user.username)


def list_templates(*, session: Session, department_id: int) -> list[ReplyTemplate]:
    return list(session.exec(select(ReplyTemplate).where(ReplyTemplate.department_id == department_id)
                             .order_by(ReplyTemplate.name)))


def get_template(*, session: Session, template_id: int) -> ReplyTemplate:
    template = session.get(ReplyTemplate, template_id)
    if template is None:
        raise NotFound("template.not_found", template_id=template_id)
    return template


def _template_fields(name: str, text: str) -> tuple[str, str]:
    name, text = name.strip(), text.strip()
    if not name or len(name) > 100:
        raise TicketError("template.bad_name")
    if not text:
        raise TicketError("template.empty", name=name)
    return name, text


def _unique_name(session: Session, department_id: int, name: str, template_id: int | None = None) -> None:
    clash = session.exec(select(ReplyTemplate).where(ReplyTemplate.department_id == department_id,
                                                     ReplyTemplate.name == name)).first()
    if clash is not None and clash.id != template_id:
        raise InvalidState("template.duplicate", name=name, template_id=clash.id)


def create_template(*, session: Session, department_id: int, name: str, text: str, user: User) -> ReplyTemplate:
    get_department(session=session, name_or_id=department_id)  # a clear 404, not a foreign-key failure
    _require_department_member(user, department_id)
    name, text = _template_fields(name, text)
    _unique_name(session, department_id, name)
    template = ReplyTemplate(department_id=department_id, name=name, text=text)
    session.add(template)
    session.flush()
    audit.record(session=session, actor=user.username, action="template.created", subject_type="reply_template",
                 subject_id=template.id, department_id=department_id, name=name)
    return template


def update_template(*, session: Session, template_id: int, user: User, name: str | None = None,
                    text: str | None = None) -> ReplyTemplate:
    template = get_template(session=session, template_id=template_id)
    _require_department_member(user, template.department_id)
    name, text = _template_fields(template.name if name is None else name, template.text if text is None else text)
    _unique_name(session, template.department_id, name, template.id)
    template.name, template.text = name, text
    session.add(template)
    audit.record(session=session, actor=user.username, action="template.updated", subject_type="reply_template",
                 subject_id=template.id, name=name)
    return template


def delete_template(*, session: Session, template_id: int, user: User) -> None:
    template = get_template(session=session, template_id=template_id)
    _require_department_member(user, template.department_id)
    audit.record(session=session, actor=user.username, action="template.deleted", subject_type="reply_template",
                 subject_id=template.id, name=template.name, text=template.text)
    session.delete(template)
