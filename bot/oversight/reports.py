"""Inspection figures (检查指标) for an account, a department or an organisation over a period [start, end).

Every figure is computed in SQL with GROUP BY, COUNT and SUM(CASE ...) over indexed ranges; Python only
combines a few numbers per account. Percentiles use window functions (ROW_NUMBER, COUNT OVER) to
fetch just the rows around each rank; response times in working days are grouped by (local day
received, local day answered) so the calendar runs on a few hundred day pairs, not on every message.
The same SQLAlchemy Core expressions run on SQLite and PostgreSQL.

Definitions (the report states them too):

- Figures are as of ``as_of = min(now, end)``: the same month gives the same figures whenever the
  report is made. An answer after ``as_of`` counts as no answer yet.
- Messages are counted on the account that received them; a department's scope is the accounts it
  runs, an organisation's the accounts of its departments. Spam is left out of every rate.
- Reply rate (回复率): messages needing an answer received in the period and answered by as_of, over all
  of them; the overall reply rate does the same over every non-spam message and comment.
- On-time rates (按时答复率, 按时办结率): tickets opened in the period, answered before their deadline
  (Ticket.first_response_due / resolution_due, already in working days). An open ticket past its
  deadline at as_of is late; one whose deadline has not come yet is not counted. Tickets closed as
  spam, duplicate or needing no answer are left out; closing as resolved counts as resolution.
- Response time: from receipt to the first answer (Message.replied_at), for messages needing one.
  Percentiles interpolate linearly between ranks (as numpy's default does).
- Automatic share (自动回复占比): of the non-spam messages answered, those with a sent automatic reply.
- Backlog (积压): tickets of the scope open at as_of, whenever they were opened.
- Longest silence (最长未更新): the longest gap between consecutive posts that overlaps the period,
  counting the gap before the first post of the period and the one still running at as_of.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    Date,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    extract,
    func,
    insert,
    not_,
    or_,
    select,
)
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session

from bot.clock import FIRST_DAY, LAST_DAY, out_of_range, to_local, to_utc, utcnow
from bot.config import Config
from bot.errors import GovbotError, NotFound
from bot.models import Account, Department, Message, Organisation, Publication, Reply, Ticket
from bot.tickets.calendar import WorkCalendar

DAY = 86400.0
COMMENT_KINDS = ("wechat_comment", "weibo_comment")
# Closed for these reasons (and never answered), a ticket needed no answer after all.
NO_ANSWER_REASONS = ("spam", "duplicate", "no_answer_needed")
OPEN_STATES = ("new", "acknowledged")
PLATFORM_ZH = {"wechat": "微信公众号", "weibo": "微博"}
# Percentiles as fractions num/den, so SQL can find the ranks with integer arithmetic.
P50 = (1, 2)
P90 = (9, 10)


class ReportError(GovbotError):
    """A report cannot be made as asked (bad month, empty period ...)."""


def natural_key(name: str) -> tuple:
    """Sort key reading the digits in a name as numbers: 账号2 before 账号10, #9 before #10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


# -- scope and period ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    kind: str  # account | department | organisation | all
    name: str
    account_ids: tuple[int, ...]

    @property
    def title(self) -> str:
        return {"account": "账号", "department": "部门", "organisation": "单位", "all": "全部账号"}[self.kind] + (
            f"：{self.name}" if self.kind != "all" else "")


