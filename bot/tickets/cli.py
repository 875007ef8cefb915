"""`govbot tickets ...` and `govbot templates ...`: handle citizen tickets from the command line.

Actions name the acting user with `--as USERNAME`: the same permissions and audit trail as the console.
Times are shown in local time (config `timezone`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import click
from sqlmodel import Session, select

from bot.cli import CliState, as_option, fail, handle_errors, pass_state
from bot.cli_io import echo_json, echo_table, json_option
from bot.clock import to_local, utcnow
from bot.errors import text_zh
from bot.models import Account, Department, Message, Reply, ReplyTemplate, User
from bot.tickets import answering, service
from bot.users import get_user

TEXT_PREVIEW = 40


def _when(state: CliState, dt: datetime | None) -> str:
    return to_local(dt, state.config.timezone).strftime("%Y-%m-%d %H:%M") if dt else "-"


def _due(state: CliState, dt: datetime) -> str:
    """A deadline is exclusive (00:00 after the last day): show the last day, as officers count it."""
    local = to_local(dt, state.config.timezone)
    if (local.hour, local.minute, local.second) == (0, 0, 0):
        return f"{(local - timedelta(days=1)):%Y-%m-%d} end of day"
    return f"{local:%Y-%m-%d %H:%M}"


def _names(session: Session, model, attr: str = "name") -> dict[int, str]:
    return {row.id: getattr(row, attr) for row in session.exec(select(model))}


def _one_line(text: str, width: int = TEXT_PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@click.group()
def tickets() -> None:
    """Citizen tickets (工单): list, show, answer, reassign, close, notes, retry failed replies."""


@tickets.command("list")
@click.option("--department", default="", help="Department name (default: every department).")
@click.option("--overdue", is_flag=True, help="Only tickets past the deadline they work towards.")
@click.option("--state", "state_filter", default="open", show_default=True,
              type=click.Choice(list(answering.INBOX_STATES)), help="Which tickets.")
@json_option
@pass_state
@handle_errors
def list_cmd(state: CliState, department: str, overdue: bool, state_filter: str, as_json: bool) -> None:
    """Tickets in deadline order, the most overdue first."""
    now = utcnow()
    with state.ctx.session() as session:
        dept_id = service.get_department(session=session, name_or_id=department).id if department else None
        rows = service.list_tickets(session=session, department_id=dept_id, states=answering.INBOX_STATES[state_filter],
                                    overdue=overdue, now=now)
        depts = _names(session, Department)
        messages = {m.id: m for m in session.exec(select(Message).where(Message.id.in_([t.message_id for t in rows])))}
        failed = {r.ticket_id for r in session.exec(select(Reply).where(
            Reply.ticket_id.in_([t.id for t in rows]), Reply.state == "failed"))}
    if as_json:
        echo_json([{"id": t.id, "state": t.state, "priority": t.priority, "intent": t.intent, "topic": t.topic,
                    "department": depts.get(t.department_id), "due": service.ticket_next_due(t),
                    "overdue": service.is_overdue(t, now), "failed_reply": t.id in failed,
                    "text": messages[t.message_id].text} for t in rows])
        return
    if not rows:
        click.echo("no tickets")
        return
    echo_table([(t.id, _due(state, service.ticket_next_due(t)), "OVERDUE" if service.is_overdue(t, now) else "",
                 t.state, t.priority, t.intent, depts.get(t.department_id, "-"),
                 _one_line(messages[t.message_id].text) + (" [failed reply]" if t.id in failed else ""))
                for t in rows],
               ("id", "due (local)", "", "state", "p", "intent", "department", "text"), align=">")


@tickets.command("show")
@click.argument("ticket_id", type=int)
@pass_state
@handle_errors
def show(state: CliState, ticket_id: int) -> None:
    """Everything about a ticket: the message, deadlines, the channel, replies, notes and history."""
    with state.ctx.session() as session:
        d = answering.ticket_detail(session=session, ctx=state.ctx, ticket_id=ticket_id, user=None)
        users = _names(session, User, "username")
        account = session.get(Account, d.message.account_id)
    t, m = d.ticket, d.message
    click.echo(f"ticket #{t.id}  {t.state}{f' ({t.close_reason})' if t.close_reason else ''}  priority {t.priority}  "
               f"{t.intent}{f' / {t.topic}' if t.topic else ''}  department {d.department or '-'}")
    click.echo(f"message #{m.id} on {account.name} ({m.kind}) from {m.sender_name or m.sender_id or '-'} "
               f"at {_when(state, m.received_at)}:")
    click.echo(f"  {m.text}")
    click.echo(f"first response due {_due(state, t.first_response_due)} (given {_when(state, t.first_response_at)}); "
               f"resolution due {_due(state, t.resolution_due)} (answered {_when(state, t.answered_at)})")
    click.echo(f"warned {_when(state, t.warned_at)}; escalated {_when(state, t.escalated_at)}; "
               f"assignee {users.get(t.assignee_id, '-')}")
    ch = d.channel
    if ch.open:
        until = f" until {_when(state, ch.closes_at)}" if ch.closes_at else ""
        click.echo(f"channel {ch.channel}: open{until}")
    else:
        click.echo(f"channel {ch.channel}: CLOSED - {ch.reason}")
        for option in ch.options:
            click.echo(f"  still possible: {option}")
    click.echo("replies:" if d.replies else "replies: none")
    for r in d.replies:
        who = "automatic" if r.automatic else users.get(r.author_id, "-")
        click.echo(f"  #{r.id} {r.state:<8} {r.channel:<14} by {who} at {_when(state, r.sent_at or r.created_at)}: "
                   f"{_one_line(r.text, 60)}")
        if r.state != "sent" and r.last_error:
            click.echo(f"      {r.last_error}")
    click.echo("notes:" if d.notes else "notes: none")
    for n in d.notes:
        click.echo(f"  {_when(state, n.created_at)} {users.get(n.author_id, 'system')}: {n.text}")
    click.echo("history:")
    for e in d.history:
        click.echo(f"  {_when(state, e.at)} {e.actor:<10} {e.action}")


def _report_reply(reply: Reply) -> None:
    if reply.state == "sent":
        click.echo(f"reply #{reply.id} sent via {reply.channel}")
    elif reply.state == "pending":
        click.echo(f"reply #{reply.id} not sent yet ({reply.last_error or 'queued'}); it is retried automatically")
    elif reply.state == "sending":
        click.echo(f"reply #{reply.id} is being sent by a worker; `govbot tickets show {reply.ticket_id}` shows how it ends")
    else:
        fail(text_zh("cli.reply_failed", reply_id=reply.id, error=reply.last_error, ticket_id=reply.ticket_id))


@tickets.command("answer")
@click.argument("ticket_id", type=int)
@as_option
@click.option("--text", default="", help="The answer.")
@click.option("--template", default="", help="Use the department's reply template of this name as the text.")
@pass_state
@handle_errors
def answer_cmd(state: CliState, ticket_id: int, as_user: str, text: str, template: str) -> None:
    """Answer the citizen through the ticket's channel (checked like posts first)."""
    if bool(text) == bool(template):
        fail(text_zh("cli.text_or_template"))
    if template:
        with state.ctx.session() as session:
            ticket = service.get_ticket(session=session, ticket_id=ticket_id)
            tpl = session.exec(select(ReplyTemplate).where(ReplyTemplate.department_id == ticket.department_id,
                                                           ReplyTemplate.name == template)).first()
            if tpl is None:
                fail(text_zh("cli.no_template", name=template))
            text = tpl.text
    _report_reply(answering.answer_and_send(state.ctx, ticket_id=ticket_id, username=as_user, text=text))


