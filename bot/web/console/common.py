"""What every console page shares: templates and filters, the logged-in user, CSRF, flashes, rendering,
running one domain action per transaction, and domain errors shown in Chinese."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from bot.clock import to_local, utcnow
from bot.context import Context
from bot.errors import CheckFailed, GovbotError, InvalidState, NotFound, PermissionDenied
from bot.labels import LABELS, label
from bot.models import User
from bot.resources import package_dir
from bot.triage.names import names_for, rule_name

STATIC_DIR = package_dir("web", "static")
templates = Jinja2Templates(directory=str(package_dir("web", "templates")))

# Navigation: (path, label, roles that see it; empty = everyone).
NAV = (
    ("/", "首页", ()),
    ("/posts", "稿件", ("editor", "reviewer", "approver")),
    ("/calendar", "日历", ("editor", "reviewer", "approver")),
    ("/tickets", "工单", ("responder",)),
    ("/messages", "消息", ("responder", "editor")),
    ("/digest", "日报", ()),
    ("/reports", "报表", ()),
    ("/inspection", "迎检", ()),
    ("/accounts", "账号", ()),
    ("/rules", "规则", ()),
    ("/admin/users", "管理", ("admin",)),
)

_ERROR_TITLES = (
    (CheckFailed, "发布前检查未通过"),
    (PermissionDenied, "无权进行此操作"),
    (InvalidState, "当前状态不允许此操作"),
    (NotFound, "未找到"),
    (GovbotError, "操作未完成"),
)


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


@pass_context
def rule_zh(context: Any, rule_id: str | None) -> str:
    """A triage or FAQ rule by its Chinese name (rules/names.toml of the configured rules directory)."""
    config = ctx_of(context["request"]).config
    return rule_name(rule_id, names_for(config.rules_dir))


def roles_zh(user: User) -> str:
    return "、".join(label(r, "role") for r in sorted(user.role_set()))


templates.env.filters["dt"] = local_dt
templates.env.filters["deadline"] = deadline
templates.env.filters["zh"] = label
templates.env.filters["rule_zh"] = rule_zh
templates.env.globals["LABELS"] = LABELS


def error_view(exc: GovbotError) -> dict[str, Any]:
    """A domain error as the page shows it: a Chinese heading, the detail, and check problems if any."""
    title = next(t for cls, t in _ERROR_TITLES if isinstance(exc, cls))
    problems = [problem_view(p) for p in exc.problems] if isinstance(exc, CheckFailed) else []
    return {"title": title, "detail": "" if problems else exc.message_zh, "problems": problems, "code": exc.error_code}


def problem_view(problem: Any) -> dict[str, Any]:
    """A check problem for the page: where it is (field, line, column), what, and the fix if known."""
    where = getattr(problem, "where", None)
    line, column = getattr(problem, "line", None), getattr(problem, "column", None)
    place = label(where, "field")
    if line is not None:
        place += f" 第 {line} 行第 {column} 列"
    message = getattr(problem, "message_zh", None) or str(problem)
    return {"field": where, "place": place, "message": message,
            "snippet": getattr(problem, "snippet", ""), "suggestion": getattr(problem, "suggestion", None),
            "text": str(problem)}


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def flash(request: Request, text: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", [])
    request.session["flash"] = [*request.session["flash"], [kind, text]]


def safe_next(target: str | None) -> str:
    """Only local paths are followed after login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/"
    return target


def console_user(request: Request) -> User:
    """The logged-in user (found by the access check, bot.web.access), or a redirect to the login page."""
    from bot.web.access import identify, refuse_anonymous

    with ctx_of(request).session() as s:
        user = identify(request, s)
    if user is None:
        raise refuse_anonymous("request.unauthenticated", request)
    return user


def render(request: Request, template: str, user: User | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    nav = []
    if user is not None:
        for path, text, roles in NAV:
            if not roles or user.has_role("admin") or any(user.has_role(r) for r in roles):
                nav.append((path, text))
    messages = request.session.pop("flash", [])
    notice_count = 0
    if user is not None:
        from bot.publishing.notices import unread_count

        with ctx_of(request).session() as s:
            notice_count = unread_count(session=s, username=user.username)
    base = {"user": user, "nav": nav, "csrf": csrf_token(request), "flashes": messages,
            "path": request.url.path, "tz": ctx_of(request).tz, "notice_count": notice_count, "roles_zh": roles_zh(user) if user else ""}
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
        raise GovbotError("datetime.invalid", value=text) from None
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




def forbidden_page(request: Request, user: User, detail: str) -> HTMLResponse:
    """A page the user's roles do not open, said in Chinese with what to do instead."""
    return render(request, "notfound.html", user, status_code=403,
                  error={"title": "无权查看此页面", "detail": detail, "problems": []})


def error_page(request: Request, user: User, exc: GovbotError) -> HTMLResponse:
    status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, PermissionDenied) else 422
    return render(request, "notfound.html", user, status_code=status, error=error_view(exc))