def resolve_scope(*, session: Session, account: str | None = None, department: str | None = None,
                  organisation: str | None = None) -> Scope:
    """At most one of account, department, organisation (by name); none: every account."""
    given = [(k, v) for k, v in (("account", account), ("department", department),
                                 ("organisation", organisation)) if v]
    if len(given) > 1:
        raise ReportError("report.one_scope")
    if not given:
        ids = session.execute(select(Account.id).order_by(Account.id)).scalars()
        return Scope("all", "全部账号", tuple(ids))
    kind, name = given[0]
    if kind == "account":
        acc_id = session.execute(select(Account.id).where(Account.name == name)).scalar()
        if acc_id is None:
            raise NotFound("account.name_not_found", name=name)
        return Scope(kind, name, (acc_id,))
    if kind == "department":
        dept_id = session.execute(select(Department.id).where(Department.name == name)).scalar()
        if dept_id is None:
            raise NotFound("department.name_not_found", name=name)
        cond = Account.department_id == dept_id
    else:
        org_id = session.execute(select(Organisation.id).where(Organisation.name == name)).scalar()
        if org_id is None:
            raise NotFound("organisation.not_found", name=name)
        cond = Account.department_id.in_(select(Department.id).where(Department.organisation_id == org_id))
    ids = session.execute(select(Account.id).where(cond).order_by(Account.id)).scalars()
    return Scope(kind, name, tuple(ids))


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def month_period(month: str, tz: str) -> tuple[datetime, datetime]:
    """"2026-11" -> [local 1 Nov 00:00, local 1 Dec 00:00) as aware UTC."""
    m = _MONTH.match(month.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ReportError("report.bad_month", month=month)
    year, mon = int(m.group(1)), int(m.group(2))
    first = date(year, mon, 1)
    if out_of_range(first):
        raise ReportError("date.out_of_range", day=first, first=FIRST_DAY, last=LAST_DAY)
    nxt = date(year + mon // 12, mon % 12 + 1, 1)
    return (to_utc(datetime.combine(first, time(0)), tz), to_utc(datetime.combine(nxt, time(0)), tz))


def day_period(start: date, end: date, tz: str) -> tuple[datetime, datetime]:
    """Local days [start, end) as aware UTC."""
    if end <= start:
        raise ReportError("report.empty_period", start=start, end=end)
    for day in (start, end):
        if out_of_range(day):
            raise ReportError("date.out_of_range", day=day, first=FIRST_DAY, last=LAST_DAY)
    return to_utc(datetime.combine(start, time(0)), tz), to_utc(datetime.combine(end, time(0)), tz)


# -- figures -------------------------------------------------------------------------------------


class OnTimeRates:
    """On-time rates (按时答复率, 按时办结率) from the counts of the class that mixes it in."""

    first_on_time: int
    first_late: int
    resolution_on_time: int
    resolution_late: int

    @property
    def first_response_on_time_rate(self) -> float | None:
        return _rate(self.first_on_time, self.first_on_time + self.first_late)

    @property
    def resolution_on_time_rate(self) -> float | None:
        return _rate(self.resolution_on_time, self.resolution_on_time + self.resolution_late)


@dataclass
class Figures(OnTimeRates):
    """The inspection figures of one account, or of a whole scope (`combine`)."""

    posts: int = 0
    last_post_at: datetime | None = None
    days_since_last_post: float | None = None
    longest_silence_days: float | None = None
    messages: int = 0  # private messages (私信/消息)
    comments: int = 0  # comments under posts (留言/评论)
    spam: int = 0
    need_answer: int = 0
    replied: int = 0  # of need_answer, answered by as_of
    answered: int = 0  # every non-spam message answered by as_of
    auto_answered: int = 0
    tickets: int = 0
    first_on_time: int = 0
    first_late: int = 0
    resolution_on_time: int = 0
    resolution_late: int = 0
    backlog: int = 0
    response_seconds_sum: float = 0.0
    response_hours_median: float | None = None
    response_hours_p90: float | None = None
    response_workdays_mean: float | None = None
    response_workdays_median: float | None = None
    response_workdays_p90: float | None = None
    posts_with_stats: int = 0
    reads: int = 0
    likes: int = 0
    shares: int = 0
    post_comments: int = 0
    limit_days: int = 14

    @property
    def received(self) -> int:
        return self.messages + self.comments

    @property
    def reply_rate(self) -> float | None:
        return _rate(self.replied, self.need_answer)

    @property
    def reply_rate_all(self) -> float | None:
        return _rate(self.answered, self.received - self.spam)

    @property
    def response_hours_mean(self) -> float | None:
        return self.response_seconds_sum / 3600 / self.replied if self.replied else None

    @property
    def auto_share(self) -> float | None:
        return _rate(self.auto_answered, self.answered)

    @property
    def reads_per_post(self) -> float | None:
        return self.reads / self.posts_with_stats if self.posts_with_stats else None

    @property
    def interaction_per_post(self) -> float | None:
        """Comments, likes and shares per post that has platform figures (互动量/篇)."""
        if not self.posts_with_stats:
            return None
        return (self.post_comments + self.likes + self.shares) / self.posts_with_stats

    @property
    def over_limit(self) -> bool:
        worst = max(self.longest_silence_days or 0, self.days_since_last_post or 0)
        return worst >= self.limit_days

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.isoformat() if isinstance(v, datetime) else _round(v)
        for name in ("received", "reply_rate", "reply_rate_all", "first_response_on_time_rate",
                     "resolution_on_time_rate", "response_hours_mean", "auto_share", "reads_per_post",
                     "interaction_per_post", "over_limit"):
            out[name] = _round(getattr(self, name))
        out.pop("response_seconds_sum")
        return out


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _round(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


@dataclass
class AccountRow:
    account_id: int
    name: str
    platform: str
    department: str
    figures: Figures


@dataclass
class DepartmentRow(OnTimeRates):
    """Tickets by the department responsible for them (承办部门)."""

    department: str
    tickets: int
    first_on_time: int
    first_late: int
    resolution_on_time: int
    resolution_late: int
    backlog: int



@dataclass
class Report:
    scope: Scope
    start: datetime  # local
    end: datetime  # local, exclusive
    as_of: datetime  # local
    timezone: str
    limit_days: int
    warn_days: int
    rows: list[AccountRow]
    total: Figures
    departments: list[DepartmentRow] = field(default_factory=list)

    @property
    def period_label(self) -> str:
        last = (self.end - timedelta(days=1)).date()
        if self.start.day == 1 and self.end.day == 1 and (self.end - timedelta(days=1)).month == self.start.month:
            return f"{self.start.year} 年 {self.start.month} 月"
        return f"{self.start.date().isoformat()} 至 {last.isoformat()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": {"kind": self.scope.kind, "name": self.scope.name},
            "start": self.start.isoformat(), "end": self.end.isoformat(), "as_of": self.as_of.isoformat(),
            "timezone": self.timezone, "limit_days": self.limit_days,
            "total": self.total.to_dict(),
            "accounts": [{"account_id": r.account_id, "name": r.name, "platform": r.platform,
                          "department": r.department, **r.figures.to_dict()} for r in self.rows],
            "departments": [{"department": d.department, "tickets": d.tickets, "first_on_time": d.first_on_time,
                             "first_late": d.first_late, "resolution_on_time": d.resolution_on_time,
                             "resolution_late": d.resolution_late, "backlog": d.backlog,
                             "first_response_on_time_rate": _round(d.first_response_on_time_rate),
                             "resolution_on_time_rate": _round(d.resolution_on_time_rate)}
                            for d in self.departments],
            "conclusions": conclusions(self),
        }


# -- pure statistics -----------------------------------------------------------------------------


def interpolate(value_at: dict[int, float], n: int, frac: tuple[int, int]) -> float | None:
    """Pure: the percentile num/den of n sorted values, given the values at 1-based ranks lo+1, lo+2."""
    if n == 0:
        return None
    num, den = frac
    lo = (n - 1) * num // den
    weight = (n - 1) * num / den - lo
    a = value_at[lo + 1]
    b = value_at.get(lo + 2, a)
    return a + (b - a) * weight


def weighted_percentile(counts: Counter[int], frac: tuple[int, int]) -> float | None:
    """Pure: `interpolate` over values given as value -> how many times."""
    n = sum(counts.values())
    if n == 0:
        return None
    num, den = frac
    lo = (n - 1) * num // den
    wanted = {lo + 1, lo + 2}
    value_at: dict[int, float] = {}
    seen = 0
    for value in sorted(counts):
        first, seen = seen + 1, seen + counts[value]
        for rank in wanted:
            if first <= rank <= seen:
                value_at[rank] = value
    return interpolate(value_at, n, frac)


# -- SQL pieces ----------------------------------------------------------------------------------


def _seconds(dialect: str, start: Any, end: Any) -> ColumnElement:
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * DAY
    # EXTRACT gives numeric (Decimal in Python); reports work in float seconds.
    return cast(extract("epoch", end - start), Float)


def _local_day(dialect: str, col: Any, tz: str, offset_minutes: int) -> ColumnElement:
    if dialect == "sqlite":
        # SQLite has no time zones: the zone's fixed offset over the period (checked by the caller).
        return func.date(col, f"{offset_minutes:+d} minutes")
    return cast(func.timezone(tz, col), Date)


def _fixed_offset_minutes(tz: str, start: datetime, end: datetime) -> int:
    """The zone's UTC offset if it does not change in [start, end + 60 days] (China has no DST)."""
    zone = ZoneInfo(tz)
    probe, last = start, end + timedelta(days=60)
    offsets = set()
    while probe <= last:
        offsets.add(probe.astimezone(zone).utcoffset())
        probe += timedelta(hours=12)
    if len(offsets) != 1:
        raise ReportError("report.tz_offset", tz=tz)
    return int(offsets.pop().total_seconds() // 60)


def _n(cond: Any) -> ColumnElement:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


@dataclass
class _Q:
    """What every query needs: the dialect, the accounts, the period and as_of (aware UTC)."""

    dialect: str
    ids: tuple[int, ...]
    start: datetime
    as_of: datetime
    tz: str
    offset: int


def _publication_figures(session: Session, q: _Q) -> dict[int, dict[str, Any]]:
    # The state test sits in CASE rather than WHERE throughout: SQLite without statistics would pick the
    # (state, next_attempt_at) index for it and read every published post instead of each account's range.
    pub = Publication.state == "published"
    when = case((pub, Publication.published_at))
    mine = Publication.account_id.in_(q.ids)
    in_period = [mine, Publication.published_at >= q.start, Publication.published_at < q.as_of]
    has_stats = or_(Publication.reads.is_not(None), Publication.likes.is_not(None),
                    Publication.shares.is_not(None), Publication.comments.is_not(None))

    def total(col: Any) -> Any:
        return func.coalesce(func.sum(case((pub, col), else_=0)), 0)

    out: dict[int, dict[str, Any]] = {}
    first_in: dict[int, datetime] = {}
    for acc, posts, with_stats, reads, likes, shares, comments, first, last in session.execute(
        select(Publication.account_id, _n(pub), _n(and_(pub, has_stats)), total(Publication.reads),
               total(Publication.likes), total(Publication.shares), total(Publication.comments),
               func.min(when), func.max(when))
        .where(*in_period).group_by(Publication.account_id)
    ):
        out[acc] = {"posts": posts, "posts_with_stats": with_stats, "reads": reads, "likes": likes,
                    "shares": shares, "post_comments": comments, "last_post_at": last}
        if first is not None:
            first_in[acc] = first
    before = dict(session.execute(
        select(Publication.account_id, func.max(when))
        .where(mine, Publication.published_at < q.start).group_by(Publication.account_id)).all())
    # The longest gap between consecutive posts inside the period (LAG over each account's posts).
    posts = select(Publication.account_id.label("a"), when.label("at")).where(*in_period).subquery()
    lagged = select(posts.c.a, posts.c.at,
                    func.lag(posts.c.at).over(partition_by=posts.c.a, order_by=posts.c.at).label("prev")
                    ).where(posts.c.at.is_not(None)).subquery()
    gaps = dict(session.execute(
        select(lagged.c.a, func.max(_seconds(q.dialect, lagged.c.prev, lagged.c.at)))
        .where(lagged.c.prev.is_not(None)).group_by(lagged.c.a)).all())
    for acc in q.ids:
        rec = out.setdefault(acc, {"posts": 0})
        prior = before.get(acc)
        last_at = rec.get("last_post_at") or prior
        rec["last_post_at"] = last_at
        rec["days_since_last_post"] = (q.as_of - last_at).total_seconds() / DAY if last_at else None
        # The gap running into the period, from the last post before it (or, with none, from its start).
        lead_from = prior or q.start
        candidates = [gaps.get(acc) or 0.0, ((first_in.get(acc) or q.as_of) - lead_from).total_seconds()]
        if last_at:
            candidates.append((q.as_of - last_at).total_seconds())
        rec["longest_silence_days"] = max(candidates) / DAY
    return out


def _message_figures(session: Session, q: _Q) -> dict[int, dict[str, Any]]:
    answered = and_(Message.replied_at.is_not(None), Message.replied_at < q.as_of)
    not_spam = not_(Message.spam)
    secs = _seconds(q.dialect, Message.received_at, Message.replied_at)
    rows = session.execute(
        select(Message.account_id, _n(Message.kind == "wechat_message"), _n(Message.kind.in_(COMMENT_KINDS)),
               _n(Message.spam), _n(and_(Message.needs_answer, not_spam)),
               _n(and_(Message.needs_answer, not_spam, answered)), _n(and_(not_spam, answered)),
               func.coalesce(func.sum(case((and_(Message.needs_answer, not_spam, answered), secs))), 0.0))
        .where(*_message_range(q)).group_by(Message.account_id)
    ).all()
    names = ("messages", "comments", "spam", "need_answer", "replied", "answered", "response_seconds_sum")
    out = {r[0]: dict(zip(names, r[1:], strict=True)) for r in rows}
    # Messages with a sent automatic reply, found from the reply side (the IN list of the period's answered
    # messages drives the message_id index; the other tests sit in CASE so no other index looks better).
    in_period = select(Message.id).where(*_message_range(q), not_spam, answered)
    auto = and_(Reply.automatic, Reply.state == "sent", Reply.sent_at < q.as_of)
    for acc, n in session.execute(
        select(Reply.account_id, func.count(func.distinct(case((auto, Reply.message_id)))))
        .where(Reply.message_id.in_(in_period)).group_by(Reply.account_id)
    ):
        out.setdefault(acc, {})["auto_answered"] = n
    return out


def _message_range(q: _Q) -> list[Any]:
    return [Message.account_id.in_(q.ids), Message.received_at >= q.start, Message.received_at < q.as_of]


def _response_table(session: Session, q: _Q) -> Table:
    """A temporary table of the period's answered messages needing an answer: account, response seconds,
    local day received and answered. Timestamps are parsed once here instead of in every query below."""
    table = Table(f"report_responses_{uuid.uuid4().hex[:12]}", MetaData(),
                  Column("k", Integer), Column("s", Float), Column("d1", String(10)), Column("d2", String(10)),
                  prefixes=["TEMPORARY"])
    conn = session.connection()
    table.create(conn)
    source = select(Message.account_id, _seconds(q.dialect, Message.received_at, Message.replied_at),
                    cast(_local_day(q.dialect, Message.received_at, q.tz, q.offset), String(10)),
                    cast(_local_day(q.dialect, Message.replied_at, q.tz, q.offset), String(10))).where(
        *_message_range(q), Message.needs_answer, not_(Message.spam), Message.replied_at.is_not(None),
        Message.replied_at < q.as_of)
    conn.execute(insert(table).from_select(["k", "s", "d1", "d2"], source))
    return table


def _response_percentiles(session: Session, t: Table, per_account: bool) -> dict[Any, tuple[float | None, float | None]]:
    """Median and 90th percentile of the response time in hours, per account (or None: the whole scope)."""
    part = t.c.k if per_account else None
    ranked = select(t.c.k, t.c.s, func.row_number().over(partition_by=part, order_by=t.c.s).label("rn"),
                    func.count().over(partition_by=part).label("n")).subquery()
    wanted = []
    for num, den in (P50, P90):
        lo = (ranked.c.n - 1) * num // den
        wanted += [ranked.c.rn == lo + 1, ranked.c.rn == lo + 2]
    values: dict[Any, dict[int, float]] = {}
    sizes: dict[Any, int] = {}
    for k, s, rn, n in session.execute(select(ranked.c.k, ranked.c.s, ranked.c.rn, ranked.c.n).where(or_(*wanted))):
        group = k if per_account else None
        values.setdefault(group, {})[rn] = float(s) / 3600
        sizes[group] = n
    return {g: (interpolate(values[g], sizes[g], P50), interpolate(values[g], sizes[g], P90)) for g in values}


def _workday_counts(session: Session, t: Table, tz: str, calendar: WorkCalendar) -> dict[int, Counter[int]]:
    """Per account: response time in working days -> number of messages (via local day pairs)."""
    zone = ZoneInfo(tz)
    out: dict[int, Counter[int]] = {}
    for k, d1, d2, n in session.execute(select(t.c.k, t.c.d1, t.c.d2, func.count()).group_by(t.c.k, t.c.d1, t.c.d2)):
        a = datetime.combine(date.fromisoformat(d1), time(12), tzinfo=zone)
        b = datetime.combine(date.fromisoformat(d2), time(12), tzinfo=zone)
        out.setdefault(k, Counter())[calendar.working_days_between(a, b)] += n
    return out


_TICKET_NAMES = ("tickets", "first_on_time", "first_late", "resolution_on_time", "resolution_late", "backlog")


def _ticket_figures(session: Session, q: _Q) -> dict[tuple[int, int | None], dict[str, int]]:
    """Per (account, responsible department): on-time counts of the period's tickets and the backlog."""
    resolved_at = func.coalesce(Ticket.answered_at,
                                case((Ticket.close_reason == "resolved", Ticket.closed_at)))
    first_at = func.coalesce(Ticket.first_response_at, resolved_at)

    def on_time(done_at: Any, due: Any) -> tuple[Any, Any]:
        done = and_(done_at.is_not(None), done_at < q.as_of)
        return _n(and_(done, done_at < due)), _n(or_(and_(done, done_at >= due), and_(not_(done), due <= q.as_of)))

    # Spelled out without NOT: close_reason is NULL on most tickets, and NOT (NULL ...) is not true.
    needed = or_(Ticket.close_reason.is_(None), Ticket.close_reason.not_in(NO_ANSWER_REASONS),
                 Ticket.answered_at.is_not(None))
    key = (Message.account_id, Ticket.department_id)
    out: dict[tuple[int, int | None], dict[str, int]] = {}
    mine = set(q.ids)
    # The period's tickets of every account, kept for the scope's accounts below: with the account test in
    # WHERE, SQLite would walk the message index of those accounts over all time instead of the period.
    for row in session.execute(
        select(*key, func.count(), *on_time(first_at, Ticket.first_response_due),
               *on_time(resolved_at, Ticket.resolution_due))
        .select_from(Ticket).join(Message, Message.id == Ticket.message_id)
        .where(Ticket.created_at >= q.start, Ticket.created_at < q.as_of, needed)
        .group_by(*key)
    ):
        if row[0] in mine:
            out[(row[0], row[1])] = dict(zip(_TICKET_NAMES, (*row[2:], 0), strict=True))
    # Backlog: tickets open at as_of, whenever opened, in three disjoint parts. In each, WHERE holds only
    # the one selective, indexed term (open now; answered after as_of; closed unanswered after as_of) and
    # the rest is counted in CASE, so the planner cannot prefer a scan of every ticket.
    opened = and_(Ticket.created_at < q.as_of, Message.account_id.in_(q.ids))
    parts = (
        (Ticket.state.in_(OPEN_STATES), opened),
        (Ticket.answered_at >= q.as_of, and_(opened, or_(Ticket.closed_at.is_(None), Ticket.closed_at >= q.as_of))),
        (Ticket.closed_at >= q.as_of, and_(opened, Ticket.answered_at.is_(None))),
    )
    for selective, rest in parts:
        for acc, dept, n in session.execute(
            select(*key, _n(rest)).select_from(Ticket).join(Message, Message.id == Ticket.message_id)
            .where(selective).group_by(*key)
        ):
            if n:
                rec = out.setdefault((acc, dept), dict.fromkeys(_TICKET_NAMES, 0))
                rec["backlog"] += n
    return out


def _sum_by(figures: dict[tuple[int, int | None], dict[str, int]], index: int) -> dict[Any, dict[str, int]]:
    out: dict[Any, dict[str, int]] = {}
    for key, rec in figures.items():
        acc = out.setdefault(key[index], dict.fromkeys(_TICKET_NAMES, 0))
        for name, v in rec.items():
            acc[name] += v
    return out


# -- the report ----------------------------------------------------------------------------------


def compute_report(
    *,
    session: Session,
    config: Config,
    calendar: WorkCalendar,
    scope: Scope,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> Report:
    """Every figure for the scope's accounts over [start, end) (aware datetimes), per account and in total."""
    now = now or utcnow()
    if end <= start:
        raise ReportError("report.end_before_start")
    if now <= start:
        raise ReportError("report.not_begun", start=f"{to_local(start, config.timezone):%Y-%m-%d}")
    as_of = min(now, end)
    dialect = session.get_bind().dialect.name
    offset = _fixed_offset_minutes(config.timezone, start, as_of) if dialect == "sqlite" else 0
    q = _Q(dialect, scope.account_ids, start, as_of, config.timezone, offset)
    limit = config.gap.limit_days
    accounts = session.execute(
        select(Account.id, Account.name, Account.platform, Department.name)
        .outerjoin(Department, Department.id == Account.department_id)
        .where(Account.id.in_(q.ids))
    ).all()
    accounts = sorted(accounts, key=lambda a: natural_key(a[1]))

    pubs: dict[int, dict[str, Any]] = {}
    msgs: dict[int, dict[str, Any]] = {}
    tickets: dict[tuple[int, int | None], dict[str, int]] = {}
    pcts: dict[Any, tuple[float | None, float | None]] = {}
    total_pcts: tuple[float | None, float | None] = (None, None)
    wdays: dict[int, Counter[int]] = {}
    if q.ids:
        pubs = _publication_figures(session, q)
        msgs = _message_figures(session, q)
        tickets = _ticket_figures(session, q)
        responses = _response_table(session, q)
        try:
            pcts = _response_percentiles(session, responses, per_account=True)
            total_pcts = _response_percentiles(session, responses, per_account=False).get(None, (None, None))
            wdays = _workday_counts(session, responses, q.tz, calendar)
        finally:
            responses.drop(session.connection())
    by_account = _sum_by(tickets, 0)

    rows = []
    for acc_id, name, platform, dept in accounts:
        f = Figures(limit_days=limit)
        for part in (pubs.get(acc_id, {}), msgs.get(acc_id, {}), by_account.get(acc_id, {})):
            for k, v in part.items():
                setattr(f, k, v)
        f.response_hours_median, f.response_hours_p90 = pcts.get(acc_id, (None, None))
        _set_workdays(f, wdays.get(acc_id, Counter()))
        rows.append(AccountRow(acc_id, name, platform, dept or "", f))

    total = combine([r.figures for r in rows], limit_days=limit)
    total.response_hours_median, total.response_hours_p90 = total_pcts
    merged: Counter[int] = Counter()
    for c in wdays.values():
        merged.update(c)
    _set_workdays(total, merged)

    departments = []
    if scope.kind != "account":
        names = dict(session.execute(select(Department.id, Department.name)).all())
        for dept_id, d in sorted(_sum_by(tickets, 1).items(), key=lambda kv: names.get(kv[0], "")):
            departments.append(DepartmentRow(names.get(dept_id, "未分派部门") if dept_id else "未分派部门",
                                             d["tickets"], d["first_on_time"], d["first_late"],
                                             d["resolution_on_time"], d["resolution_late"], d["backlog"]))
    tz = config.timezone
    return Report(scope=scope, start=to_local(start, tz), end=to_local(end, tz), as_of=to_local(as_of, tz),
                  timezone=tz, limit_days=limit, warn_days=config.gap.warn_days, rows=rows, total=total,
                  departments=departments)


def _set_workdays(f: Figures, counts: Counter[int]) -> None:
    n = sum(counts.values())
    f.response_workdays_mean = sum(v * c for v, c in counts.items()) / n if n else None
    f.response_workdays_median = weighted_percentile(counts, P50)
    f.response_workdays_p90 = weighted_percentile(counts, P90)


_ADDITIVE = ("posts", "messages", "comments", "spam", "need_answer", "replied", "answered", "auto_answered",
             "tickets", "first_on_time", "first_late", "resolution_on_time", "resolution_late", "backlog",
             "response_seconds_sum", "posts_with_stats", "reads", "likes", "shares", "post_comments")


def combine(parts: list[Figures], *, limit_days: int) -> Figures:
    """Pure: the scope's figures from its accounts' (counts add up; for silence the worst account counts).

    Percentiles do not add up: the caller sets them from the scope's own query."""
    total = Figures(limit_days=limit_days)
    for name in _ADDITIVE:
        setattr(total, name, sum(getattr(p, name) for p in parts))
    silent = [p for p in parts if p.days_since_last_post is not None]
    if silent:
        worst = max(silent, key=lambda p: p.days_since_last_post)
        total.days_since_last_post = worst.days_since_last_post
        total.last_post_at = worst.last_post_at
    longest = [p.longest_silence_days for p in parts if p.longest_silence_days is not None]
    total.longest_silence_days = max(longest) if longest else None
    return total


# -- conclusions, CSV ----------------------------------------------------------------------------


def pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def num(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def conclusions(report: Report) -> list[str]:
    """Pure: the 检查结论 lines, worst news first."""
    t, limit = report.total, report.limit_days
    out = []
    silent = [r for r in report.rows if r.figures.over_limit]
    near = [r for r in report.rows if not r.figures.over_limit
            and max(r.figures.longest_silence_days or 0, r.figures.days_since_last_post or 0) >= report.warn_days]
    if silent:
        names = "、".join(f"{r.name}（最长 {r.figures.longest_silence_days:.0f} 天）" for r in silent)
        out.append(f"不合格（单项否决）：{len(silent)} 个账号超过 {limit} 天未更新：{names}。")
    else:
        out.append(f"更新：{len(report.rows)} 个账号均未出现超过 {limit} 天未更新。")
    if near:
        out.append(f"临近：{'、'.join(r.name for r in near)} 间隔达到 {report.warn_days} 天以上，需及时更新。")
    if t.need_answer:
        out.append(f"答复：需答复留言 {t.need_answer} 条，已答复 {t.replied} 条，回复率 {pct(t.reply_rate)}；"
                   f"按时答复率 {pct(t.first_response_on_time_rate)}，按时办结率 {pct(t.resolution_on_time_rate)}。")
    else:
        out.append("答复：本期没有需要答复的留言。")
    late = t.first_late + t.resolution_late
    if late:
        out.append(f"超期：首次答复超期 {t.first_late} 件，办结超期 {t.resolution_late} 件。")
    out.append(f"积压：截至 {report.as_of:%Y-%m-%d %H:%M} 未办结 {t.backlog} 件。" if t.backlog else "积压：无。")
    return out


CSV_HEADER = ("账号名称", "平台", "所属部门", "本月发布数", "最近更新日期", "距今天数", "最长未更新天数", "是否超过14天",
              "留言/评论数", "需答复数", "回复数", "回复率", "总体回复率", "按时回复率", "按时办结率",
              "平均响应时长(小时)", "中位响应时长(小时)", "90%响应时长(小时)", "中位响应(工作日)", "90%响应(工作日)",
              "自动回复占比", "积压", "阅读/篇", "互动/篇")


def csv_rows(report: Report) -> list[list[str]]:
    def line(name: str, platform: str, dept: str, f: Figures) -> list[str]:
        last = to_local(f.last_post_at, report.timezone).strftime("%Y-%m-%d") if f.last_post_at else "从未发布"
        return [name, platform, dept, str(f.posts), last, num(f.days_since_last_post), num(f.longest_silence_days),
                "是" if f.over_limit else "否", str(f.received), str(f.need_answer), str(f.replied),
                pct(f.reply_rate), pct(f.reply_rate_all), pct(f.first_response_on_time_rate),
                pct(f.resolution_on_time_rate), num(f.response_hours_mean), num(f.response_hours_median),
                num(f.response_hours_p90), num(f.response_workdays_median), num(f.response_workdays_p90),
                pct(f.auto_share), str(f.backlog), num(f.reads_per_post), num(f.interaction_per_post)]

    out = [line(r.name, PLATFORM_ZH.get(r.platform, r.platform), r.department, r.figures) for r in report.rows]
    out.append(line("合计", "", report.scope.title, report.total))
    return out


def to_csv(report: Report) -> str:
    """The inspection table as CSV text (write it as utf-8-sig so that Excel reads the Chinese)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    w.writerows(csv_rows(report))
    w.writerow([])
    w.writerow(["检查结论"])
    for line in conclusions(report):
        w.writerow([line])
    return buf.getvalue()
