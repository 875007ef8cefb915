"""The web console (管理后台): server-rendered Chinese pages for officers, leaders, responders and the
transparency office.

Every domain action calls the service functions of its package (publishing, tickets, triage,
oversight); this module only reads for display, turns forms into calls and shows domain errors
(bot.errors) as a message on the page with the form input kept. POST forms carry a per-session CSRF
token.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from sqlmodel import select

from bot.clock import to_local, utcnow
from bot.context import Context
from bot.errors import CheckFailed, GovbotError, InvalidState, NotFound, PermissionDenied
from bot.models import (
    Account,
    AuditEvent,
    Department,
    Media,
    Message,
    Notification,
    Post,
    Publication,
    Reply,
    Ticket,
    User,
)
from bot.publishing.gap import account_gaps
from bot.resources import package_dir
from bot.users import authenticate

STATIC_DIR = package_dir("web", "static")
templates = Jinja2Templates(directory=str(package_dir("web", "templates")))
router = APIRouter(include_in_schema=False)

# Chinese labels for the short English codes stored in the database.
LABELS: dict[str, dict[str, str]] = {
    "role": {"editor": "编辑", "reviewer": "审核", "approver": "签发", "responder": "答复人", "admin": "管理员"},
    "platform": {"wechat": "微信公众号", "weibo": "政务微博"},
    "post": {"draft": "草稿", "in_review": "审核中", "approved": "已审定", "scheduled": "已排期",
             "published": "已发布", "rejected": "已退回", "failed": "发布失败", "partially_failed": "部分发布失败",
             "cancelled": "已撤销"},
    "publication": {"pending": "待发布", "publishing": "发布中", "published": "已发布", "failed": "发布失败",
                    "missed": "已错过", "cancelled": "已取消"},
    "ticket": {"new": "新工单", "acknowledged": "已受理", "answered": "已答复", "closed": "已关闭"},
    "intent": {"complaint": "投诉", "question": "咨询", "suggestion": "建议", "praise": "表扬", "other": "其他"},
    "reply": {"pending": "待发送", "sending": "发送中", "sent": "已发送", "failed": "发送失败"},
    "notification": {"pending": "待发送", "sent": "已发送", "failed": "发送失败"},
    "notice": {"warning": "临期提醒", "escalation": "超期督办"},
    "channel": {"wechat_passive": "公众号被动回复", "wechat_comment": "公众号留言回复",
                "wechat_custom": "公众号客服消息", "weibo_comment": "微博评论回复"},
    "kind": {"wechat_message": "公众号消息", "wechat_comment": "公众号留言", "weibo_comment": "微博评论"},
    "decision": {"approve": "通过", "reject": "退回"},
    "gap": {"ok": "正常", "warn": "预警", "limit": "超限"},
    "priority": {"1": "高", "2": "普通", "3": "低"},
    "action": {
        "ticket.opened": "生成工单", "ticket.acknowledged": "签收", "ticket.reassigned": "转办", "ticket.closed": "关闭",
        "ticket.note_added": "添加备注", "ticket.warned": "临期提醒", "ticket.escalated": "超期上报",
        "reply.queued": "答复待发送", "reply.sent": "答复已送达", "reply.failed": "答复发送失败",
        "reply.refused": "平台拒收答复", "reply.channel_closed": "渠道已关闭，答复未发送",
        "reply.retry_scheduled": "等待自动重试", "reply.retry_requested": "重试发送", "reply.interrupted": "发送中断",
        "reply.recorded_offline": "登记线下答复",
        "post.created": "创建", "post.edited": "修改", "post.submitted": "送审", "post.signed": "签署通过",
        "post.approved": "审定", "post.rejected": "退回", "post.chain_restarted": "审签重新开始", "post.scheduled": "排期",
        "post.unscheduled": "撤销排期",
    },
}

# Navigation: (path, label, roles that see it; empty = everyone).
NAV = (
    ("/", "首页", ()),
    ("/posts", "稿件", ("editor", "reviewer", "approver")),
    ("/tickets", "工单", ("responder",)),
    ("/messages", "消息", ("responder", "editor")),
    ("/digest", "日报", ()),
    ("/reports", "报表", ()),
    ("/accounts", "账号", ()),
    ("/rules", "规则", ()),
)

_ERROR_TITLES = (
    (CheckFailed, "发布前检查未通过"),
    (PermissionDenied, "无权进行此操作"),
    (InvalidState, "当前状态不允许此操作"),
    (NotFound, "未找到"),
    (GovbotError, "操作未完成"),
)


# ---------------------------------------------------------------- helpers


def ctx_of(request: Request) -> Context:
    return request.app.state.ctx


@pass_context
def local_dt(context: Any, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC time as local wall-clock text in the config's time zone (`tz` of the page)."""
    if value is None:
        return ""
    return to_local(value, context["tz"]).strftime(fmt)


