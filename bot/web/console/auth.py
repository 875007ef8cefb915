"""Static files, log in and log out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from bot.errors import GovbotError
from bot.users import authenticate
from bot.web.console.common import STATIC_DIR, check_csrf, csrf_token, ctx_of, redirect, render, safe_next

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
