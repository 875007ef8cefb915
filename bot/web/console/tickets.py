"""Messages (消息), the response queue (工单) and reply templates (答复模板)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import select

from bot.clock import utcnow
from bot.errors import GovbotError
from bot.models import Account, Department, Message, Reply, Ticket, User
from bot.web.console.common import (
    as_int,
    check_csrf,
    console_user,
    ctx_of,
    error_page,
    error_view,
    flash,
    redirect,
    render,
    run_action,
)

router = APIRouter()


MESSAGES_PER_PAGE = 50


@router.get("/messages")
def messages_page(request: Request, account: str = "", intent: str = "", department: str = "", before: str = "",
                  user: User = Depends(console_user)) -> HTMLResponse:
    """Every recent message and comment with its triage result, auto-reply and ticket."""
    from bot.permissions import visible_departments

    account, department, before = as_int(account), as_int(department), as_int(before)
    visible = visible_departments(user, "messages.read")
    with ctx_of(request).session() as s:
        q = select(Message).order_by(Message.id.desc()).limit(MESSAGES_PER_PAGE)
        if visible is not None:
            q = q.where(Message.department_id.in_(visible))
        if account:
            q = q.where(Message.account_id == account)
        if intent:
            q = q.where(Message.intent == intent)
        if department:
            q = q.where(Message.department_id == department)
        if before:
            q = q.where(Message.id < before)
        rows = list(s.exec(q))
        ids = [m.id for m in rows]
        replies: dict[int, list[Reply]] = {}
        tickets: dict[int, Ticket] = {}
        if ids:
            for r in s.exec(select(Reply).where(Reply.message_id.in_(ids)).order_by(Reply.id)):
                replies.setdefault(r.message_id, []).append(r)
            tickets = {t.message_id: t for t in s.exec(select(Ticket).where(Ticket.message_id.in_(ids)))}
        accs = {a.id: a for a in s.exec(select(Account))}
        depts = {d.id: d.name for d in s.exec(select(Department))}
    more = len(rows) == MESSAGES_PER_PAGE
    filters = {"account": account, "intent": intent, "department": department}
    return render(request, "messages.html", user, messages=rows, replies=replies, tickets=tickets, accs=accs,
                  depts=depts, filters=filters, next_before=rows[-1].id if more else None)


# ---------------------------------------------------------------- tickets (工单)

TICKET_VIEWS = {"open": ("待办", ("new", "acknowledged")), "answered": ("已答复", ("answered",)),
                "closed": ("已关闭", ("closed",)), "all": ("全部", None)}


def due_info(ticket: Ticket, now: datetime) -> dict[str, str]:
    """How the next deadline looks to a responder: overdue in red with 超期 N 天, due soon in amber."""
    from bot.tickets.service import OPEN_STATES, ticket_next_due

    due = ticket_next_due(ticket)
    what = "首次答复" if ticket.first_response_at is None else "办结"
    if ticket.state not in OPEN_STATES:
        return {"cls": "", "text": "", "what": what}
    left = due - now
    hours = left.total_seconds() / 3600
    if hours <= 0:
        days = int(-hours // 24)
        text = f"超期 {days} 天" if days >= 1 else f"超期 {int(-hours) or 1} 小时"
        return {"cls": "overdue", "text": text, "what": what}
    if hours <= 24:
        return {"cls": "soon", "text": f"剩 {int(hours) or 1} 小时", "what": what}
    return {"cls": "", "text": f"剩 {int(hours // 24)} 天", "what": what}


def ticket_department(user: User, requested: int | None) -> int | None:
    """Admins may look at any department (None: all); everyone else at their own."""
    if user.has_role("admin"):
        return requested
    return user.department_id


def parse_rules(summary: str) -> list[tuple[str, list[str]]]:
    """The stored 'rule_id:word|word;...' of a message as (rule, words) pairs for display."""
    out = []
    for part in (summary or "").split(";"):
        if part:
            rule, _, words = part.partition(":")
            out.append((rule, [w for w in words.split("|") if w]))
    return out


@router.get("/tickets")
def tickets_page(request: Request, view: str = "open", department: str = "",
                 user: User = Depends(console_user)) -> HTMLResponse:
    from bot.tickets.answering import failed_replies
    from bot.tickets.service import list_tickets

    view = view if view in TICKET_VIEWS else "open"
    dept_id = ticket_department(user, as_int(department))
    now = utcnow()
    with ctx_of(request).session() as s:
        if dept_id is None and not user.has_role("admin"):
            rows = []
        else:
            rows = list_tickets(session=s, department_id=dept_id, states=TICKET_VIEWS[view][1], now=now, limit=500)
        msgs = {m.id: m for m in s.exec(select(Message).where(Message.id.in_([t.message_id for t in rows])))}
        depts = {d.id: d.name for d in s.exec(select(Department))}
        accs = {a.id: a.name for a in s.exec(select(Account))}
        # Answers that did not go out wait for a person: the inbox shows them.
        failed = {r.ticket_id for r in failed_replies(session=s, department_id=dept_id)}
    overdue = sum(1 for t in rows if due_info(t, now)["cls"] == "overdue")
    soon = sum(1 for t in rows if due_info(t, now)["cls"] == "soon")
    return render(request, "tickets.html", user, tickets=rows, msgs=msgs, depts=depts, accs=accs, view=view,
                  views=TICKET_VIEWS, department=dept_id, failed=failed, due={t.id: due_info(t, now) for t in rows},
                  overdue=overdue, soon=soon, no_department=dept_id is None and not user.has_role("admin"))


def ticket_page(request: Request, user: User, ticket_id: int, *, error: dict | None = None,
                form: dict | None = None, status_code: int = 200) -> HTMLResponse:
    from bot.tickets import answering
    from bot.tickets.service import CLOSE_REASONS, list_templates

    ctx = ctx_of(request)
    now = utcnow()
    with ctx.session() as s:
        detail = answering.ticket_detail(session=s, ctx=ctx, ticket_id=ticket_id, user=user, now=now)
        ticket = detail.ticket
        account = s.get(Account, detail.message.account_id)
        templates_ = list_templates(session=s, department_id=ticket.department_id) if ticket.department_id else []
        people = {u.id: u for u in s.exec(select(User))}
        depts = {d.id: d.name for d in s.exec(select(Department).order_by(Department.name))}
    return render(request, "ticket.html", user, status_code=status_code, t=ticket, m=detail.message, account=account,
                  replies=detail.replies, notes=detail.notes, history=detail.history, templates=templates_,
                  people=people, users_by_name={u.username: u for u in people.values()}, depts=depts,
                  department=detail.department, due=due_info(ticket, now),
                  rules=parse_rules(detail.message.rules), close_reasons=CLOSE_REASONS, channel=detail.channel,
                  offline_how=OFFLINE_HOW_ZH, error=error, form=form or {})


# ---------------------------------------------------------------- reply templates (答复模板)


def templates_page_(request: Request, user: User, *, error: dict | None = None, form: dict | None = None,
                    department: int | None = None, status_code: int = 200) -> HTMLResponse:
    from bot.tickets.service import list_templates

    dept_id = ticket_department(user, department)
    with ctx_of(request).session() as s:
        rows = list_templates(session=s, department_id=dept_id) if dept_id else []
        depts = {d.id: d.name for d in s.exec(select(Department))}
    return render(request, "reply_templates.html", user, status_code=status_code, rows=rows, depts=depts,
                  department=dept_id, error=error, form=form or {})


@router.get("/tickets/templates")
def reply_templates_page(request: Request, department: str = "", user: User = Depends(console_user)) -> HTMLResponse:
    return templates_page_(request, user, department=as_int(department))


@router.post("/tickets/templates", dependencies=[Depends(check_csrf)])
def reply_template_save(request: Request, department: str = Form(""), template_id: str = Form(""),
                        name: str = Form(""), text: str = Form(""), delete: str = Form(""),
                        user: User = Depends(console_user)) -> Response:
    from bot.tickets import service as tickets

    dept_id = ticket_department(user, as_int(department))
    tid = as_int(template_id)

    def act(s: Any) -> Any:
        if tid and delete:
            return tickets.delete_template(session=s, template_id=tid, user=user)
        if tid:
            return tickets.update_template(session=s, template_id=tid, user=user, name=name, text=text)
        if dept_id is None:
            raise GovbotError("department.required")
        return tickets.create_template(session=s, department_id=dept_id, name=name, text=text, user=user)

    _, error = run_action(request, act)
    if error:
        return templates_page_(request, user, error=error, department=dept_id, status_code=422,
                               form={"template_id": tid, "name": name, "text": text})
    flash(request, "模板已删除。" if delete else "模板已保存。")
    return redirect(f"/tickets/templates?department={dept_id or ''}")




OFFLINE_HOW_ZH = {"phone": "电话", "in_person": "当面", "letter": "书面", "platform": "在平台后台直接回复", "other": "其他"}



@router.get("/tickets/{ticket_id}")
def ticket_detail(request: Request, ticket_id: int, user: User = Depends(console_user)) -> HTMLResponse:
    try:
        return ticket_page(request, user, ticket_id)
    except GovbotError as exc:
        return error_page(request, user, exc)


def ticket_action(request: Request, user: User, ticket_id: int, action: Callable[[Any], Any], ok: str,
                  form: dict, then: str | None = None) -> Response:
    """Run one ticket action; on success back to the ticket with a note, on a domain error the page with it."""
    _, error = run_action(request, action)
    if error:
        try:
            return ticket_page(request, user, ticket_id, error=error, form=form, status_code=422)
        except GovbotError:
            return render(request, "notfound.html", user, status_code=422, error=error)
    flash(request, ok)
    return redirect(then or f"/tickets/{ticket_id}")


def reply_outcome(request: Request, reply: Reply) -> None:
    """Tell the responder what became of the answer: sent, waiting for a retry, or not sent and why."""
    if reply.state == "sent":
        flash(request, "答复已发送给群众。")
    elif reply.state == "failed":
        flash(request, f"答复未能发送，已保留，可重试或改用其他方式答复：{reply.last_error}", "error")
    else:
        flash(request, "答复已保存，平台暂时不可用，系统将自动重试发送。", "warn")


@router.post("/tickets/{ticket_id}/answer", dependencies=[Depends(check_csrf)])
def ticket_answer(request: Request, ticket_id: int, text: str = Form(""),
                  user: User = Depends(console_user)) -> Response:
    from bot.tickets.answering import answer_and_send

    try:
        reply = answer_and_send(ctx_of(request), ticket_id=ticket_id, username=user.username, text=text)
    except GovbotError as exc:
        try:
            return ticket_page(request, user, ticket_id, error=error_view(exc), form={"answer": text},
                               status_code=422)
        except GovbotError:
            return error_page(request, user, exc)
    reply_outcome(request, reply)
    return redirect(f"/tickets/{ticket_id}#replies")


@router.post("/tickets/{ticket_id}/replies/{reply_id}/retry", dependencies=[Depends(check_csrf)])
def ticket_retry(request: Request, ticket_id: int, reply_id: int, user: User = Depends(console_user)) -> Response:
    from bot.tickets.answering import retry_and_send

    try:
        reply = retry_and_send(ctx_of(request), reply_id=reply_id, username=user.username)
    except GovbotError as exc:
        try:
            return ticket_page(request, user, ticket_id, error=error_view(exc), status_code=422)
        except GovbotError:
            return error_page(request, user, exc)
    reply_outcome(request, reply)
    return redirect(f"/tickets/{ticket_id}#replies")


@router.post("/tickets/{ticket_id}/offline", dependencies=[Depends(check_csrf)])
def ticket_offline(request: Request, ticket_id: int, text: str = Form(""), how: str = Form("phone"),
                   user: User = Depends(console_user)) -> Response:
    from bot.tickets.answering import record_offline_answer

    return ticket_action(request, user, ticket_id,
                         lambda s: record_offline_answer(session=s, ticket_id=ticket_id, user=user, text=text, how=how),
                         "已登记线下答复。", {"offline_text": text, "offline_how": how})


@router.post("/tickets/{ticket_id}/acknowledge", dependencies=[Depends(check_csrf)])
def ticket_acknowledge(request: Request, ticket_id: int, user: User = Depends(console_user)) -> Response:
    from bot.tickets.service import acknowledge

    return ticket_action(request, user, ticket_id,
                         lambda s: acknowledge(session=s, ticket_id=ticket_id, user=user), "已签收。", {})


@router.post("/tickets/{ticket_id}/note", dependencies=[Depends(check_csrf)])
def ticket_note(request: Request, ticket_id: int, text: str = Form(""), user: User = Depends(console_user)) -> Response:
    from bot.tickets.service import add_note

    return ticket_action(request, user, ticket_id,
                         lambda s: add_note(session=s, ticket_id=ticket_id, user=user, text=text),
                         "备注已保存。", {"note": text})


@router.post("/tickets/{ticket_id}/reassign", dependencies=[Depends(check_csrf)])
def ticket_reassign(request: Request, ticket_id: int, department: str = Form(""), reason: str = Form(""),
                    user: User = Depends(console_user)) -> Response:
    from bot.tickets.service import reassign

    def act(s: Any) -> Any:
        if not department:
            raise GovbotError("department.required")
        return reassign(session=s, ticket_id=ticket_id, department=int(department), reason=reason, user=user)

    # After the move the ticket belongs to the other department: back to the inbox.
    return ticket_action(request, user, ticket_id, act, f"工单 #{ticket_id} 已转办。",
                         {"reassign_department": department, "reassign_reason": reason}, then="/tickets")


@router.post("/tickets/{ticket_id}/close", dependencies=[Depends(check_csrf)])
def ticket_close(request: Request, ticket_id: int, reason: str = Form(""), note: str = Form(""),
                 user: User = Depends(console_user)) -> Response:
    from bot.tickets.service import close

    return ticket_action(request, user, ticket_id,
                         lambda s: close(session=s, ticket_id=ticket_id, reason=reason, note=note, user=user),
                         "工单已关闭。", {"close_reason": reason, "close_note": note})
