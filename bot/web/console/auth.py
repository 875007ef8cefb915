"""Static files, log in and log out."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from bot.clock import utcnow
from bot.login_throttle import Limits
from bot.users import authenticate
from bot.web.console.common import STATIC_DIR, csrf_token, ctx_of, redirect, render, safe_next
from bot.web.security import client_address

router = APIRouter()


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


@router.post("/login")
def login(request: Request, username: str = Form(""), password: str = Form(""), next: str = Form("/")) -> Response:
    ctx = ctx_of(request)
    web = ctx.config.web
    limits = Limits(web.login_max_failures, timedelta(minutes=web.login_lockout_max_minutes))
    with ctx.session() as s:  # commits the failure count too
        result = authenticate(session=s, username=username.strip(), password=password,
                              address=client_address(request, ctx.config), limits=limits)
    if result.user is None:
        error = {"title": "用户名或密码错误", "detail": "", "problems": []}
        status = 401
        if result.locked_until is not None:
            wait = max(1, int((result.locked_until - utcnow()).total_seconds()))
            error = {"title": "登录失败次数过多", "detail": f"请 {wait} 秒后再试。", "problems": []}
            status = 429
        return render(request, "login.html", None, status_code=status, next=safe_next(next), username=username,
                      error=error)
    request.session.clear()  # a fresh session (new token and CSRF token) for the logged-in user
    request.session["user_id"] = result.user.id
    csrf_token(request)
    return redirect(safe_next(next))


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return redirect("/login")
