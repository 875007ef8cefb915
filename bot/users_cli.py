"""`govbot user ...` and `govbot accounts ...`."""

from __future__ import annotations

import sys

import click
from sqlmodel import select

from bot.cli import CliState, fail, handle_errors, pass_state
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
@click.option("--name", "display_name", default="")
@click.option("--department", default="")
@click.option("--email", default="")
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
            fail(f"user {username!r} exists")
        dept_id = None
        if department:
            dept = session.exec(select(Department).where(Department.name == department)).first()
            if dept is None:
                fail(f"no department named {department!r}")
            dept_id = dept.id
        u = User(username=username, display_name=display_name or username, roles=check_roles(list(roles)),
                 department_id=dept_id, email=email or None, department_lead=lead)
        session.add(u)
        session.flush()
        if password is not None:
            apply_password(session=session, user=u, password=password)
    click.echo(f"added {username} ({u.roles})")


@user.command("list")
@pass_state
@handle_errors
def user_list(state: CliState) -> None:
    """List users."""
    with state.ctx.session() as session:
        depts = {d.id: d.name for d in session.exec(select(Department))}
        for u in session.exec(select(User).order_by(User.username)):
            lead = " lead" if u.department_lead else ""
            click.echo(f"{u.username:<16} {u.roles:<32} {depts.get(u.department_id, '-')}{lead}"
                       f"{'' if u.active else ' (disabled)'}")


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


@click.group()
def accounts() -> None:
    """Official accounts (from the config's [[accounts]])."""


@accounts.command("list")
@pass_state
@handle_errors
def accounts_list(state: CliState) -> None:
    """List accounts with platform, department and days since the last post."""
    from bot.publishing.gap import account_gaps

    ctx = state.ctx
    with ctx.session() as session:
        depts = {d.id: d.name for d in session.exec(select(Department))}
        gaps = {g.account_id: g for g in account_gaps(session=session, config=ctx.config)}
        for a in session.exec(select(Account).order_by(Account.name)):
            g = gaps.get(a.id)
            since = "never posted" if g is None or g.days_since_last is None else f"{g.days_since_last:.1f} days since last post"
            warn = f"  [{g.level}]" if g is not None and g.level != "ok" else ""
            click.echo(f"{a.name:<20} {a.platform:<7} {depts.get(a.department_id, '-'):<12} "
                       f"{'enabled' if a.enabled else 'disabled':<9} {since}{warn}")