@tickets.command("record-offline")
@click.argument("ticket_id", type=int)
@as_option
@click.option("--text", required=True, help="What the citizen was told.")
@click.option("--how", type=click.Choice(answering.OFFLINE_HOW), default="phone", show_default=True,
              help="How the citizen was answered.")
@pass_state
@handle_errors
def record_offline(state: CliState, ticket_id: int, as_user: str, text: str, how: str) -> None:
    """Record an answer given by phone, in person, by letter or on the platform itself."""
    with state.ctx.session() as session:
        reply = answering.record_offline_answer(session=session, ticket_id=ticket_id,
                                                user=get_user(session=session, username=as_user), text=text, how=how)
    click.echo(f"recorded answer #{reply.id} ({how}); ticket #{ticket_id} answered")


@tickets.command("acknowledge")
@click.argument("ticket_id", type=int)
@as_option
@pass_state
@handle_errors
def acknowledge_cmd(state: CliState, ticket_id: int, as_user: str) -> None:
    """签收: take the ticket on."""
    with state.ctx.session() as session:
        service.acknowledge(session=session, ticket_id=ticket_id, user=get_user(session=session, username=as_user))
    click.echo(f"ticket #{ticket_id} acknowledged by {as_user}")


@tickets.command("reassign")
@click.argument("ticket_id", type=int)
@click.option("--to", "department", required=True, help="Department name.")
@click.option("--reason", required=True, help="Why it goes to the other department (转办理由).")
@as_option
@pass_state
@handle_errors
def reassign_cmd(state: CliState, ticket_id: int, department: str, reason: str, as_user: str) -> None:
    """转办: move the ticket to another department."""
    with state.ctx.session() as session:
        service.reassign(session=session, ticket_id=ticket_id, department=department, reason=reason,
                         user=get_user(session=session, username=as_user))
    click.echo(f"ticket #{ticket_id} reassigned to {department}")


