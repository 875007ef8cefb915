"""`govbot user ...` and `govbot accounts ...`."""

from __future__ import annotations

import sys

import click
from sqlmodel import select

from bot.cli import CliState, fail, handle_errors, pass_state
from bot.cli_io import echo_json, echo_table, json_option
from bot.errors import text_zh
from bot.models import Account, Department, User
from bot.users import check_roles, end_sessions, get_user, issue_api_token
from bot.users import set_password as apply_password


@click.group()
def user() -> None:
    """Users and roles (editor, reviewer, approver, responder, admin)."""


def read_password(from_stdin: bool) -> str:
    """A new password, never from the command line (it would sit in the shell history and `ps`):
    typed twice at a prompt, or one line on stdin (scripts: `... --password-stdin < file`)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("new password", hide_input=True, confirmation_prompt=True)


@user.command("add")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True, help="Repeat for several roles.")
@click.option("--name", "display_name", default="", help="Display name (default: the user name).")
@click.option("--department", default="", help="Department name (responders answer its tickets).")
@click.option("--email", default="", help="E-mail for warnings and escalations.")
@click.option("--set-password", is_flag=True, help="Prompt for a console password (typed twice).")
@click.option("--password-stdin", is_flag=True, help="Read the console password from the first line of stdin.")
@click.option("--lead", is_flag=True, help="Department lead: receives escalations.")
@pass_state
@handle_errors
def user_add(state: CliState, username: str, roles: tuple[str, ...], display_name: str, department: str,
             email: str, set_password: bool, password_stdin: bool, lead: bool) -> None:
    """Add a user (without a console password unless --set-password or --password-stdin)."""
    password = read_password(password_stdin) if set_password or password_stdin else None
    with state.ctx.session() as session:
        if session.exec(select(User).where(User.username == username)).first():
            fail(text_zh("cli.user_exists", username=username))
        dept_id = None
        if department:
            dept = session.exec(select(Department).where(Department.name == department)).first()
            if dept is None:
                fail(text_zh("department.name_not_found", name=department))
            dept_id = dept.id
        u = User(username=username, display_name=display_name or username, roles=check_roles(list(roles)),
                 department_id=dept_id, email=email or None, department_lead=lead)
        session.add(u)
        session.flush()
        if password is not None:
            apply_password(session=session, user=u, password=password)
    click.echo(f"added {username} ({u.roles})")


@user.command("list")
@json_option
@pass_state
@handle_errors
def user_list(state: CliState, as_json: bool) -> None:
    """List users."""
    with state.ctx.session() as session:
        depts = {d.id: d.name for d in session.exec(select(Department))}
        rows = [{"username": u.username, "display_name": u.display_name, "roles": u.roles.split(","),
                 "department": depts.get(u.department_id), "lead": u.department_lead, "active": u.active}
                for u in session.exec(select(User).order_by(User.username))]
    if as_json:
        echo_json(rows)
        return
    echo_table([(r["username"], r["display_name"], ",".join(r["roles"]), r["department"] or "-",
                 "lead" if r["lead"] else "", "" if r["active"] else "disabled") for r in rows],
               ("username", "name", "roles", "department", "lead", "state"))


@user.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@pass_state
@handle_errors
def user_passwd(state: CliState, username: str, password_stdin: bool) -> None:
    """Set a user's console password (prompted for); ends the user's console sessions."""
    password = read_password(password_stdin)
    with state.ctx.session() as session:
        apply_password(session=session, user=get_user(session=session, username=username), password=password)
    click.echo(f"password set for {username}; their console sessions are ended")


@user.command("logout")
@click.argument("username")
@pass_state
@handle_errors
def user_logout(state: CliState, username: str) -> None:
    """End every console session of a user (a lost phone, someone leaving)."""
    with state.ctx.session() as session:
        ended = end_sessions(session=session, user=get_user(session=session, username=username))
    click.echo(f"{ended} console session(s) of {username} ended")


@user.command("token")
@click.argument("username")
@pass_state
@handle_errors
def user_token(state: CliState, username: str) -> None:
    """Issue a new API token (replaces the old one); printed once."""
    with state.ctx.session() as session:
        token = issue_api_token(session=session, user=get_user(session=session, username=username))
    click.echo(token)


# Budgets listed even while untouched: the ones publishing and polling live within.


@click.group()
def accounts() -> None:
    """Official accounts (from the config's [[accounts]])."""


@accounts.command("list")
@json_option
@pass_state
@handle_errors
def accounts_list(state: CliState, as_json: bool) -> None:
    """List accounts with platform, department, days since the last post, and the platform call budgets
    (调用额度) left in the current window with what is waiting for them."""
    from bot.clock import to_local
    from bot.connectors.quota import SHOWN_BUDGETS, budget_overview
    from bot.publishing.gap import account_gaps

    ctx = state.ctx
    with ctx.session() as session:
        depts = {d.id: d.name for d in session.exec(select(Department))}
        gaps = {g.account_id: g for g in account_gaps(session=session, config=ctx.config)}
        rows = []
        for a in session.exec(select(Account).order_by(Account.name)):
            g = gaps.get(a.id)
            budgets = [{"api": b.api, "label": b.label, "limit": b.limit, "used": b.used, "remaining": b.remaining,
                        "closed": b.closed, "waiting": b.waiting, "window_end": to_local(b.window_end, ctx.tz)}
                       for b in budget_overview(session, a.id, config=ctx.config)
                       if b.used or b.closed or b.waiting or b.api in SHOWN_BUDGETS]
            rows.append({"name": a.name, "platform": a.platform, "department": depts.get(a.department_id),
                         "enabled": a.enabled, "days_since_last_post": None if g is None else g.days_since_last,
                         "gap_level": None if g is None else g.level, "budgets": budgets})
    if as_json:
        echo_json(rows)
        return
    echo_table([(r["name"], r["platform"], r["department"] or "-", "enabled" if r["enabled"] else "disabled",
                 "never" if r["days_since_last_post"] is None else f"{r['days_since_last_post']:.1f}",
                 "" if r["gap_level"] in (None, "ok") else r["gap_level"],
                 "; ".join(f"{b['api']} " + ("closed by the platform" if b["closed"] else
                                             f"{b['remaining']}/{b['limit']} left")
                           + (f", {b['waiting']} waiting" if b["waiting"] else "")
                           + f" (until {b['window_end']:%m-%d %H:%M})" for b in r["budgets"])) for r in rows],
               ("account", "platform", "department", "state", "days since post", "gap", "budgets left"), align="<<<<><<")
