"""The responders' inbox (工单) with search, filters, bulk actions and near-duplicates, and the
message list (消息) with search."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, or_
from sqlmodel import select

from bot.clock import utcnow
from bot.errors import GovbotError
from bot.models import Account, Department, Message, Reply, Ticket, User
from bot.search import matches
from bot.triage.rules import INTENTS, TOPICS
from bot.web.console.common import (
    as_int,
    console_user,
    ctx_of,
    flash,
    redirect,
    render,
    run_action,
)
from bot.web.console.explain import sender_alias
from bot.web.console.tickets import due_info, ticket_department
from bot.web.security import ensure_secret_key

router = APIRouter()

STATE_VIEWS = {"open": "待办", "new": "未签收", "acknowledged": "办理中", "answered": "已答复", "closed": "已关闭",
               "all": "全部"}
DUE_VIEWS = {"": "不限", "overdue": "已超期", "24h": "24 小时内到期", "3d": "3 天内到期"}
SORT_VIEWS = {"due": "按期限", "newest": "最新收到", "oldest": "最早收到", "priority": "按优先级"}
BULK_ACTIONS = {"assign": "指派", "reassign": "转办", "close": "关闭"}


def department_people(session: Any, department_id: int | None) -> list[User]:
    """Who can be given a department's tickets: its active responders and leads."""
    if department_id is None:
        return []
    users = session.exec(select(User).where(User.department_id == department_id, User.active.is_(True))
                         .order_by(User.display_name))
    return [u for u in users if u.has_role("responder") or u.department_lead]