@tickets.command("close")
@click.argument("ticket_id", type=int)
@click.option("--reason", required=True, type=click.Choice(list(service.CLOSE_REASONS)), help="Why it is closed.")
@click.option("--note", default="", help="Optional internal note.")
@as_option
@pass_state
@handle_errors
def close_cmd(state: CliState, ticket_id: int, reason: str, note: str, as_user: str) -> None:
    """Close the ticket with a reason."""
    with state.ctx.session() as session:
        service.close(session=session, ticket_id=ticket_id, reason=reason, note=note,
                      user=get_user(session=session, username=as_user))
    click.echo(f"ticket #{ticket_id} closed ({reason})")


@tickets.command("note")
@click.argument("ticket_id", type=int)
@click.argument("text", nargs=-1, required=True)
@as_option
@pass_state
@handle_errors
def note_cmd(state: CliState, ticket_id: int, text: tuple[str, ...], as_user: str) -> None:
    """Add an internal note (never sent to the citizen)."""
    with state.ctx.session() as session:
        note = service.add_note(session=session, ticket_id=ticket_id, text=" ".join(text),
                                user=get_user(session=session, username=as_user))
    click.echo(f"note #{note.id} added to ticket #{ticket_id}")


@tickets.command("retry")
@click.argument("reply_id", type=int)
@as_option
@pass_state
@handle_errors
def retry_cmd(state: CliState, reply_id: int, as_user: str) -> None:
    """Send a failed reply again."""
    _report_reply(answering.retry_and_send(state.ctx, reply_id=reply_id, username=as_user))


@tickets.command("notifications")
@click.option("--state", "state_filter", type=click.Choice(["pending", "sent", "failed"]), default=None,
              help="Only notifications in this state (default: all).")
@json_option
@pass_state
@handle_errors
def notifications_cmd(state: CliState, state_filter: str | None, as_json: bool) -> None:
    """Ticket warnings and escalations, and post notices, sent (or not) by e-mail and 企业微信, newest first."""
    from bot.models import Notification

    with state.ctx.session() as session:
        # Console notices (channel "console") are read in the console, not delivered.
        query = select(Notification).where(Notification.channel != "console").order_by(Notification.id.desc()).limit(200)
        if state_filter:
            query = query.where(Notification.state == state_filter)
        rows = list(session.exec(query))
    if as_json:
        echo_json([{"id": n.id, "created_at": n.created_at, "kind": n.kind, "channel": n.channel, "state": n.state,
                    "ticket_id": n.ticket_id, "post_id": n.post_id, "address": n.address, "last_error": n.last_error} for n in rows])
        return
    echo_table([(n.id, _when(state, n.created_at), n.kind, n.channel, n.state, f"post {n.post_id}" if n.post_id else f"ticket {n.ticket_id}",
                 (n.address or "企业微信群") + (f"  ({n.last_error})" if n.last_error and n.state != "sent" else ""))
                for n in rows], ("id", "created", "kind", "channel", "state", "about", "to"), align=">")


