"""What every console page shares: templates and filters, the logged-in user, CSRF, flashes, rendering,
running one domain action per transaction, and domain errors shown in Chinese."""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from bot.clock import to_local, utcnow
from bot.context import Context
from bot.errors import CheckFailed, GovbotError, InvalidState, NotFound, PermissionDenied
from bot.labels import LABELS, label
from bot.models import User

HERE = Path(__file__).resolve().parent.parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))

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




def forbidden_page(request: Request, user: User, detail: str) -> HTMLResponse:
    """A page the user's roles do not open, said in Chinese with what to do instead."""
    return render(request, "notfound.html", user, status_code=403,
                  error={"title": "无权查看此页面", "detail": detail, "problems": []})


def error_page(request: Request, user: User, exc: GovbotError) -> HTMLResponse:
    status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, PermissionDenied) else 422
    return render(request, "notfound.html", user, status_code=status, error=error_view(exc))