def _query_string(params: dict[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


@router.get("/tickets")
def inbox_page(request: Request, q: str = "", department: str = "", account: str = "", intent: str = "",
               topic: str = "", state: str = "open", due: str = "", assignee: str = "", sort: str = "due",
               page: str = "1", view: str = "", user: User = Depends(console_user)) -> HTMLResponse:
    from bot.tickets.answering import failed_replies
    from bot.tickets.inbox import InboxQuery, duplicate_groups, search
    from bot.tickets.service import CLOSE_REASONS

    ctx = ctx_of(request)
    state = view if view in STATE_VIEWS and state == "open" else state
    state = state if state in STATE_VIEWS else "open"
    dept_id = ticket_department(user, as_int(department))
    no_department = dept_id is None and not user.has_role("admin")
    assignee_id = 0 if assignee == "none" else (user.id if assignee == "me" else as_int(assignee))
    query = InboxQuery(department_id=dept_id, q=q.strip(), account_id=as_int(account), intent=intent, topic=topic,
                       state=state, due=due if due in DUE_VIEWS else "", assignee_id=assignee_id,
                       sort=sort if sort in SORT_VIEWS else "due", page=as_int(page) or 1)
    now = utcnow()
    with ctx.session() as s:
        result = search(session=s, query=query, now=now) if not no_department else None
        depts = {d.id: d.name for d in s.exec(select(Department).order_by(Department.name))}
        accs = {a.id: a.name for a in s.exec(select(Account).order_by(Account.name))}
        people = {u.id: u for u in s.exec(select(User))}
        responders = department_people(s, dept_id)
        failed = {r.ticket_id for r in failed_replies(session=s, department_id=dept_id)}
    rows = result.rows if result else []
    responder_names = {u.id: u.display_name or u.username for u in responders}
    groups = duplicate_groups([m for t, m in rows if t.state in ("new", "acknowledged")])
    similar = {m.id: len(g) for g in groups for m in g}
    params = {"q": query.q, "department": department if user.has_role("admin") else "", "account": account,
              "intent": intent, "topic": topic, "state": state, "due": query.due, "assignee": assignee,
              "sort": query.sort}
    return render(request, "tickets.html", user, result=result, rows=rows, depts=depts, accs=accs, people=people,
                  responder_names=responder_names, assignees={"me": "我", "none": "未指派", **responder_names},
                  failed=failed, due={t.id: due_info(t, now) for t, _ in rows},
                  similar=similar, department=dept_id, no_department=no_department, params=params,
                  alias={m.id: sender_alias(m, ensure_secret_key(ctx.config)) for _, m in rows},
                  states=STATE_VIEWS, due_views=DUE_VIEWS, sorts=SORT_VIEWS, topics=TOPICS, bulk_actions=BULK_ACTIONS,
                  close_reasons=CLOSE_REASONS,
                  page_url=lambda n: "/tickets?" + _query_string(params, page=n),
                  sort_url=lambda key: "/tickets?" + _query_string(params, sort=key))


@router.post("/tickets/bulk")
async def inbox_bulk(request: Request, action: str = Form(""), department: str = Form(""), reason: str = Form(""),
                     close_reason: str = Form(""), assignee: str = Form(""), back: str = Form("/tickets"),
                     user: User = Depends(console_user)) -> Response:
    """The same action on every ticket ticked, each in its own transaction: what fails is named, the rest done."""
    from bot.tickets import service

    ids = [i for i in (as_int(v) for v in (await request.form()).getlist("ids")) if i]
    back = back if back.startswith("/tickets") else "/tickets"
    if not ids:
        flash(request, "请先勾选工单。", "warn")
        return redirect(back)
    actions = {
        "assign": lambda s, tid: service.assign(session=s, ticket_id=tid, assignee_id=as_int(assignee) or 0, user=user),
        "reassign": lambda s, tid: service.reassign(session=s, ticket_id=tid, department=as_int(department) or 0,
                                                    reason=reason, user=user),
        "close": lambda s, tid: service.close(session=s, ticket_id=tid, reason=close_reason, user=user, note=reason),
    }
    if action not in actions:
        flash(request, "请选择要执行的操作。", "warn")
        return redirect(back)
    done, failed = [], []
    for tid in ids:
        _, error = run_action(request, lambda s, tid=tid: actions[action](s, tid))
        (failed if error else done).append((tid, error))
    if done:
        flash(request, f"已{BULK_ACTIONS[action]} {len(done)} 件工单。")
    for tid, error in failed:
        flash(request, f"工单 #{tid} 未处理：{error['title']}。{error['detail']}", "error")
    return redirect(back)


# ---------------------------------------------------------------- messages (消息)

MESSAGES_PER_PAGE = 50


@router.get("/messages")
def messages_page(request: Request, q: str = "", account: str = "", intent: str = "", department: str = "",
                  topic: str = "", page: str = "1", user: User = Depends(console_user)) -> HTMLResponse:
    """Every message and comment with its triage result, auto-reply and ticket; searchable by words."""
    from bot.permissions import visible_departments
    from bot.tickets.service import can_handle
    from bot.triage.corrections import can_correct

    ctx = ctx_of(request)
    account_id, department_id, page_no = as_int(account), as_int(department), max(1, as_int(page) or 1)
    visible = visible_departments(user, "messages.read")
    with ctx.session() as s:
        # A department sees the messages triaged to it and those whose ticket it now handles (转办 to it).
        handled = select(Ticket.message_id).where(Ticket.department_id.in_(visible or ()))
        cond = [] if visible is None else [or_(Message.department_id.in_(visible), Message.id.in_(handled))]
        if account_id:
            cond.append(Message.account_id == account_id)
        if intent:
            cond.append(Message.intent == intent)
        if topic:
            cond.append(Message.topic == topic)
        if department_id:
            cond.append(Message.department_id == department_id)
        words = matches(s.get_bind().dialect.name, q)
        if words is not None:
            cond.append(words)
        total = s.exec(select(func.count()).select_from(Message).where(*cond)).one()
        pages = max(1, -(-total // MESSAGES_PER_PAGE))
        page_no = min(page_no, pages)
        rows = list(s.exec(select(Message).where(*cond).order_by(Message.received_at.desc(), Message.id.desc())
                           .offset((page_no - 1) * MESSAGES_PER_PAGE).limit(MESSAGES_PER_PAGE)))
        ids = [m.id for m in rows]
        replies: dict[int, list[Reply]] = {}
        for r in s.exec(select(Reply).where(Reply.message_id.in_(ids)).order_by(Reply.id)):
            replies.setdefault(r.message_id, []).append(r)
        tickets = {t.message_id: t for t in s.exec(select(Ticket).where(Ticket.message_id.in_(ids)))}
        accs = {a.id: a.name for a in s.exec(select(Account).order_by(Account.name))}
        depts = {d.id: d.name for d in s.exec(select(Department).order_by(Department.name))}
    params = {"q": q.strip(), "account": account, "intent": intent, "department": department, "topic": topic}
    return render(request, "messages.html", user, messages=rows, replies=replies, tickets=tickets, accs=accs,
                  depts=depts, filters={"account": account_id, "intent": intent, "department": department_id,
                                        "topic": topic, "q": q.strip()},
                  topics=TOPICS, total=total, page=page_no, pages=pages,
                  openable={t.id for t in tickets.values() if can_handle(user, t.department_id)},
                  correctable={m.id for m in rows if can_correct(user, m)}, intents=INTENTS,
                  alias={m.id: sender_alias(m, ensure_secret_key(ctx.config)) for m in rows},
                  page_url=lambda n: "/messages?" + _query_string(params, page=n))


@router.post("/messages/{message_id}/correct")
def message_correct(request: Request, message_id: int, intent: str = Form(""), topic: str = Form(""),
                    back: str = Form("/messages"), user: User = Depends(console_user)) -> Response:
    """纠正分类 from the message list: also for messages without a ticket. A message corrected to an
    intent that needs an answer (a complaint read as praise) gets its ticket now."""
    from bot.tickets.service import needs_ticket, open_ticket
    from bot.triage.corrections import record_correction

    ctx = ctx_of(request)

    def act(s: Any) -> Any:
        message = s.get(Message, message_id)
        if message is not None and (intent or message.intent, topic or message.topic) == (message.intent, message.topic):
            raise GovbotError("correction.no_change")
        record_correction(session=s, message_id=message_id, user=user, intent=intent or None, topic=topic or None)
        message = s.get(Message, message_id)
        ticket = s.exec(select(Ticket).where(Ticket.message_id == message_id)).first()
        if ticket is None and needs_ticket(message):
            message.needs_answer = True
            s.add(message)
            return open_ticket(session=s, ctx=ctx, message=message)
        if ticket is not None:
            ticket.intent, ticket.topic = message.intent, message.topic
            s.add(ticket)
        return None

    opened, error = run_action(request, act)
    if error:
        flash(request, f"{error['title']}：{error['detail']}", "error")
    else:
        flash(request, "分类已更正。" + (f"这条留言需要答复，已生成工单 {opened.id}。" if opened is not None else ""))
    return redirect(back if back.startswith("/messages") else "/messages")