@tickets.command("retry-notifications")
@click.argument("notification_id", type=int, required=False)
@pass_state
@handle_errors
def retry_notifications_cmd(state: CliState, notification_id: int | None) -> None:
    """Queue failed notifications again (one, or all when no id is given)."""
    from bot.outbox.sending import retry_failed

    with state.ctx.session() as session:
        count = retry_failed(session=session, notification_id=notification_id)
    click.echo(f"{count} notification(s) queued again")


@tickets.command("check-deadlines")
@pass_state
@handle_errors
def check_deadlines_cmd(state: CliState) -> None:
    """Run the warning and escalation job once (the worker runs it every tickets.check_interval_s)."""
    result = service.check_deadlines(state.ctx)
    click.echo(f"{len(result.warned)} warned, {len(result.escalated)} escalated")


@tickets.command("send-replies")
@pass_state
@handle_errors
def send_replies_cmd(state: CliState) -> None:
    """Send the responders' replies that are due, once (the worker does this continuously)."""
    click.echo(f"{answering.send_pending_replies(state.ctx)} replies attempted")


# -- reply templates -----------------------------------------------------------------------------


@click.group()
def templates() -> None:
    """Reply templates (答复模板) per department."""


@templates.command("list")
@click.option("--department", required=True, help="Department name or id.")
@json_option
@pass_state
@handle_errors
def templates_list(state: CliState, department: str, as_json: bool) -> None:
    """A department's reply templates."""
    with state.ctx.session() as session:
        dept = service.get_department(session=session, name_or_id=department)
        rows = service.list_templates(session=session, department_id=dept.id)
    if as_json:
        echo_json([{"id": t.id, "name": t.name, "text": t.text} for t in rows])
        return
    if not rows:
        click.echo(f"{dept.name} has no reply templates")
    for t in rows:
        click.echo(f"#{t.id} {t.name}: {_one_line(t.text, 60)}")


@templates.command("add")
@click.option("--department", required=True, help="Department name or id.")
@click.option("--name", required=True, help="Template name (1 to 100 characters).")
@click.option("--text", required=True, help="Template text.")
@as_option
@pass_state
@handle_errors
def templates_add(state: CliState, department: str, name: str, text: str, as_user: str) -> None:
    """Add a reply template to a department."""
    with state.ctx.session() as session:
        dept = service.get_department(session=session, name_or_id=department)
        tpl = service.create_template(session=session, department_id=dept.id, name=name, text=text,
                                      user=get_user(session=session, username=as_user))
    click.echo(f"template #{tpl.id} {name!r} added to {dept.name}")


@templates.command("edit")
@click.argument("template_id", type=int)
@click.option("--name", default=None, help="New name.")
@click.option("--text", default=None, help="New text.")
@as_option
@pass_state
@handle_errors
def templates_edit(state: CliState, template_id: int, name: str | None, text: str | None, as_user: str) -> None:
    """Change a reply template's name or text."""
    with state.ctx.session() as session:
        service.update_template(session=session, template_id=template_id, name=name, text=text,
                                user=get_user(session=session, username=as_user))
    click.echo(f"template #{template_id} saved")


@templates.command("delete")
@click.argument("template_id", type=int)
@as_option
@pass_state
@handle_errors
def templates_delete(state: CliState, template_id: int, as_user: str) -> None:
    """Delete a reply template."""
    with state.ctx.session() as session:
        service.delete_template(session=session, template_id=template_id,
                                user=get_user(session=session, username=as_user))
    click.echo(f"template #{template_id} deleted")
