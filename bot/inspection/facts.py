"""I/O: what the checklist needs to know of each account over a period, read from the database.

The definitions follow the monthly report's (bot/oversight/reports.py): a ticket's first response is its
first answer (or its resolution), tickets closed as needing no answer are left out, spam is left out.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, not_, or_, select
from sqlmodel import Session

from bot.clock import to_local
from bot.config import Config
from bot.inspection.evaluate import AccountFacts, FailedPublication, PostFacts, TicketFacts
from bot.models import Account, Department, Message, Post, Publication, Ticket
from bot.oversight.reports import NO_ANSWER_REASONS, OPEN_STATES
from bot.textcheck import check_sensitive, check_typos, rules_for
from bot.tickets.calendar import WorkCalendar

_TAG = re.compile(r"<[^>]+>")


def _visible(text: str) -> str:
    return html.unescape(_TAG.sub("", text)).replace("\xa0", " ")


def post_problems(post: Post, config: Config) -> tuple[tuple[str, str], ...]:
    """The text checks a published post fails now, as (code, Chinese description)."""
    rules = rules_for(config)
    out = []
    for field, zh, text in (("title", "标题", post.title), ("digest", "摘要", post.digest),
                            ("body", "正文", _visible(post.body)), ("weibo_text", "微博文案", post.weibo_text)):
        if not text:
            continue
        for p in check_typos(field, text, rules):
            out.append((p.code, f"{zh}“{p.snippet}”中有错别字或不规范表述，应为“{p.suggestion}”"))
        for p in check_sensitive(field, text, rules):
            what = "敏感词" if p.code == "sensitive_word" else "疑似敏感信息"
            out.append((p.code, f"{zh}“{p.snippet}”含{what}"))
    return tuple(out)


def account_facts(*, session: Session, config: Config, calendar: WorkCalendar, account_ids: tuple[int, ...],
                  start: datetime, as_of: datetime) -> list[AccountFacts]:
    """The facts of each account over [start, as_of), in account-name order."""
    if not account_ids:
        return []
    tz = config.timezone
    accounts = session.execute(
        select(Account.id, Account.name, Account.platform, Department.name)
        .outerjoin(Department, Department.id == Account.department_id)
        .where(Account.id.in_(account_ids)).order_by(Account.name)
    ).all()

    # Publish times: the last one before the period, and every one inside it.
    times: dict[int, list[datetime]] = {}
    for acc, last in session.execute(
        select(Publication.account_id, func.max(Publication.published_at))
        .where(Publication.account_id.in_(account_ids), Publication.state == "published",
               Publication.published_at < start).group_by(Publication.account_id)
    ):
        times.setdefault(acc, []).append(last)
    posts: dict[int, list[PostFacts]] = {}
    for pub, post in session.execute(
        select(Publication, Post).join(Post, Post.id == Publication.post_id)
        .where(Publication.account_id.in_(account_ids), Publication.state == "published",
               Publication.published_at >= start, Publication.published_at < as_of)
        .order_by(Publication.published_at)
    ):
        times.setdefault(pub.account_id, []).append(pub.published_at)
        posts.setdefault(pub.account_id, []).append(
            PostFacts(post.id, post.title, pub.published_at, post_problems(post, config)))

    failed: dict[int, list[FailedPublication]] = {}
    for pub, title in session.execute(
        select(Publication, Post.title).join(Post, Post.id == Publication.post_id)
        .where(Publication.account_id.in_(account_ids), Publication.state.in_(("failed", "missed")),
               Publication.due_at >= start, Publication.due_at < as_of).order_by(Publication.due_at)
    ):
        failed.setdefault(pub.account_id, []).append(
            FailedPublication(pub.id, pub.post_id, title, pub.due_at, pub.state))

    resolved_at = func.coalesce(Ticket.answered_at, case((Ticket.close_reason == "resolved", Ticket.closed_at)))
    first_at = func.coalesce(Ticket.first_response_at, resolved_at)
    needed = or_(Ticket.close_reason.is_(None), Ticket.close_reason.not_in(NO_ANSWER_REASONS),
                 Ticket.answered_at.is_not(None))
    tickets: dict[int, list[TicketFacts]] = {}
    today = to_local(as_of, tz).date()
    for acc, tid, mid, created, due, done_at, state in session.execute(
        select(Message.account_id, Ticket.id, Ticket.message_id, Ticket.created_at, Ticket.first_response_due,
               first_at, Ticket.state)
        .select_from(Ticket).join(Message, Message.id == Ticket.message_id)
        .where(Message.account_id.in_(account_ids), needed, Ticket.created_at < as_of,
               or_(Ticket.created_at >= start, Ticket.state.in_(OPEN_STATES)))
        .order_by(Ticket.id)
    ):
        done = done_at if done_at is not None and done_at < as_of else None
        is_open = state in OPEN_STATES and done is None
        left = None
        if is_open:
            # Working days after today before the deadline (it ends at local midnight): 0 = due today.
            left = calendar.count_workdays(today + timedelta(days=1), to_local(due, tz).date())
        tickets.setdefault(acc, []).append(TicketFacts(tid, mid, created, due, done, is_open, left))

    counts = {acc: (n, a) for acc, n, a in session.execute(
        select(Message.account_id, func.count(),
               func.sum(case((and_(Message.replied_at.is_not(None), Message.replied_at < as_of), 1), else_=0)))
        .where(Message.account_id.in_(account_ids), Message.received_at >= start, Message.received_at < as_of,
               not_(Message.spam)).group_by(Message.account_id)
    )}

    out = []
    for acc_id, name, platform, dept in accounts:
        received, answered = counts.get(acc_id, (0, 0))
        out.append(AccountFacts(
            account_id=acc_id, name=name, platform=platform, department=dept or "", start=start, as_of=as_of,
            publish_times=tuple(times.get(acc_id, ())), posts=tuple(posts.get(acc_id, ())),
            tickets=tuple(tickets.get(acc_id, ())), received=received, answered=int(answered or 0),
            failed=tuple(failed.get(acc_id, ()))))
    return out
