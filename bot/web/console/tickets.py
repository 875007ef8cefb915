"""One ticket (工单): the message, its sender, article and history, the classification in words and its
correction, answering (also a group of near-duplicates at once), assigning, and reply templates (答复模板)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import select

from bot.clock import utcnow
from bot.errors import GovbotError
from bot.models import Account, Department, Message, Post, Publication, Reply, Ticket, User
from bot.web.console.common import (
    as_int,
    console_user,
    ctx_of,
    error_page,
    error_view,
    flash,
    forbidden_page,
    redirect,
    render,
    run_action,
)
from bot.web.console.explain import explain, sender_alias
from bot.web.security import ensure_secret_key

router = APIRouter()


EARLIER_MESSAGES = 10


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


def ticket_page(request: Request, user: User, ticket_id: int, *, error: dict | None = None,
                form: dict | None = None, status_code: int = 200) -> HTMLResponse:
    from bot.tickets import answering
    from bot.tickets.inbox import duplicates_of
    from bot.tickets.service import CLOSE_REASONS, can_handle, list_templates
    from bot.triage.corrections import can_correct
    from bot.triage.rules import INTENTS, TOPICS
    from bot.web.console.inbox import department_people

    ctx = ctx_of(request)
    now = utcnow()
    secret = ensure_secret_key(ctx.config)
    with ctx.session() as s:
        detail = answering.ticket_detail(session=s, ctx=ctx, ticket_id=ticket_id, user=user, now=now)
        ticket, m = detail.ticket, detail.message
        account = s.get(Account, m.account_id)
        templates_ = list_templates(session=s, department_id=ticket.department_id) if ticket.department_id else []
        people = {u.id: u for u in s.exec(select(User))}
        depts = {d.id: d.name for d in s.exec(select(Department).order_by(Department.name))}
        earlier = list(s.exec(select(Message).where(
            Message.account_id == m.account_id, Message.sender_id == m.sender_id, Message.id != m.id,
            Message.sender_id != "", Message.msg_type != "event")
            .order_by(Message.received_at.desc()).limit(EARLIER_MESSAGES))) if m.sender_id else []
        earlier_tickets = {t.message_id: t for t in s.exec(select(Ticket).where(
            Ticket.message_id.in_([e.id for e in earlier])))}
        publication = s.get(Publication, m.publication_id) if m.publication_id else None
        article = s.get(Post, publication.post_id) if publication else None
        duplicates = duplicates_of(session=s, ticket=ticket, message=m) if ticket.state in ("new", "acknowledged") else []
        responders = department_people(s, ticket.department_id)
    return render(request, "ticket.html", user, status_code=status_code, t=ticket, m=m, account=account,
                  replies=detail.replies, notes=detail.notes, history=detail.history, templates=templates_,
                  people=people, users_by_name={u.username: u for u in people.values()}, depts=depts,
                  department=detail.department, due=due_info(ticket, now), sender=sender_alias(m, secret),
                  explanation=explain(intent=m.intent, topic=m.topic, confidence=m.confidence, rules=m.rules,
                                      spam=m.spam),
                  earlier=earlier, earlier_tickets=earlier_tickets,
                  openable={t.id for t in earlier_tickets.values() if can_handle(user, t.department_id)},
                  publication=publication, article=article, duplicates=duplicates, responders=responders,
                  may_correct=can_correct(user, m), intents=INTENTS, topics=TOPICS,
                  close_reasons=CLOSE_REASONS, channel=detail.channel,
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


@router.post("/tickets/templates")
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
    from bot.tickets.service import can_handle

    with ctx_of(request).session() as s:
        ticket = s.get(Ticket, ticket_id)
        dept = s.get(Department, ticket.department_id) if ticket and ticket.department_id else None
    if ticket is not None and not can_handle(user, ticket.department_id):
        return forbidden_page(request, user, f"工单 {ticket_id} 由{dept.name if dept else '其他部门'}办理，"
                                             "只有该部门的答复人和管理员可以查看和处理。")
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


@router.post("/tickets/{ticket_id}/answer")
async def ticket_answer(request: Request, ticket_id: int, text: str = Form(""),
                        user: User = Depends(console_user)) -> Response:
    """Answer the ticket; the near-duplicates ticked (`also`) get the same answer, each through its own channel."""
    from bot.tickets.answering import answer_and_send

    also = [i for i in (as_int(v) for v in (await request.form()).getlist("also")) if i and i != ticket_id]
    try:
        reply = answer_and_send(ctx_of(request), ticket_id=ticket_id, username=user.username, text=text)
    except GovbotError as exc:
        try:
            return ticket_page(request, user, ticket_id, error=error_view(exc), form={"answer": text},
                               status_code=422)
        except GovbotError:
            return error_page(request, user, exc)
    reply_outcome(request, reply)
    sent = 0
    for other in also:
        try:
            other_reply = answer_and_send(ctx_of(request), ticket_id=other, username=user.username, text=text)
        except GovbotError as exc:
            flash(request, f"工单 #{other} 未答复：{error_view(exc)['title']}。{exc}", "error")
            continue
        if other_reply.state == "failed":
            flash(request, f"工单 #{other} 的答复未能发送，已保留：{other_reply.last_error}", "error")
        else:
            sent += 1
    if sent:
        flash(request, f"同一答复也已发给 {sent} 条相似留言，各自通过其来源渠道发送。")
    return redirect(f"/tickets/{ticket_id}#replies")


@router.post("/tickets/{ticket_id}/correct")
def ticket_correct(request: Request, ticket_id: int, intent: str = Form(""), topic: str = Form(""),
                   user: User = Depends(console_user)) -> Response:
    """纠正分类: the message (and its ticket) take the intent and topic the responder says."""
    from bot.tickets.service import get_ticket
    from bot.triage.corrections import record_correction

    def act(s: Any) -> Any:
        ticket = get_ticket(session=s, ticket_id=ticket_id)
        message = s.get(Message, ticket.message_id)
        if (intent or message.intent, topic or message.topic) == (message.intent, message.topic):
            raise GovbotError("correction.no_change")
        record_correction(session=s, message_id=ticket.message_id, user=user, intent=intent or None,
                          topic=topic or None)
        ticket.intent = intent or ticket.intent
        ticket.topic = topic or ticket.topic
        s.add(ticket)

    return ticket_action(request, user, ticket_id, act, "分类已更正，已记录为规则改进的样本。",
                         {"intent": intent, "topic": topic})


@router.post("/tickets/{ticket_id}/assign")
def ticket_assign(request: Request, ticket_id: int, assignee: str = Form(""),
                  user: User = Depends(console_user)) -> Response:
    from bot.tickets.service import assign

    def act(s: Any) -> Any:
        if not as_int(assignee):
            raise GovbotError("ticket.assignee_required")
        return assign(session=s, ticket_id=ticket_id, assignee_id=as_int(assignee), user=user)

    return ticket_action(request, user, ticket_id, act, "已指派经办人。", {"assignee": assignee})


@router.post("/tickets/{ticket_id}/replies/{reply_id}/retry")
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


@router.post("/tickets/{ticket_id}/offline")
def ticket_offline(request: Request, ticket_id: int, text: str = Form(""), how: str = Form("phone"),
                   user: User = Depends(console_user)) -> Response:
    from bot.tickets.answering import record_offline_answer

    return ticket_action(request, user, ticket_id,
                         lambda s: record_offline_answer(session=s, ticket_id=ticket_id, user=user, text=text, how=how),
                         "已登记线下答复。", {"offline_text": text, "offline_how": how})


@router.post("/tickets/{ticket_id}/acknowledge")
def ticket_acknowledge(request: Request, ticket_id: int, user: User = Depends(console_user)) -> Response:
    from bot.tickets.service import acknowledge

    return ticket_action(request, user, ticket_id,
                         lambda s: acknowledge(session=s, ticket_id=ticket_id, user=user), "已签收。", {})


@router.post("/tickets/{ticket_id}/note")
def ticket_note(request: Request, ticket_id: int, text: str = Form(""), user: User = Depends(console_user)) -> Response:
    from bot.tickets.service import add_note

    return ticket_action(request, user, ticket_id,
                         lambda s: add_note(session=s, ticket_id=ticket_id, user=user, text=text),
                         "备注已保存。", {"note": text})


@router.post("/tickets/{ticket_id}/reassign")
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


@router.post("/tickets/{ticket_id}/close")
def ticket_close(request: Request, ticket_id: int, reason: str = Form(""), note: str = Form(""),
                 user: User = Depends(console_user)) -> Response:
    from bot.tickets.service import close

    return ticket_action(request, user, ticket_id,
                         lambda s: close(session=s, ticket_id=ticket_id, reason=reason, note=note, user=user),
                         "工单已关闭。", {"close_reason": reason, "close_note": note})
