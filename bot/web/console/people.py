"""Administration of people (用户与角色), departments (部门), and everyone's own password (修改密码)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import select

from bot.errors import GovbotError
from bot.models import ROLES, Department, Organisation, User
from bot.users import verify_password
from bot.web.console.common import (
    as_int,
    console_user,
    csrf_token,
    ctx_of,
    flash,
    redirect,
    render,
    run_action,
)
from bot.web.sessions import renew

router = APIRouter()


def _people_page(request: Request, user: User, *, error: dict | None = None, form: dict | None = None,
                 status_code: int = 200) -> HTMLResponse:
    with ctx_of(request).session() as s:
        users = list(s.exec(select(User).order_by(User.active.desc(), User.username)))
        depts = {d.id: d.name for d in s.exec(select(Department).order_by(Department.name))}
    return render(request, "admin_users.html", user, status_code=status_code, users=users, depts=depts, roles=ROLES,
                  error=error, form=form or {"roles": []})


@router.get("/admin")
def admin_home(user: User = Depends(console_user)) -> Response:
    return redirect("/admin/users")


@router.get("/admin/users")
def users_page(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    return _people_page(request, user)


@router.post("/admin/users")
async def user_add(request: Request, username: str = Form(""), display_name: str = Form(""),
                   department: str = Form(""), email: str = Form(""), lead: str = Form(""),
                   password: str = Form(""), user: User = Depends(console_user)) -> Response:
    from bot.users import create_user

    roles = list((await request.form()).getlist("roles"))
    _, error = run_action(request, lambda s: create_user(
        session=s, actor=user, username=username, display_name=display_name, roles=roles,
        department_id=as_int(department), email=email, lead=bool(lead), password=password))
    if error:
        return _people_page(request, user, error=error, status_code=422, form={
            "username": username, "display_name": display_name, "department": as_int(department), "email": email,
            "lead": bool(lead), "roles": roles})
    flash(request, f"已添加用户 {username.strip()}，可用设定的密码登录。")
    return redirect("/admin/users")


@router.get("/admin/users/{user_id}")
def user_edit_page(request: Request, user_id: int, user: User = Depends(console_user)) -> HTMLResponse:
    with ctx_of(request).session() as s:
        target = s.get(User, user_id)
        depts = {d.id: d.name for d in s.exec(select(Department).order_by(Department.name))}
    if target is None:
        return render(request, "notfound.html", user, status_code=404,
                      error={"title": "未找到", "detail": "没有这个用户。", "problems": []})
    return render(request, "admin_user.html", user, target=target, depts=depts, roles=ROLES)


@router.post("/admin/users/{user_id}")
async def user_save(request: Request, user_id: int, display_name: str = Form(""), department: str = Form(""),
                    email: str = Form(""), lead: str = Form(""), active: str = Form(""), password: str = Form(""),
                    user: User = Depends(console_user)) -> Response:
    from bot.users import set_password, update_user

    roles = list((await request.form()).getlist("roles"))

    def act(s: Any) -> Any:
        target = update_user(session=s, actor=user, user_id=user_id, display_name=display_name, roles=roles,
                             department_id=as_int(department), email=email, lead=bool(lead), active=bool(active))
        if password:
            set_password(session=s, user=target, password=password)

    _, error = run_action(request, act)
    if error:
        flash(request, f"{error['title']}：{error['detail']}", "error")
        return redirect(f"/admin/users/{user_id}")
    flash(request, "用户已保存。" + ("新密码已生效。" if password else ""))
    return redirect("/admin/users")


# ---------------------------------------------------------------- departments (部门)


@router.get("/admin/departments")
def departments_page(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    with ctx_of(request).session() as s:
        depts = list(s.exec(select(Department).order_by(Department.name)))
        orgs = {o.id: o.name for o in s.exec(select(Organisation).order_by(Organisation.name))}
        members: dict[int, int] = {}
        for u in s.exec(select(User).where(User.active.is_(True))):
            if u.department_id:
                members[u.department_id] = members.get(u.department_id, 0) + 1
    return render(request, "admin_departments.html", user, depts=depts, orgs=orgs, members=members)


@router.post("/admin/departments")
def department_save(request: Request, department_id: str = Form(""), name: str = Form(""),
                    organisation: str = Form(""), email: str = Form(""), user: User = Depends(console_user)) -> Response:
    from bot.departments import save_department

    _, error = run_action(request, lambda s: save_department(
        session=s, actor=user, name=name, organisation_id=as_int(organisation), email=email,
        department_id=as_int(department_id)))
    if error:
        flash(request, f"{error['title']}：{error['detail']}", "error")
    else:
        flash(request, f"部门“{name.strip()}”已保存。")
    return redirect("/admin/departments")


# ---------------------------------------------------------------- own password (修改密码)


@router.get("/account/password")
def password_page(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    return render(request, "password.html", user)


@router.post("/account/password")
def password_change(request: Request, current: str = Form(""), password: str = Form(""), again: str = Form(""),
                    user: User = Depends(console_user)) -> Response:
    from bot.users import set_password

    def act(s: Any) -> Any:
        me = s.get(User, user.id)
        if not verify_password(current, me.password_hash):
            raise GovbotError("password.current_wrong")
        if password != again:
            raise GovbotError("password.mismatch")
        set_password(session=s, user=me, password=password)

    _, error = run_action(request, act)
    if error:
        return render(request, "password.html", user, status_code=422, error=error)
    # Every other session of the user has ended; this one goes on under a new token and CSRF token.
    request.session.clear()
    request.session["user_id"] = user.id
    csrf_token(request)
    renew(request)
    flash(request, "密码已修改，其他设备上的登录已退出；下次登录请使用新密码。")
    return redirect("/")
