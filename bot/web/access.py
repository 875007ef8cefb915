"""Access to every route, in one table: (method, path template) -> action of bot.permissions.

`authorize` is an app-level dependency, so no route declares its own check: it finds who is asking
(bearer API token or the server-side session cookie), refuses what the table does not allow, checks
the department of the object named in the path (a ticket, a reply, a template, a message), and
requires the CSRF token on state-changing calls made with the session cookie. A route missing from
the table is refused (and fails the route matrix test), so a new route cannot be open by mistake.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.routing import iter_route_contexts
from sqlmodel import Session

from bot.errors import text_zh
from bot.models import Message, Reply, ReplyTemplate, Ticket, User
from bot.permissions import ANYONE, SIGNED_IN, allowed, may_act, refusal

# The platform's callback: public, signed by the platform, never CSRF-checked.
PLATFORM = "platform"

ROUTE_ACTIONS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): ANYONE,
    ("GET", "/api/openapi.json"): ANYONE,
    ("GET", "/api/docs"): ANYONE,
    ("GET", "/docs/oauth2-redirect"): ANYONE,
    ("GET", "/redoc"): ANYONE,
    ("GET", "/static/{name}"): ANYONE,
    ("GET", "/login"): ANYONE,
    ("POST", "/login"): ANYONE,
    ("GET", "/wechat/callback/{appid}"): PLATFORM,
    ("POST", "/wechat/callback/{appid}"): PLATFORM,
    ("POST", "/logout"): SIGNED_IN,
    ("GET", "/"): SIGNED_IN,
    # posts (稿件)
    ("GET", "/api/posts"): "posts.read",
    ("POST", "/api/posts"): "posts.write",
    ("GET", "/api/posts/{post_id}"): "posts.read",
    ("PATCH", "/api/posts/{post_id}"): "posts.write",
    ("PUT", "/api/posts/{post_id}/cover"): "posts.write",
    ("GET", "/api/posts/{post_id}/cover"): "posts.read",
    ("POST", "/api/posts/{post_id}/check"): "posts.read",
    ("POST", "/api/posts/{post_id}/submit"): "posts.write",
    ("POST", "/api/posts/{post_id}/sign"): "posts.sign",
    ("POST", "/api/posts/{post_id}/reject"): "posts.sign",
    ("POST", "/api/posts/{post_id}/schedule"): "posts.schedule",
    ("POST", "/api/posts/{post_id}/unschedule"): "posts.schedule",
    ("GET", "/api/publications"): "posts.read",
    ("GET", "/api/publications/{publication_id}"): "posts.read",
    ("GET", "/posts"): "posts.read",
    ("GET", "/posts/new"): "posts.write",
    ("POST", "/posts/new"): "posts.write",
    ("GET", "/posts/{post_id}/edit"): "posts.write",
    ("POST", "/posts/{post_id}/edit"): "posts.write",
    ("GET", "/posts/{post_id}/cover"): "posts.read",
    ("GET", "/posts/{post_id}"): "posts.read",
    ("POST", "/posts/{post_id}/submit"): "posts.write",
    ("POST", "/posts/{post_id}/sign"): "posts.sign",
    ("POST", "/posts/{post_id}/reject"): "posts.sign",
    ("POST", "/posts/{post_id}/schedule"): "posts.schedule",
    ("POST", "/posts/{post_id}/unschedule"): "posts.schedule",
    # accounts (账号)
    ("GET", "/api/accounts"): "accounts.read",
    ("GET", "/accounts"): "accounts.read",
    # messages (消息), tickets (工单), replies and reply templates (答复模板)
    ("GET", "/messages"): "messages.read",
    ("POST", "/messages/{message_id}/correct"): "messages.correct",
    ("GET", "/api/tickets"): "tickets.read",
    ("GET", "/api/tickets/{ticket_id}"): "tickets.read",
    ("GET", "/api/tickets/{ticket_id}/notes"): "tickets.read",
    ("POST", "/api/tickets/{ticket_id}/notes"): "tickets.handle",
    ("POST", "/api/tickets/{ticket_id}/acknowledge"): "tickets.handle",
    ("POST", "/api/tickets/{ticket_id}/answer"): "tickets.handle",
    ("POST", "/api/tickets/{ticket_id}/offline-answer"): "tickets.handle",
    ("POST", "/api/tickets/{ticket_id}/reassign"): "tickets.handle",
    ("POST", "/api/tickets/{ticket_id}/close"): "tickets.handle",
    ("GET", "/api/tickets/replies/failed"): "tickets.read",
    ("POST", "/api/tickets/replies/{reply_id}/retry"): "tickets.handle",
    ("GET", "/api/tickets/templates"): "templates.read",
    ("POST", "/api/tickets/templates"): "templates.write",
    ("PUT", "/api/tickets/templates/{template_id}"): "templates.write",
    ("DELETE", "/api/tickets/templates/{template_id}"): "templates.write",
    ("GET", "/tickets"): "tickets.read",
    ("GET", "/tickets/{ticket_id}"): "tickets.read",
    ("POST", "/tickets/{ticket_id}/answer"): "tickets.handle",
    ("POST", "/tickets/{ticket_id}/replies/{reply_id}/retry"): "tickets.handle",
    ("POST", "/tickets/{ticket_id}/offline"): "tickets.handle",
    ("POST", "/tickets/{ticket_id}/acknowledge"): "tickets.handle",
    ("POST", "/tickets/{ticket_id}/note"): "tickets.handle",
    ("POST", "/tickets/{ticket_id}/reassign"): "tickets.handle",
    ("POST", "/tickets/{ticket_id}/close"): "tickets.handle",
    ("GET", "/tickets/templates"): "templates.read",
    ("POST", "/tickets/templates"): "templates.write",
    # oversight (日报, 报表) and the rules tester (规则)
    ("GET", "/api/digest"): "oversight.read",
    ("GET", "/api/reports"): "oversight.read",
    ("GET", "/digest"): "oversight.read",
    ("GET", "/digest/html"): "oversight.read",
    ("POST", "/digest/send"): "digest.send",
    ("GET", "/reports"): "oversight.read",
    ("GET", "/reports/csv"): "oversight.read",
    ("GET", "/rules"): "rules.test",
    ("POST", "/rules"): "rules.test",
    # sessions (登录会话)
    ("DELETE", "/api/users/{username}/sessions"): "admin",
    # The console's posts pages (calendar, notices, media, retry), the platforms' budgets and Weibo
    # count, the inbox and administration, inspection. /rules/edit checks and tries for every officer;
    # saving a rules file is for admins (checked where it saves).
    ("GET", "/static/vendor/{package}/{name}"): ANYONE,
    ("GET", "/account/password"): SIGNED_IN,
    ("POST", "/account/password"): SIGNED_IN,
    ("GET", "/notices"): SIGNED_IN,
    ("POST", "/notices/read"): SIGNED_IN,
    ("GET", "/notices/{notice_id}"): SIGNED_IN,
    ("GET", "/calendar"): "posts.read",
    ("GET", "/media/{media_id}"): "posts.read",
    ("POST", "/posts/check"): "posts.write",
    ("POST", "/posts/media"): "posts.write",
    ("POST", "/posts/{post_id}/retarget"): "posts.schedule",
    ("POST", "/posts/{post_id}/retry"): "posts.schedule",
    ("POST", "/api/posts/{post_id}/retry"): "posts.schedule",
    ("POST", "/api/weibo/length"): "posts.read",
    ("GET", "/api/accounts/budgets"): "accounts.read",
    ("GET", "/api/accounts/{name}/budgets"): "accounts.read",
    ("POST", "/tickets/bulk"): "tickets.handle",
    ("POST", "/tickets/{ticket_id}/assign"): "tickets.handle",
    ("POST", "/tickets/{ticket_id}/correct"): "messages.correct",
    ("GET", "/reports/docx"): "oversight.read",
    ("POST", "/rules/edit"): "rules.test",
    ("GET", "/inspection"): "oversight.read",
    ("GET", "/inspection/annual.{fmt}"): "oversight.read",
    ("GET", "/inspection/report.{fmt}"): "oversight.read",
    ("POST", "/inspection/rectifications/{rectification_id}"): "inspection.rectify",
    ("GET", "/api/inspection/annual"): "oversight.read",
    ("GET", "/api/inspection/report"): "oversight.read",
    ("GET", "/api/inspection/status"): "oversight.read",
    ("GET", "/api/inspection/rectifications"): "oversight.read",
    ("POST", "/api/inspection/rectifications/{rectification_id}"): "inspection.rectify",
    ("POST", "/accounts/{account_id}/test"): "admin",
    ("GET", "/admin"): "admin",
    ("GET", "/admin/users"): "admin",
    ("POST", "/admin/users"): "admin",
    ("GET", "/admin/users/{user_id}"): "admin",
    ("POST", "/admin/users/{user_id}"): "admin",
    ("GET", "/admin/departments"): "admin",
    ("POST", "/admin/departments"): "admin",
}

# Objects named in a path whose department decides a scoped action: path parameter -> department lookup.
_MISSING = object()


def _ticket_dept(s: Session, oid: int) -> Any:
    t = s.get(Ticket, oid)
    return _MISSING if t is None else t.department_id


def _reply_dept(s: Session, oid: int) -> Any:
    r = s.get(Reply, oid)
    if r is None:
        return _MISSING
    if r.ticket_id is not None:
        return _ticket_dept(s, r.ticket_id)
    m = s.get(Message, r.message_id)
    return None if m is None else m.department_id


def _template_dept(s: Session, oid: int) -> Any:
    t = s.get(ReplyTemplate, oid)
    return _MISSING if t is None else t.department_id


def _message_dept(s: Session, oid: int) -> Any:
    m = s.get(Message, oid)
    return _MISSING if m is None else m.department_id


SCOPE_PARAMS: dict[str, Callable[[Session, int], Any]] = {
    "ticket_id": _ticket_dept, "reply_id": _reply_dept, "template_id": _template_dept, "message_id": _message_dept,
}

MAX_ID = 2**63 - 1
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def route_table(app: Any) -> dict[int, str]:
    """Each route object of the app (by identity) -> its full path template, built once per app."""
    table = getattr(app.state, "route_paths", None)
    if table is None:
        table = {id(rc.original_route): rc.path for rc in iter_route_contexts(app.routes)}
        app.state.route_paths = table
    return table


def action_of(request: Request) -> tuple[str, str | None]:
    route = request.scope.get("route")
    path = route_table(request.app).get(id(route)) if route is not None else None
    method = "GET" if request.method == "HEAD" else request.method
    return f"{method} {path}", ROUTE_ACTIONS.get((method, path)) if path else None


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def refuse_anonymous(code: str, request: Request) -> HTTPException:
    """The API's 401 saying `code` (a catalogue code), or the console's redirect to the log-in page."""
    if is_api(request):
        return HTTPException(401, text_zh(code))
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(303, "login required", headers={"Location": f"/login?next={quote(target)}"})


def identify(request: Request, session: Session) -> User | None:
    """The active user asking, by bearer token (scripts) or the session cookie; found once per request."""
    from bot.users import user_for_token

    if "auth_user" in request.scope:
        return request.scope["auth_user"]
    auth = request.headers.get("authorization", "")
    user = None
    if auth.lower().startswith("bearer "):
        user = user_for_token(session=session, token=auth[7:].strip())
    elif "session" in request.scope and isinstance(request.session.get("user_id"), int):
        user = session.get(User, request.session["user_id"])
    if user is not None and not user.active:
        user = None
    if user is not None:
        session.expunge(user)
    request.scope["auth_user"] = user
    return user


async def authorize(request: Request) -> None:
    """The one access check, run before every route (see the module docstring)."""
    key, action = action_of(request)
    if action is None:
        raise HTTPException(403, f"路由 {key} 未在权限表中登记，已拒绝")
    if action == PLATFORM:
        return
    unsafe = request.method not in SAFE_METHODS and "session" in request.scope
    if action == ANYONE:
        if unsafe:
            await check_csrf_token(request)
        return
    ctx = request.app.state.ctx
    with ctx.session() as s:
        user = identify(request, s)
        if user is None:
            raise refuse_anonymous("request.unauthenticated", request)
        if unsafe:
            await check_csrf_token(request)
        if not may_act(user, action):
            deny(request, user, action, scoped=False)
        for name, lookup in SCOPE_PARAMS.items():
            raw = request.path_params.get(name)
            if raw is None or not str(raw).isdigit() or int(raw) > MAX_ID:
                continue  # the route answers unknown or malformed ids itself (404/422)
            dept = lookup(s, int(raw))
            if dept is not _MISSING and not allowed(user, action, dept):
                deny(request, user, action, scoped=True)
        # A department asked for by number in the query (?department=2, ?department_id=2).
        for name in ("department", "department_id"):
            raw = request.query_params.get(name, "")
            if raw.isdigit() and int(raw) <= MAX_ID and not allowed(user, action, int(raw)):
                deny(request, user, action, scoped=True)


def deny(request: Request, user: User, action: str, *, scoped: bool) -> None:
    """Refuse as the services refuse (PermissionDenied: the API's usual 403), or with the console's page."""
    refused = refusal(user, action, scoped=scoped)
    if not is_api(request):
        raise HTTPException(403, refused.message_zh)
    raise refused


async def check_csrf_token(request: Request) -> None:
    """State changes made with the session cookie carry the session's CSRF token (header or form field).

    Requests with a bearer token (scripts) and without a session cookie carry no ambient authority.
    """
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    expected = request.session.get("csrf")
    if not request.session and not is_api(request):
        expected = None
    elif not request.session:
        return  # an API call with no session at all: refused as anonymous, not as forged
    sent = request.headers.get("x-csrf-token", "")
    if not sent and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = str((await request.form()).get("csrf_token", ""))
    if not expected or not hmac.compare_digest(str(expected).encode(), sent.encode()):
        raise HTTPException(403, "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试。")
