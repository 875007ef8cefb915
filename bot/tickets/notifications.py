"""Telling people about ticket warnings (提醒) and escalations (督办): e-mail and the WeCom group robot.

`queue_warning` / `queue_escalation` run inside check_deadlines' transaction, beside the audit event:
they write Notification rows (an outbox), one e-mail per person with an address and, when the robot
is configured, one WeCom group message per event naming the people told. With no channel configured
no rows are written; the audit event and the console still show the ticket.

The `notifications.send` job (bot.outbox.sending) claims due rows with a lease (several workers never send one twice at
the same time), sends outside the transaction and records the outcome: sent, or pending again after
a growing pause (5 minutes doubling to an hour, as the digest's channels), or failed with the error
once scheduler.max_attempts attempts have failed. A row is never deleted. A worker that dies between
sending and recording lets the lease lapse and the row is sent again: a person may get a reminder
twice, never none.

Composing the texts (`compose`, `deadline_label`) is pure.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from loguru import logger
from sqlmodel import Session

from bot.clock import to_local
from bot.config import Config
from bot.models import Account, Message, Notification, Ticket, User
from bot.outbox.channels import Text, channels, md_text

KINDS = ("warning", "escalation")
WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
EXCERPT_CHARS = 80
DEADLINE_ZH = {"first_response": "首次答复", "resolution": "办结"}


# -- what it says (pure) -------------------------------------------------------------------------


def deadline_label(due: datetime, tz: str) -> str:
    """A deadline as officers count it. Deadlines are exclusive (00:00 after the last day), so one at
    local midnight reads as its last day: "11月23日（周一）当日内"."""
    local = to_local(due, tz)
    if (local.hour, local.minute, local.second) == (0, 0, 0):
        day = (local - timedelta(days=1)).date()
        return f"{day.month}月{day.day}日（{WEEKDAYS_ZH[day.weekday()]}）当日内"
    return f"{local.month}月{local.day}日（{WEEKDAYS_ZH[local.weekday()]}）{local:%H:%M} 前"


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True)
class TicketFacts:
    """What a notification says about one ticket (local times already formatted)."""

    ticket_id: int
    department: str
    account: str
    received: str  # local, "11月20日 09:00"
    excerpt: str
    deadline: str  # first_response | resolution: the one warned about or missed
    due: str  # deadline_label of it
    resolution_due: str
    link: str


def person(user: User) -> str:
    return f"{user.display_name}（{user.username}）" if user.display_name else user.username


def compose(kind: str, facts: TicketFacts, people: list[str]) -> Text:
    """Pure: the subject, e-mail text and WeCom markdown of a warning or an escalation."""
    f = facts
    what = DEADLINE_ZH[f.deadline]
    if kind == "warning":
        subject = f"【工单即将到期】#{f.ticket_id} {f.department}：{what}期限 {f.due}"
        headline = f"{f.department}的工单 #{f.ticket_id} 即将到期，请尽快签收、答复。"
        title = "工单即将到期"
        told = "提醒"
    else:
        subject = f"【工单已逾期】#{f.ticket_id} {f.department}：已超过{what}期限（{f.due}）"
        headline = (f"{f.department}的工单 #{f.ticket_id} 已超过{what}期限（{f.due}），仍未答复，"
                    "请部门负责人督办。")
        title = "工单已逾期，请督办"
        told = "督办"
    limits = [f"{what}期限：{f.due}"]
    if f.deadline != "resolution":
        limits.append(f"办结期限：{f.resolution_due}")
    if people:
        names = "、".join(people)
    else:
        names = "（本部门未设负责人）" if kind == "escalation" else "（本部门没有答复人员）"
    body = "\n".join([
        headline, "",
        *limits,
        f"来源：{f.account}，{f.received} 收到",
        f"留言：{f.excerpt}", "",
        f"{told}：{names}",
        f"在控制台处理：{f.link}", "",
        "（本邮件由政务新媒体平台自动发送，请勿直接回复。）",
    ])
    markdown = "\n".join([
        f"**{title}** #{f.ticket_id} · {f.department}",
        *[f"> {line}" for line in limits],
        f"> 来源：{md_text(f.account)}，{f.received} 收到",
        f"> 留言：{md_text(f.excerpt)}",
        f"{told}：{md_text(names)}",
        f"[在控制台处理]({f.link})",
    ])
    return Text(subject=subject[:200], body=body, markdown=markdown)


# -- writing the outbox --------------------------------------------------------------------------


@functools.cache
def _say_no_channel(source: str) -> None:
    logger.warning("{}: no delivery channel for ticket warnings and escalations (set delivery.smtp.host or "
                   "delivery.wecom.webhook_url): they are only recorded in the audit log and shown in the console",
                   source)


def console_link(config: Config, ticket_id: int) -> str:
    base = (config.web.public_url or f"http://{config.web.host}:{config.web.port}").rstrip("/")
    return f"{base}/tickets/{ticket_id}"


def _facts(session: Session, config: Config, ticket: Ticket, department: str, deadline: str) -> TicketFacts:
    message = session.get(Message, ticket.message_id)
    account = session.get(Account, message.account_id) if message is not None else None
    due = ticket.first_response_due if deadline == "first_response" else ticket.resolution_due
    received = to_local(ticket.created_at, config.timezone)
    return TicketFacts(
        ticket_id=ticket.id, department=department, account=account.name if account else "",
        received=f"{received.month}月{received.day}日 {received:%H:%M}",
        excerpt=excerpt(message.text if message else "") or "（无文字内容）", deadline=deadline,
        due=deadline_label(due, config.timezone), resolution_due=deadline_label(ticket.resolution_due, config.timezone),
        link=console_link(config, ticket.id))


def queue(*, session: Session, config: Config, kind: str, ticket: Ticket, department: str, deadline: str,
          people: list[User], now: datetime) -> list[Notification]:
    """Write the outbox rows of one warning or escalation (the caller's transaction commits them)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; one of {', '.join(KINDS)}")
    configured = channels(config)
    if not configured:
        _say_no_channel(config.source)
        return []
    text = compose(kind, _facts(session, config, ticket, department, deadline), [person(u) for u in people])
    rows = []
    if "email" in configured:
        without = [u.username for u in people if not (u.email or "").strip()]
        if without:
            logger.info("ticket {}: no e-mail address for {} (users[].email)", ticket.id, ", ".join(without))
        rows += [Notification(ticket_id=ticket.id, kind=kind, channel="email", recipient=u.username,
                              address=u.email.strip(), subject=text.subject, body=text.body, created_at=now,
                              next_attempt_at=now)
                 for u in people if (u.email or "").strip()]
    if "wecom" in configured:
        rows.append(Notification(ticket_id=ticket.id, kind=kind, channel="wecom", subject=text.subject,
                                 body=text.markdown, created_at=now, next_attempt_at=now))
    session.add_all(rows)
    return rows
