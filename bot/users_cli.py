"""`govbot user ...` and `govbot accounts ...`."""

from __future__ import annotations

import click
from sqlmodel import select

from bot.cli import CliState, fail, handle_errors, pass_state
from bot.clock import to_local
from bot.models import Account, Department, User
from bot.users import check_roles, get_user, hash_password, issue_api_token


@click.group()
def user() -> None:
    """Users and roles (editor, reviewer, approver, responder, admin)."""


@user.command("add")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True, help="Repeat for several roles.")
@click.option("--name", "display_name", default="")
@click.option("--department", default="")
@click.option("--email", default="")
@click.option("--password", default="", help="Console password (prompted for if omitted and a TTY).")
@click.option("--lead", is_flag=True, help="Department lead: receives escalations.")
@pass_state
@handle_errors
def user_add(state: CliState, username: str, roles: tuple[str, ...], display_name: str, department: str,
             email: str, password: str, lead: bool) -> None:
    """Add a user."""
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
                 department_id=dept_id, email=email or None, department_lead=lead,
                 password_hash=hash_password(password) if password else None)
        session.add(u)
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
@click.password_option()
@pass_state
@handle_errors
def user_passwd(state: CliState, username: str, password: str) -> None:
    """Set a user's console password."""
    with state.ctx.session() as session:
        u = get_user(session=session, username=username)
        u.password_hash = hash_password(password)
        session.add(u)
    click.echo(f"password set for {username}")


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
SHOWN_BUDGETS = ("freepublish/submit", "freepublish/get", "comment/list", "calls", "statuses/share")


@click.group()
def accounts() -> None:
    """Official accounts (from the config's [[accounts]])."""


@accounts.command("list")
@pass_state
@handle_errors
def accounts_list(state: CliState) -> None:
    """List accounts with platform, department, days since the last post, and the platform call budgets
    (调用额度) left in the current window with what is waiting for them."""
    from bot.connectors.quota import budget_overview
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
            for b in budget_overview(session, a.id, config=ctx.config):
                if b.used or b.closed or b.waiting or b.api in SHOWN_BUDGETS:
                    state_ = "closed by the platform" if b.closed else f"{b.remaining}/{b.limit} left"
                    waiting = f", {b.waiting} waiting" if b.waiting else ""
                    click.echo(f"    {b.api:<24} {b.label:<10} {state_}{waiting} "
                               f"(until {to_local(b.window_end, ctx.tz):%m-%d %H:%M})")