@pass_context
def deadline(context: Any, value: datetime | None) -> str:
    """A deadline as people read it: deadlines end at local midnight, shown as "that day, within the day"."""
    if value is None:
        return ""
    local = to_local(value, context["tz"])
    if (local.hour, local.minute) == (0, 0):
        day = local - timedelta(days=1)
        return f"{day:%Y-%m-%d} {WEEKDAYS_ZH[day.weekday()]} 当日内"
    return f"{local:%Y-%m-%d %H:%M}"


WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def label(value: Any, kind: str) -> str:
    if value is None:
        return ""
    return LABELS.get(kind, {}).get(str(value), str(value))


def roles_zh(user: User) -> str:
    return "、".join(label(r, "role") for r in sorted(user.role_set()))


templates.env.filters["dt"] = local_dt
templates.env.filters["deadline"] = deadline
templates.env.filters["zh"] = label
templates.env.globals["LABELS"] = LABELS


def error_view(exc: GovbotError) -> dict[str, Any]:
    """A domain error as the page shows it: a Chinese heading, the detail, and check problems if any."""
    title = next(t for cls, t in _ERROR_TITLES if isinstance(exc, cls))
    problems = [problem_view(p) for p in exc.problems] if isinstance(exc, CheckFailed) else []
    return {"title": title, "detail": "" if problems else str(exc), "problems": problems}


FIELDS_ZH = {"title": "标题", "body": "正文", "digest": "摘要", "weibo_text": "微博文案", "cover": "封面",
             "post": "稿件", "account": "账号", "text": "答复内容", "answer": "答复内容"}

# The checks' problems in the officers' language, by problem code; {0}, {1} ... are the quoted parts
# (“…”) of the original message, {n0}, {n1} ... its numbers. Unknown codes keep the original message.
PROBLEMS_ZH = {
    "sensitive_word": ("敏感词“{0}”", r"“(.+?)” \((.+?)\)", "（{1}）"),
    "sensitive_pattern": ("疑似敏感信息“{0}”", None, ""),
    "typo": ("“{0}”应为“{1}”", r"“(.+?)” should be “(.+?)” \((.+?)\)", "（{2}）"),
    "empty_title": ("标题为空", None, ""),
    "empty_body": ("正文为空", None, ""),
    "wechat_title_too_long": ("公众号标题最多 {n0} 字，现为 {n1} 字", None, ""),
    "wechat_digest_too_long": ("公众号摘要最多 {n0} 字，现为 {n1} 字", None, ""),
    "wechat_body_too_long": ("公众号正文最多 {n0} 字，现为 {n1} 字", None, ""),
    "wechat_cover_missing": ("公众号图文必须有封面图片", None, ""),
    "wechat_cover_invalid": ("封面图片的格式或大小不符合公众号要求（JPEG/PNG/GIF/BMP，不超过 10MB）", None, ""),
    "weibo_text_missing": ("发布到微博需要填写微博文案", None, ""),
    "weibo_text_too_long": ("微博文案最多 {n0} 字，现为 {n1} 字", None, ""),
    "weibo_link_missing": ("微博文案须包含本单位安全域名的链接（{domain}）", None, ""),
    "weibo_picture_invalid": ("封面将作为微博配图，须为 JPEG/PNG/GIF 且不超过 5MB", None, ""),
    "answer_too_long": ("答复超出平台长度限制（最多 {n0}，现为 {n1}）", None, ""),
}


def problem_zh(code: str, message: str) -> str:
    entry = PROBLEMS_ZH.get(code)
    if entry is None:
        return message
    text, pattern, tail = entry
    quoted = re.findall(r"“(.+?)”", message)
    if pattern:
        m = re.search(pattern, message)
        if m is None:
            return message
        quoted = list(m.groups())
    numbers = re.findall(r"\d+", message)
    domain = re.search(r"safe domain (\S+)", message)
    values = {f"n{i}": n for i, n in enumerate(numbers)} | {"domain": domain.group(1) if domain else ""}
    try:
        out = text.format(*quoted, **values) + tail.format(*quoted, **values)
    except (IndexError, KeyError):
        return message
    more = re.search(r"\((\d+) more not shown\)", message)
    return out + (f"（另有 {more.group(1)} 处未列出）" if more else "")


def problem_view(problem: Any) -> dict[str, Any]:
    """A check problem for the page: where it is (field, line, column), what, and the fix if known."""
    where = getattr(problem, "where", None)
    line, column = getattr(problem, "line", None), getattr(problem, "column", None)
    place = FIELDS_ZH.get(where, where or "")
    if line is not None:
        place += f" 第 {line} 行第 {column} 列"
    message = problem_zh(getattr(problem, "code", ""), getattr(problem, "message", str(problem)))
    return {"field": where, "place": place, "message": message,
            "snippet": getattr(problem, "snippet", ""), "suggestion": getattr(problem, "suggestion", None),
            "text": str(problem)}


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, csrf: str = Form("", alias="csrf_token")) -> None:
    """Dependency for every console POST: the hidden field must match this session's token."""
    expected = request.session.get("csrf")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        raise HTTPException(403, "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试。")


def flash(request: Request, text: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", [])
    request.session["flash"] = [*request.session["flash"], [kind, text]]


def safe_next(target: str | None) -> str:
    """Only local paths are followed after login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/"
    return target


def console_user(request: Request) -> User:
    """The logged-in user, or a redirect to the login page."""
    user_id = request.session.get("user_id")
    if user_id is not None:
        with ctx_of(request).session() as s:
            user = s.get(User, user_id)
        if user is not None and user.active:
            return user
        request.session.pop("user_id", None)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise HTTPException(303, "login required", headers={"Location": f"/login?next={quote(target)}"})


def render(request: Request, template: str, user: User | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    nav = []
    if user is not None:
        for path, text, roles in NAV:
            if not roles or user.has_role("admin") or any(user.has_role(r) for r in roles):
                nav.append((path, text))
    messages = request.session.pop("flash", [])
    base = {"user": user, "nav": nav, "csrf": csrf_token(request), "flashes": messages,
            "path": request.url.path, "tz": ctx_of(request).tz, "roles_zh": roles_zh(user) if user else ""}
    return templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def run_action(request: Request, action: Callable[[Any], Any]) -> tuple[Any, dict | None]:
    """Run one domain action in its own transaction: (result, None) or (None, error view).

    A domain error rolls the whole action back, so nothing is half-done.
    """
    try:
        with ctx_of(request).session() as s:
            return action(s), None
    except GovbotError as exc:
        return None, error_view(exc)


def parse_local_datetime(text: str) -> datetime:
    """The value of a datetime-local input: a naive local wall-clock time (the services take it so)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise GovbotError(f"时间格式不正确：{text!r}（应为 年-月-日 时:分）") from None
    return value.replace(tzinfo=None)


def parse_date(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        return default


def as_int(text: str | None) -> int | None:
    """A query or form value that may be empty ("全部") as an int or None."""
    try:
        return int(text) if text else None
    except ValueError:
        return None


def today_local(request: Request) -> date:
    return to_local(utcnow(), ctx_of(request).tz).date()


# ---------------------------------------------------------------- static files


@router.get("/static/{name}")
def static(name: str) -> Response:
    path = (STATIC_DIR / name).resolve()
    if path.parent != STATIC_DIR.resolve() or not path.is_file():
        raise HTTPException(404)
    return FileResponse(path, headers={"Cache-Control": "max-age=300"})


# ---------------------------------------------------------------- login / logout


@router.get("/login")
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", None, next=safe_next(next), username="", error=None)


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(request: Request, username: str = Form(""), password: str = Form(""), next: str = Form("/")) -> Response:
    try:
        with ctx_of(request).session() as s:
            user = authenticate(session=s, username=username.strip(), password=password)
    except GovbotError:
        return render(request, "login.html", None, status_code=401, next=safe_next(next), username=username,
                      error={"title": "用户名或密码错误", "detail": "", "problems": []})
    request.session.clear()  # a fresh session (and CSRF token) for the logged-in user
    request.session["user_id"] = user.id
    csrf_token(request)
    return redirect(safe_next(next))


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    request.session.clear()
    return redirect("/login")


# ---------------------------------------------------------------- accounts (账号)


@router.get("/accounts")
def accounts_page(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    ctx = ctx_of(request)
    with ctx.session() as s:
        gaps = {g.account_id: g for g in account_gaps(session=s, config=ctx.config)}
        depts = {d.id: d.name for d in s.exec(select(Department))}
        rows = list(s.exec(select(Account).order_by(Account.platform, Account.name)))
    return render(request, "accounts.html", user, accounts=rows, gaps=gaps, depts=depts, gap_cfg=ctx.config.gap)


# ---------------------------------------------------------------- rules test (规则)


@router.get("/rules")
def rules_page(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    return render(request, "rules.html", user, text="", subject="", result=None)


@router.post("/rules", dependencies=[Depends(check_csrf)])
def rules_test(request: Request, text: str = Form(""), subject: str = Form(""),
               user: User = Depends(console_user)) -> HTMLResponse:
    ctx = ctx_of(request)
    result = error = None
    try:
        store = ctx.rules
        classification = store.current().classify(text, subject or None)
        faq = store.current_faq().match(text, classification)
        department = ctx.config.triage.department_for(classification.topic)
        result = {"c": classification, "faq": faq, "department": department,
                  "default_desk": classification.topic not in ctx.config.triage.topic_departments,
                  "rules_error": store.last_error}
    except GovbotError as exc:
        error = error_view(exc)
    return render(request, "rules.html", user, text=text, subject=subject, result=result, error=error)


# ---------------------------------------------------------------- dashboard (首页)


@router.get("/")
def dashboard(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    from bot.tickets.service import can_handle, list_tickets

    ctx = ctx_of(request)
    now = utcnow()
    my_tickets: list[Ticket] = []
    with ctx.session() as s:
        gaps = account_gaps(session=s, config=ctx.config)
        if user.department_id is not None and can_handle(user, user.department_id):
            # Overdue and due within a day: what needs doing first.
            my_tickets = [t for t in list_tickets(session=s, department_id=user.department_id, now=now, limit=200)
                          if due_info(t, now)["cls"]]
        msgs = {m.id: m for m in s.exec(select(Message).where(Message.id.in_([t.message_id for t in my_tickets])))}
        failed = list(s.exec(select(Publication).where(Publication.state.in_(("failed", "missed")))
                             .order_by(Publication.due_at.desc()).limit(20)))
        posts = {p.id: p for p in s.exec(select(Post).where(Post.id.in_([f.post_id for f in failed])))}
        accs = {a.id: a.name for a in s.exec(select(Account))}
        signer = any(user.has_role(st.role) for st in ctx.config.signoff.stages)
        extra = {"to_sign": posts_to_sign(s, ctx.config, user)} if signer else {}
        # 我的提醒: the warnings and escalations e-mailed to this user (the WeCom group's are for everyone).
        notices = list(s.exec(select(Notification).where(Notification.recipient == user.username)
                              .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(10)))
    return render(request, "dashboard.html", user, gaps=gaps, gap_cfg=ctx.config.gap, my_tickets=my_tickets,
                  msgs=msgs, due={t.id: due_info(t, now) for t in my_tickets}, failed=failed, posts=posts, accs=accs,
                  notices=notices, **extra)


# ---------------------------------------------------------------- messages (消息)

MESSAGES_PER_PAGE = 50


@router.get("/messages")
def messages_page(request: Request, account: str = "", intent: str = "", department: str = "", before: str = "",
                  user: User = Depends(console_user)) -> HTMLResponse:
    """Every recent message and comment with its triage result, auto-reply and ticket."""
    account, department, before = as_int(account), as_int(department), as_int(before)
    with ctx_of(request).session() as s:
        q = select(Message).order_by(Message.id.desc()).limit(MESSAGES_PER_PAGE)
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
            raise GovbotError("请先选择部门")
        return tickets.create_template(session=s, department_id=dept_id, name=name, text=text, user=user)

    _, error = run_action(request, act)
    if error:
        return templates_page_(request, user, error=error, department=dept_id, status_code=422,
                               form={"template_id": tid, "name": name, "text": text})
    flash(request, "模板已删除。" if delete else "模板已保存。")
    return redirect(f"/tickets/templates?department={dept_id or ''}")


OFFLINE_HOW_ZH = {"phone": "电话", "in_person": "当面", "letter": "书面", "platform": "在平台后台直接回复", "other": "其他"}


def error_page(request: Request, user: User, exc: GovbotError) -> HTMLResponse:
    status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, PermissionDenied) else 422
    return render(request, "notfound.html", user, status_code=status, error=error_view(exc))


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
            raise GovbotError("请选择要转办的部门")
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


# ---------------------------------------------------------------- posts (稿件)

POST_TABS = (("", "全部"), ("mine", "待我审签"), ("draft", "草稿"), ("in_review", "审核中"), ("rejected", "已退回"),
             ("approved", "已审定"), ("scheduled", "已排期"), ("published", "已发布"))


def can_sign_next(session: Any, config: Any, post: Post, user: User) -> dict | None:
    """The stage `user` may sign on this post now, or None (wrong role, own draft, already signed a stage)."""
    from bot.publishing.signoff import contributors, current_chain

    if post.status != "in_review":
        return None
    chain = current_chain(session=session, config=config, post=post)
    stage = chain.next_stage
    if stage is None or not user.has_role(stage.role) or user.id in chain.signer_ids:
        return None
    if user.username in contributors(session=session, post=post):
        return None
    return {"index": stage.index, "name": stage.name, "role": stage.role}


def posts_to_sign(session: Any, config: Any, user: User) -> list[dict]:
    """Posts in review whose next stage this user may sign (待我审签)."""
    from bot.publishing.service import list_posts

    out = []
    for post in list_posts(session=session, status="in_review", limit=200):
        stage = can_sign_next(session, config, post, user)
        if stage is not None:
            author = session.get(User, post.author_id)
            out.append({"post": post, "stage": stage["name"], "author": author.display_name if author else ""})
    return out


@router.get("/posts")
def posts_page(request: Request, status: str = "", user: User = Depends(console_user)) -> HTMLResponse:
    from bot.publishing.service import POST_STATUSES, list_posts

    ctx = ctx_of(request)
    with ctx.session() as s:
        if status == "mine":
            rows = [item["post"] for item in posts_to_sign(s, ctx.config, user)]
        else:
            rows = list_posts(session=s, status=status if status in POST_STATUSES else None, limit=200)
        authors = {u.id: u for u in s.exec(select(User).where(User.id.in_({p.author_id for p in rows})))}
        pubs: dict[int, list[Publication]] = {}
        for pub in s.exec(select(Publication).where(Publication.post_id.in_([p.id for p in rows]))):
            pubs.setdefault(pub.post_id, []).append(pub)
        accs = {a.id: a.name for a in s.exec(select(Account))}
    return render(request, "posts.html", user, posts=rows, authors=authors, pubs=pubs, accs=accs, status=status,
                  tabs=POST_TABS)


def _cover_upload(cover: UploadFile | None) -> tuple[str, bytes, str | None] | None:
    if cover is None or not cover.filename:
        return None
    return cover.filename, cover.file.read(), cover.content_type


def post_form_page(request: Request, user: User, *, post: Post | None, form: dict, error: dict | None = None,
                   status_code: int = 200) -> HTMLResponse:
    field_problems: dict[str, list[dict]] = {}
    for p in (error or {}).get("problems", []):
        field_problems.setdefault(p["field"], []).append(p)
    return render(request, "post_form.html", user, status_code=status_code, post=post, form=form, error=error,
                  field_problems=field_problems)


@router.get("/posts/new")
def post_new_form(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    return post_form_page(request, user, post=None, form={})


@router.post("/posts/new", dependencies=[Depends(check_csrf)])
def post_create(request: Request, title: str = Form(""), body: str = Form(""), digest: str = Form(""),
                weibo_text: str = Form(""), cover: UploadFile | None = File(None),
                user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import create_post

    form = {"title": title, "body": body, "digest": digest, "weibo_text": weibo_text}
    post, error = run_action(request, lambda s: create_post(session=s, author=user, cover=_cover_upload(cover), **form))
    if error:
        return post_form_page(request, user, post=None, form=form, error=error, status_code=422)
    flash(request, "草稿已保存。检查无误后可“送审”。")
    return redirect(f"/posts/{post.id}")


@router.get("/posts/{post_id}/edit")
def post_edit_form(request: Request, post_id: int, user: User = Depends(console_user)) -> HTMLResponse:
    from bot.publishing.service import get_post

    try:
        with ctx_of(request).session() as s:
            post = get_post(session=s, post_id=post_id)
    except NotFound as exc:
        return render(request, "notfound.html", user, status_code=404, error=error_view(exc))
    form = {"title": post.title, "body": post.body, "digest": post.digest, "weibo_text": post.weibo_text}
    return post_form_page(request, user, post=post, form=form)


@router.post("/posts/{post_id}/edit", dependencies=[Depends(check_csrf)])
def post_edit(request: Request, post_id: int, title: str = Form(""), body: str = Form(""), digest: str = Form(""),
              weibo_text: str = Form(""), cover: UploadFile | None = File(None), remove_cover: str = Form(""),
              user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import edit_post, get_post

    form = {"title": title, "body": body, "digest": digest, "weibo_text": weibo_text}

    def act(s: Any) -> bool:
        post = get_post(session=s, post_id=post_id)
        return edit_post(session=s, post=post, user=user, cover=_cover_upload(cover),
                         remove_cover=bool(remove_cover), **form)

    changed, error = run_action(request, act)
    if error:
        with ctx_of(request).session() as s:
            post = s.get(Post, post_id)
        return post_form_page(request, user, post=post, form=form, error=error, status_code=422)
    flash(request, "已保存为新版本，原有审签已作废，需重新送审。" if changed else "内容没有变化。",
          "warn" if changed else "ok")
    return redirect(f"/posts/{post_id}")


@router.get("/posts/{post_id}/cover")
def post_cover(request: Request, post_id: int, user: User = Depends(console_user)) -> Response:
    with ctx_of(request).session() as s:
        post = s.get(Post, post_id)
        media = s.get(Media, post.cover_media_id) if post and post.cover_media_id else None
    if media is None:
        raise HTTPException(404)
    return Response(media.data, media_type=media.mime, headers={"Cache-Control": "private, max-age=300"})


def post_page(request: Request, user: User, post_id: int, *, error: dict | None = None, form: dict | None = None,
              status_code: int = 200) -> HTMLResponse:
    from bot.publishing.service import check_existing_post, default_platforms, get_post, post_view

    ctx = ctx_of(request)
    with ctx.session() as s:
        post = get_post(session=s, post_id=post_id)
        view = post_view(session=s, config=ctx.config, post=post)
        sign_stage = can_sign_next(s, ctx.config, post, user)
        live_problems = [problem_view(p) for p in check_existing_post(session=s, config=ctx.config, post=post)] \
            if post.status in ("draft", "rejected", "in_review", "approved", "scheduled") else []
        enabled = [a for a in s.exec(select(Account).where(Account.enabled).order_by(Account.platform, Account.name))]
        users = {u.username: u for u in s.exec(select(User))}
        submitted = s.exec(select(AuditEvent).where(AuditEvent.subject_type == "post", AuditEvent.subject_id == post.id,
                                                    AuditEvent.action == "post.submitted")
                           .order_by(AuditEvent.id.desc())).first()
        platforms = set((submitted.detail.get("platforms") if submitted else None)
                        or default_platforms(session=s, post=post))
    # Accounts ticked by default: those already scheduled, else those of the platforms it is checked for.
    scheduled_names = {p["account"] for p in view["publications"] if p["state"] != "cancelled"}
    default_accounts = {a.id for a in enabled if a.name in scheduled_names} or \
        {a.id for a in enabled if a.platform in platforms}
    problems = list((error or {}).get("problems") or live_problems)
    field_problems: dict[str, list[dict]] = {}
    for p in problems:
        field_problems.setdefault(p["field"], []).append(p)
    form = form or {}
    if "accounts" not in form:
        form["accounts"] = {str(i) for i in default_accounts}
    return render(request, "post.html", user, status_code=status_code, post=post, v=view, sign_stage=sign_stage,
                  problems=problems, field_problems=field_problems, accounts=enabled, users=users,
                  error=error, form=form, is_editor=user.has_role("editor") or user.has_role("admin"),
                  min_local=local_dt({"tz": ctx.tz}, utcnow(), "%Y-%m-%dT%H:%M"))


@router.get("/posts/{post_id}")
def post_detail(request: Request, post_id: int, user: User = Depends(console_user)) -> HTMLResponse:
    try:
        return post_page(request, user, post_id)
    except NotFound as exc:
        return render(request, "notfound.html", user, status_code=404, error=error_view(exc))


def post_action(request: Request, user: User, post_id: int, action: Callable[[Any, Post], Any], ok: str,
                form: dict | None = None) -> Response:
    from bot.publishing.service import get_post

    _, error = run_action(request, lambda s: action(s, get_post(session=s, post_id=post_id)))
    if error:
        return post_page(request, user, post_id, error=error, form=form, status_code=422)
    flash(request, ok)
    return redirect(f"/posts/{post_id}")


def _platforms_of(request: Request, account_ids: list[str]) -> list[str] | None:
    ids = {as_int(i) for i in account_ids} - {None}
    if not ids:
        return None
    with ctx_of(request).session() as s:
        return sorted({a.platform for a in s.exec(select(Account).where(Account.id.in_(ids)))})


@router.post("/posts/{post_id}/submit", dependencies=[Depends(check_csrf)])
def post_submit(request: Request, post_id: int, accounts: list[str] = Form(default_factory=list),
                user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import submit_post

    platforms = _platforms_of(request, accounts)
    config = ctx_of(request).config
    return post_action(request, user, post_id,
                       lambda s, post: submit_post(session=s, config=config, post=post, user=user, platforms=platforms),
                       "已送审，等待审签。", {"accounts": set(accounts)})


@router.post("/posts/{post_id}/sign", dependencies=[Depends(check_csrf)])
def post_sign(request: Request, post_id: int, version: str = Form(""), content_hash: str = Form(""),
              user: User = Depends(console_user)) -> Response:
    from bot.publishing.signoff import sign

    config = ctx_of(request).config

    def act(s: Any, post: Post) -> Any:
        # The version the signer read: a post edited meanwhile is refused, not signed unseen.
        return sign(session=s, config=config, post=post, user=user, version=as_int(version),
                    content_hash=content_hash or None)

    return post_action(request, user, post_id, act, "已签署通过。")


@router.post("/posts/{post_id}/reject", dependencies=[Depends(check_csrf)])
def post_reject(request: Request, post_id: int, reason: str = Form(""), version: str = Form(""),
                content_hash: str = Form(""), user: User = Depends(console_user)) -> Response:
    from bot.publishing.signoff import reject

    config = ctx_of(request).config

    def act(s: Any, post: Post) -> Any:
        return reject(session=s, config=config, post=post, user=user, reason=reason, version=as_int(version),
                      content_hash=content_hash or None)

    return post_action(request, user, post_id, act, "已退回编辑修改。", {"reason": reason})


@router.post("/posts/{post_id}/schedule", dependencies=[Depends(check_csrf)])
def post_schedule(request: Request, post_id: int, at: str = Form(""), accounts: list[str] = Form(default_factory=list),
                  user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import schedule_post

    config = ctx_of(request).config

    def act(s: Any, post: Post) -> Any:
        when = parse_local_datetime(at) if at.strip() else None
        return schedule_post(session=s, config=config, post=post, user=user,
                             accounts=[int(a) for a in accounts if a.isdigit()], at=when)

    return post_action(request, user, post_id, act, "已排期，到时自动发布。" if at.strip() else "已安排立即发布。",
                       {"at": at, "accounts": set(accounts)})


@router.post("/posts/{post_id}/unschedule", dependencies=[Depends(check_csrf)])
def post_unschedule(request: Request, post_id: int, user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import unschedule_post

    return post_action(request, user, post_id, lambda s, post: unschedule_post(session=s, post=post, user=user),
                       "已撤销排期。")


# ---------------------------------------------------------------- daily digest (日报)


def digest_scope(session: Any, config: Any, org: str) -> tuple[Any, list[Any]]:
    """The organisation asked for (default: the first) and all of them, for the picker."""
    from bot.oversight.digest import organisation_scopes

    scopes = organisation_scopes(session=session, config=config)
    chosen = next((sc for sc in scopes if sc.name == org), scopes[0])
    return chosen, scopes


@router.get("/digest")
def digest_page(request: Request, day: str = "", org: str = "", user: User = Depends(console_user)) -> HTMLResponse:
    from bot.oversight.digest import collect_digest, render_html, stored_run

    ctx = ctx_of(request)
    today = today_local(request)
    the_day = parse_date(day, today)
    digest = run = error = html = None
    scopes: list[Any] = []
    try:
        with ctx.session() as s:
            scope, scopes = digest_scope(s, ctx.config, org)
            digest = collect_digest(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, day=the_day)
            run = stored_run(session=s, scope=scope, day=the_day) if scope.organisation_id is not None else None
        html = render_html(digest)
    except GovbotError as exc:
        error = error_view(exc)
    return render(request, "digest.html", user, digest=digest, run=run, day=the_day, today=today, scopes=scopes,
                  org=digest.organisation if digest else org, error=error, digest_html=html)


@router.get("/digest/html")
def digest_html(request: Request, day: str = "", org: str = "", user: User = Depends(console_user)) -> HTMLResponse:
    """The digest exactly as it is mailed, for the page to embed."""
    from bot.oversight.digest import collect_digest, render_html

    ctx = ctx_of(request)
    try:
        with ctx.session() as s:
            scope, _ = digest_scope(s, ctx.config, org)
            digest = collect_digest(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope,
                                    day=parse_date(day, today_local(request)))
    except GovbotError as exc:
        return HTMLResponse(f"<p>{error_view(exc)['detail']}</p>", status_code=422)
    return HTMLResponse(render_html(digest))


@router.post("/digest/send", dependencies=[Depends(check_csrf)])
def digest_send(request: Request, org: str = Form(""), user: User = Depends(console_user)) -> Response:
    """Write today's digest and deliver it to the channels that have not had it yet (admins)."""
    from bot.oversight.digest import produce_digest
    from bot.users import require_role

    ctx = ctx_of(request)
    try:
        require_role(user, "admin")
        with ctx.session() as s:
            scope, _ = digest_scope(s, ctx.config, org)
        outcome = produce_digest(ctx, scope=scope, day=today_local(request))
    except GovbotError as exc:
        flash(request, f"{error_view(exc)['title']}：{exc}", "error")
        return redirect(f"/digest?org={quote(org)}")
    if outcome is None:
        flash(request, "另一个进程正在生成今天的日报，请稍后刷新。", "warn")
    elif outcome.failed_now:
        flash(request, "日报已生成；发送失败的渠道：" + "、".join(outcome.failed_now) + "（系统会自动重试）", "error")
    elif outcome.sent_now:
        flash(request, "日报已生成并发送：" + "、".join(outcome.sent_now))
    else:
        flash(request, "日报已生成。" + ("各渠道今天已发送过。" if scope.channels else "未配置发送渠道。"))
    return redirect(f"/digest?org={quote(scope.name)}")


# ---------------------------------------------------------------- monthly report (报表)

SCOPE_KINDS = {"all": "全部账号", "organisation": "单位", "department": "部门", "account": "账号"}


def report_for(request: Request, month: str, kind: str, name: str) -> Any:
    """The report of the month for the scope picked (one of organisation, department, account; or all)."""
    from bot.oversight.reports import compute_report, month_period, resolve_scope

    ctx = ctx_of(request)
    start, end = month_period(month, ctx.tz)
    with ctx.session() as s:
        scope = resolve_scope(session=s, **({kind: name} if kind in SCOPE_KINDS and kind != "all" and name else {}))
        return compute_report(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, start=start, end=end)


def report_query(month: str, kind: str, name: str) -> str:
    return f"month={quote(month)}&kind={quote(kind)}&name={quote(name)}"


@router.get("/reports")
def reports_page(request: Request, month: str = "", kind: str = "all", name: str = "",
                 user: User = Depends(console_user)) -> HTMLResponse:
    from bot.oversight.reports import CSV_HEADER, conclusions, csv_rows

    ctx = ctx_of(request)
    month = month or today_local(request).strftime("%Y-%m")
    kind = kind if kind in SCOPE_KINDS else "all"
    report = error = None
    try:
        report = report_for(request, month, kind, name)
    except GovbotError as exc:
        error = error_view(exc)
    with ctx.session() as s:
        choices = {"organisation": [o.name for o in ctx.config.organisations],
                   "department": [d.name for d in s.exec(select(Department).order_by(Department.name))],
                   "account": [a.name for a in s.exec(select(Account).order_by(Account.name))]}
    return render(request, "reports.html", user, report=report, error=error, month=month, kind=kind, name=name,
                  kinds=SCOPE_KINDS, choices=choices, header=CSV_HEADER,
                  rows=csv_rows(report) if report else [], conclusions=conclusions(report) if report else [],
                  query=report_query(month, kind, name))


@router.get("/reports/csv")
def report_csv(request: Request, month: str = "", kind: str = "all", name: str = "",
               user: User = Depends(console_user)) -> Response:
    from bot.oversight.reports import to_csv

    try:
        report = report_for(request, month, kind, name)
    except GovbotError as exc:
        return render(request, "notfound.html", user, status_code=422, error=error_view(exc))
    filename = quote(f"月度检查记录表-{report.scope.name}-{month}.csv")
    # utf-8-sig: Excel reads the Chinese only with the byte-order mark.
    return Response(to_csv(report).encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{filename}"})
