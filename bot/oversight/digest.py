"""The daily digest of unanswered citizen messages (每日未答复留言清单), per organisation and local day.

Per responsible department: overdue tickets first (most overdue first), then those due today and on
the next working day, then a count of the rest; then the organisation's accounts near or over the
silence limit (更新间隔, publishing/gap.py) and the publications that failed. `collect_digest` reads
the database with grouped queries (it lists at most `limit` tickets per department, the counts are
complete), `render_markdown`/`render_html` are pure, and `produce_digest` stores the day's DigestRun
and delivers it to each configured channel that has not had it yet.

Several worker processes run `digest_job`. A lease (a KeyValue row) lets one of them at a time write
and deliver one organisation's digest, and the unique (organisation, day) DigestRun row records per
channel whether it was sent, so a channel gets the digest once a day and a failed one is retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from loguru import logger
from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.clock import FIRST_DAY, LAST_DAY, out_of_range, to_local, to_utc, utcnow
from bot.config import Config, OrganisationConfig
from bot.context import Context
from bot.errors import GovbotError, NotFound
from bot.models import (
    Account,
    Department,
    DigestRun,
    KeyValue,
    Message,
    Organisation,
    Post,
    Publication,
    Rectification,
    Ticket,
)
from bot.outbox.channels import md_text
from bot.publishing.gap import AccountGap, account_gaps
from bot.resources import package_dir
from bot.tickets.calendar import WorkCalendar

OPEN_STATES = ("new", "acknowledged")
# Tickets listed by name per department; the counts always cover every ticket.
LIST_LIMIT = 30
# Failed publications older than this are no news any more.
FAILED_LOOKBACK = timedelta(days=7)
EXCERPT_CHARS = 40
WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
INTENT_ZH = {"complaint": "投诉", "question": "咨询", "suggestion": "建议", "praise": "表扬", "other": "其他"}
PLATFORM_ZH = {"wechat": "微信公众号", "weibo": "微博"}
UNASSIGNED = "未分派部门"
TEMPLATES = package_dir("oversight", "templates")


class DigestError(GovbotError):
    """A digest cannot be made as asked (a day in the future, ...)."""


# -- whose digest --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgScope:
    """One organisation as the digest sees it: its departments and where the digest goes."""

    name: str
    organisation_id: int | None
    department_ids: tuple[int, ...]
    # Departments with no organisation and tickets with no department go to the first organisation,
    # so that nothing unanswered is left out of every digest.
    include_unassigned: bool
    digest_time: time = time(8, 30)
    channels: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()


def organisation_scopes(*, session: Session, config: Config, name: str | None = None) -> list[OrgScope]:
    """The configured organisations (or only `name`); with none configured, one scope over everything."""
    if not config.organisations:
        if name is not None:
            raise NotFound("organisation.none_configured", name=name, source=config.source)
        ids = tuple(session.execute(select(Department.id).order_by(Department.id)).scalars())
        return [OrgScope(name="全部部门", organisation_id=None, department_ids=ids, include_unassigned=True)]
    wanted = [o for o in config.organisations if name is None or o.name == name]
    if not wanted:
        known = ", ".join(o.name for o in config.organisations)
        raise NotFound("organisation.not_configured", name=name, source=config.source, known=known)
    first = config.organisations[0].name
    return [_scope(session, oc, first=oc.name == first) for oc in wanted]


def _scope(session: Session, oc: OrganisationConfig, *, first: bool) -> OrgScope:
    org_id = session.execute(select(Organisation.id).where(Organisation.name == oc.name)).scalar()
    if org_id is None:
        raise NotFound("organisation.not_in_db", name=oc.name)
    cond = Department.organisation_id == org_id
    if first:
        cond = or_(cond, Department.organisation_id.is_(None))
    ids = tuple(session.execute(select(Department.id).where(cond).order_by(Department.id)).scalars())
    return OrgScope(name=oc.name, organisation_id=org_id, department_ids=ids, include_unassigned=first,
                    digest_time=oc.digest_time, channels=tuple(oc.digest_channels), recipients=tuple(oc.digest_to))


# -- what it says --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestTicket:
    ticket_id: int
    department: str
    account: str
    intent: str
    topic: str | None
    state: str
    received_at: datetime  # local
    due: datetime  # local, exclusive (00:00 after the last day)
    deadline: str  # first_response | resolution
    excerpt: str
    bucket: str  # overdue | today | next
    overdue_workdays: int = 0
    overdue_hours: float = 0.0

    @property
    def deadline_zh(self) -> str:
        return "首次答复" if self.deadline == "first_response" else "办结"

    @property
    def intent_zh(self) -> str:
        return INTENT_ZH.get(self.intent, self.intent)


@dataclass
class DepartmentDigest:
    department_id: int | None
    name: str
    overdue: list[DigestTicket] = field(default_factory=list)
    due_today: list[DigestTicket] = field(default_factory=list)
    due_next: list[DigestTicket] = field(default_factory=list)
    overdue_count: int = 0
    due_today_count: int = 0
    due_next_count: int = 0
    later_count: int = 0

    @property
    def total(self) -> int:
        return self.overdue_count + self.due_today_count + self.due_next_count + self.later_count

    @property
    def unlisted(self) -> int:
        return self.overdue_count + self.due_today_count + self.due_next_count - (
            len(self.overdue) + len(self.due_today) + len(self.due_next))


@dataclass(frozen=True)
class FailedPublication:
    publication_id: int
    account: str
    platform: str
    title: str
    state: str  # failed | missed
    due_at: datetime  # local
    error: str


@dataclass
class Digest:
    organisation: str
    day: date
    as_of: datetime  # local time the figures are for
    next_workday: date
    departments: list[DepartmentDigest]
    accounts: list[AccountGap]  # level warn or limit only
    failed_publications: list[FailedPublication]
    failed_older: int  # failed publications due before the lookback window
    limit_days: int
    warn_days: int
    # 迎检: problems the checklist found on the scope's accounts that are not rectified yet (account, problem, found).
    rectifications: list[tuple[str, str, date]] = field(default_factory=list)

    @property
    def overdue(self) -> int:
        return sum(d.overdue_count for d in self.departments)

    @property
    def due_today(self) -> int:
        return sum(d.due_today_count for d in self.departments)

    @property
    def due_next(self) -> int:
        return sum(d.due_next_count for d in self.departments)

    @property
    def later(self) -> int:
        return sum(d.later_count for d in self.departments)

    @property
    def unanswered(self) -> int:
        return sum(d.total for d in self.departments)

    @property
    def next_label(self) -> str:
        return day_label(self.next_workday, self.day)

    def to_dict(self) -> dict[str, Any]:
        """The digest as JSON-ready data (API)."""

        def ticket(t: DigestTicket) -> dict[str, Any]:
            return {"ticket_id": t.ticket_id, "account": t.account, "intent": t.intent, "topic": t.topic,
                    "state": t.state, "received_at": t.received_at.isoformat(), "due": t.due.isoformat(),
                    "deadline": t.deadline, "excerpt": t.excerpt, "overdue_workdays": t.overdue_workdays,
                    "overdue_hours": round(t.overdue_hours, 1), "overdue_label": overdue_label(t)}

        return {
            "organisation": self.organisation, "day": self.day.isoformat(), "as_of": self.as_of.isoformat(),
            "next_workday": self.next_workday.isoformat(),
            "totals": {"unanswered": self.unanswered, "overdue": self.overdue, "due_today": self.due_today,
                       "due_next_workday": self.due_next, "later": self.later},
            "departments": [
                {"department_id": d.department_id, "name": d.name, "total": d.total,
                 "overdue_count": d.overdue_count, "due_today_count": d.due_today_count,
                 "due_next_workday_count": d.due_next_count, "later_count": d.later_count,
                 "overdue": [ticket(t) for t in d.overdue], "due_today": [ticket(t) for t in d.due_today],
                 "due_next_workday": [ticket(t) for t in d.due_next]}
                for d in self.departments
            ],
            "accounts": [
                {"account_id": g.account_id, "name": g.account_name, "platform": g.platform, "level": g.level,
                 "days_since_last": None if g.days_since_last is None else round(g.days_since_last, 1),
                 "last_published_at": g.last_published_at.isoformat() if g.last_published_at else None,
                 "message": g.message}
                for g in self.accounts
            ],
            "failed_publications": [
                {"publication_id": p.publication_id, "account": p.account, "platform": p.platform,
                 "title": p.title, "state": p.state, "due_at": p.due_at.isoformat(), "error": p.error}
                for p in self.failed_publications
            ],
            "rectifications": [{"account": a, "problem": prob, "found_on": found.isoformat()}
                               for a, prob, found in self.rectifications],
            "failed_publications_older": self.failed_older,
        }


def day_label(d: date, today: date) -> str:
    if d == today + timedelta(days=1):
        return f"明天（{d.month}月{d.day}日 {WEEKDAYS_ZH[d.weekday()]}）"
    return f"{d.month}月{d.day}日（{WEEKDAYS_ZH[d.weekday()]}）"


def overdue_label(t: DigestTicket) -> str:
    if t.bucket != "overdue":
        return ""
    if t.overdue_workdays >= 1:
        return f"逾期 {t.overdue_workdays} 个工作日"
    if t.overdue_hours < 1:
        return "逾期不足 1 小时"
    return f"逾期 {t.overdue_hours:.0f} 小时"


def overdue_by(due: datetime, as_of: datetime, calendar: WorkCalendar) -> tuple[int, float]:
    """Pure: (whole working days, hours) a deadline is past at `as_of`; both local aware times.

    `due` is exclusive (00:00 after the last day), so its date is the first day late: a deadline that
    ended on Monday is 1 working day late once Tuesday has passed, and only hours late during Tuesday.
    """
    hours = max(0.0, (as_of - due).total_seconds() / 3600)
    return calendar.count_workdays(due.date(), as_of.date()), hours


def collect_digest(
    *,
    session: Session,
    config: Config,
    calendar: WorkCalendar,
    scope: OrgScope,
    day: date,
    now: datetime | None = None,
    limit: int = LIST_LIMIT,
) -> Digest:
    """The digest of `scope` for the local day `day`.

    For today the figures are those of now. For an earlier day they are rebuilt from the tickets'
    timestamps as of that day's digest time (answered_at, closed_at), so a re-run shows what was open then.
    """
    tz = ZoneInfo(config.timezone)
    now = now or utcnow()
    today = to_local(now, config.timezone).date()
    if day > today:
        raise DigestError("digest.future_day", day=day, today=today, tz=config.timezone)
    if out_of_range(day):
        raise DigestError("date.out_of_range", day=day, first=FIRST_DAY, last=LAST_DAY)
    historic = day < today
    as_of = to_utc(datetime.combine(day, scope.digest_time), config.timezone) if historic else now
    next_wd = calendar.next_workday(day)
    end_today = to_utc(datetime.combine(day + timedelta(days=1), time(0)), config.timezone)
    end_next = to_utc(datetime.combine(next_wd + timedelta(days=1), time(0)), config.timezone)

    first_pending = or_(Ticket.first_response_at.is_(None), Ticket.first_response_at > as_of)
    due = case((first_pending, Ticket.first_response_due), else_=Ticket.resolution_due)
    if historic:
        conditions = [Ticket.created_at <= as_of, or_(Ticket.answered_at.is_(None), Ticket.answered_at > as_of),
                      or_(Ticket.closed_at.is_(None), Ticket.closed_at > as_of)]
    else:
        conditions = [Ticket.state.in_(OPEN_STATES)]
    # One query per department condition: "IN (...)" and "IS NULL" each seek the (department_id, state)
    # index, where "IN (...) OR IS NULL" would scan all of it.
    departments_in = [Ticket.department_id.in_(scope.department_ids)]
    if scope.include_unassigned:
        departments_in.append(Ticket.department_id.is_(None))

    def n(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    names = dict(session.execute(select(Department.id, Department.name)).all())
    departments: dict[int | None, DepartmentDigest] = {}
    rows = []
    for dept_cond in departments_in:
        for dept_id, o, t, x, later in session.execute(
            select(Ticket.department_id, n(due <= as_of), n(and_(due > as_of, due <= end_today)),
                   n(and_(due > end_today, due <= end_next)), n(due > end_next))
            .where(*conditions, dept_cond).group_by(Ticket.department_id)
        ):
            departments[dept_id] = DepartmentDigest(
                dept_id, names.get(dept_id, UNASSIGNED) if dept_id else UNASSIGNED,
                overdue_count=o, due_today_count=t, due_next_count=x, later_count=later)
        ranked = (
            select(Ticket.id.label("ticket_id"), Ticket.department_id.label("department_id"),
                   due.label("due"), first_pending.label("first_pending"),
                   func.row_number().over(partition_by=Ticket.department_id, order_by=(due, Ticket.id)).label("rn"))
            .where(*conditions, dept_cond, due <= end_next)
            .subquery()
        )
        rows += session.execute(
            select(ranked.c.ticket_id, ranked.c.department_id, ranked.c.due, ranked.c.first_pending,
                   Ticket.intent, Ticket.topic, Ticket.state, Ticket.created_at,
                   func.substr(Message.text, 1, EXCERPT_CHARS + 1), Account.name)
            .join(Ticket, Ticket.id == ranked.c.ticket_id)
            .join(Message, Message.id == Ticket.message_id)
            .join(Account, Account.id == Message.account_id)
            .where(ranked.c.rn <= limit)
            .order_by(ranked.c.department_id, ranked.c.rn)
        ).all()
    as_of_local = to_local(as_of, config.timezone)
    for ticket_id, dept_id, due_at, pending, intent, topic, state, created, text, account in rows:
        due_local = due_at.astimezone(tz)
        bucket = "overdue" if due_at <= as_of else "today" if due_at <= end_today else "next"
        workdays, hours = overdue_by(due_local, as_of_local, calendar) if bucket == "overdue" else (0, 0.0)
        dd = departments[dept_id]
        item = DigestTicket(
            ticket_id=ticket_id, department=dd.name, account=account, intent=intent, topic=topic, state=state,
            received_at=created.astimezone(tz), due=due_local,
            deadline="first_response" if pending else "resolution", excerpt=_excerpt(text or ""),
            bucket=bucket, overdue_workdays=workdays, overdue_hours=hours)
        {"overdue": dd.overdue, "today": dd.due_today, "next": dd.due_next}[bucket].append(item)

    ordered = sorted(departments.values(), key=lambda d: (-d.overdue_count, -d.due_today_count, -d.total, d.name))
    account_ids = _account_ids(session, scope)
    gaps = [g for g in account_gaps(session=session, config=config, now=as_of)
            if g.account_id in account_ids and g.level != "ok"]
    gaps.sort(key=lambda g: (g.level != "limit", -(g.days_since_last or float("inf"))))
    failed, older = _failed_publications(session, config, account_ids, as_of)
    open_rects = session.execute(
        select(Account.name, Rectification.problem, Rectification.found_on)
        .join(Account, Account.id == Rectification.account_id)
        .where(Rectification.account_id.in_(account_ids), Rectification.fixed_on.is_(None), Rectification.found_on <= day)
        .order_by(Rectification.found_on, Rectification.id)
    ).all()
    return Digest(organisation=scope.name, day=day, as_of=as_of_local, next_workday=next_wd,
                  departments=ordered, accounts=gaps, failed_publications=failed, failed_older=older,
                  limit_days=config.gap.limit_days, warn_days=config.gap.warn_days,
                  rectifications=[tuple(r) for r in open_rects])


def _account_ids(session: Session, scope: OrgScope) -> set[int]:
    cond = Account.department_id.in_(scope.department_ids)
    if scope.include_unassigned:
        cond = or_(cond, Account.department_id.is_(None))
    return set(session.execute(select(Account.id).where(cond)).scalars())


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def _failed_publications(
    session: Session, config: Config, account_ids: set[int], as_of: datetime
) -> tuple[list[FailedPublication], int]:
    base = [Publication.state.in_(("failed", "missed")), Publication.account_id.in_(account_ids),
            Publication.due_at <= as_of]
    recent = session.execute(
        select(Publication.id, Account.name, Account.platform, Post.title, Publication.state, Publication.due_at,
               Publication.last_error)
        .join(Account, Account.id == Publication.account_id).join(Post, Post.id == Publication.post_id)
        .where(*base, Publication.due_at > as_of - FAILED_LOOKBACK)
        .order_by(Publication.due_at.desc()).limit(LIST_LIMIT)
    ).all()
    older = session.execute(
        select(func.count()).select_from(Publication).where(*base, Publication.due_at <= as_of - FAILED_LOOKBACK)
    ).scalar_one()
    items = [FailedPublication(pid, name, platform, title, state, to_local(due, config.timezone),
                               _excerpt(error or ("错过发布时间" if state == "missed" else "")))
             for pid, name, platform, title, state, due, error in recent]
    return items, older


# -- how it reads --------------------------------------------------------------------------------


# Citizens write the excerpts: in Markdown their brackets, stars and angle brackets would become links,
# emphasis or <font> tags in the officers' WeCom group, so they are shown as their full-width forms.
def render_markdown(digest: Digest) -> str:
    """Pure: the digest as Markdown that the WeCom robot shows (no tables) and mail sends as plain text."""
    d = digest
    out = [f"# {d.organisation} 未答复留言日报 {d.day.isoformat()}",
           f"截至 {d.as_of:%Y-%m-%d %H:%M}：未答复 **{d.unanswered}** 件，其中逾期 **{d.overdue}** 件，"
           f"今天到期 {d.due_today} 件，{d.next_label}到期 {d.due_next} 件，其余 {d.later} 件。", ""]
    if not d.departments:
        out += ["没有未答复的留言。", ""]
    for dept in d.departments:
        out.append(f"## {dept.name}（{dept.total} 件）")
        for title, items, count in (("逾期", dept.overdue, dept.overdue_count),
                                    ("今天到期", dept.due_today, dept.due_today_count),
                                    (f"{d.next_label}到期", dept.due_next, dept.due_next_count)):
            if not count:
                continue
            out.append(f"**{title} {count} 件**")
            for t in items:
                when = f"{overdue_label(t)}（{t.deadline_zh}）" if t.bucket == "overdue" else f"{t.deadline_zh}期限"
                out.append(f"- #{t.ticket_id} {when} · {t.intent_zh} · {t.account} · "
                           f"{t.received_at:%m-%d %H:%M} 收到：{md_text(t.excerpt)}")
            if count > len(items):
                out.append(f"- 另有 {count - len(items)} 件未列出")
        if dept.later_count:
            out.append(f"其余 {dept.later_count} 件在{d.next_label}之后到期。")
        out.append("")
    if d.accounts:
        out.append(f"## 更新提醒（{d.limit_days} 天未更新即不合格，{d.warn_days} 天起提醒）")
        for g in d.accounts:
            mark = "超限" if g.level == "limit" else "临近"
            since = "从未发布" if g.days_since_last is None else f"{g.days_since_last:.1f} 天未更新"
            out.append(f"- {mark}：{g.account_name}（{PLATFORM_ZH.get(g.platform, g.platform)}）{since}")
        out.append("")
    if d.failed_publications or d.failed_older:
        out.append("## 发布失败")
        for p in d.failed_publications:
            what = "错过发布时间" if p.state == "missed" else "发布失败"
            error = f"：{md_text(p.error)}" if p.error else ""
            out.append(f"- {p.account}：《{md_text(p.title)}》{p.due_at:%m-%d %H:%M} {what}{error}")
        if d.failed_older:
            out.append(f"- 另有 {d.failed_older} 条更早的发布失败记录")
        out.append("")
    if d.rectifications:
        out.append("## 迎检问题待整改")
        for account, problem, found in d.rectifications:
            out.append(f"- {account}：{md_text(problem)}（{found:%m-%d} 发现）")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
_env.globals.update(overdue_label=overdue_label, PLATFORM_ZH=PLATFORM_ZH, timedelta=timedelta)


def render_html(digest: Digest) -> str:
    """Pure: the digest as a self-contained HTML page (inline styles, for mail clients)."""
    return _env.get_template("digest.html").render(d=digest)


def subject(digest: Digest) -> str:
    return (f"{digest.organisation} 未答复留言日报 {digest.day.isoformat()}："
            f"逾期 {digest.overdue} 件，未答复 {digest.unanswered} 件")


# -- storing and delivering ----------------------------------------------------------------------


@dataclass
class DigestOutcome:
    digest: Digest
    markdown: str
    html: str
    run_id: int | None
    deliveries: dict[str, Any]
    sent_now: list[str]
    failed_now: list[str]


def produce_digest(
    ctx: Context,
    *,
    scope: OrgScope,
    day: date,
    now: datetime | None = None,
    send: bool = True,
) -> DigestOutcome | None:
    """Write the day's digest for `scope` and deliver it to every channel that has not had it yet.

    Stores (or updates) the DigestRun row first, then sends, recording each channel's result as soon
    as it is known. Returns None when another process holds this digest's lease right now.
    """
    from bot.oversight import delivery

    now = now or utcnow()
    key = f"lease:digest:{scope.organisation_id}:{day.isoformat()}"
    if scope.organisation_id is not None and not acquire_lease(ctx, key=key, now=now):
        logger.info("digest of {} for {} is being written by another worker", scope.name, day)
        return None
    try:
        with ctx.session() as session:
            digest = collect_digest(session=session, config=ctx.config, calendar=ctx.calendar, scope=scope,
                                    day=day, now=now)
            md, html = render_markdown(digest), render_html(digest)
            run = _upsert_run(session, scope, day, md, html) if scope.organisation_id is not None else None
            run_id = run.id if run is not None else None
            deliveries = dict(run.deliveries) if run is not None else {}
        sent, failed = [], []
        if send and run_id is not None:
            for channel in scope.channels:
                record = deliveries.get(channel, {})
                if record.get("state") == "sent":
                    continue
                result = delivery.deliver(ctx.config, channel=channel, digest=digest, markdown=md, html=html,
                                          recipients=scope.recipients, previous=record, now=now)
                deliveries[channel] = result
                with ctx.session() as session:
                    _record_delivery(session, run_id, channel, result)
                (sent if result["state"] == "sent" else failed).append(channel)
        return DigestOutcome(digest, md, html, run_id, deliveries, sent, failed)
    finally:
        if scope.organisation_id is not None:
            release_lease(ctx, key=key)


def _upsert_run(session: Session, scope: OrgScope, day: date, md: str, html: str) -> DigestRun:
    where = (DigestRun.organisation_id == scope.organisation_id, DigestRun.day == day.isoformat())
    run = session.execute(select(DigestRun).where(*where)).scalar()
    if run is None:
        try:
            with session.begin_nested():
                run = DigestRun(organisation_id=scope.organisation_id, day=day.isoformat(), markdown=md, html=html)
                session.add(run)
        except IntegrityError:
            # Another process wrote the day's row between our read and insert: update that one.
            run = session.execute(select(DigestRun).where(*where)).scalar_one()
    # created_at is when this version was written: the page's 已生成 time moves with each regeneration.
    run.markdown, run.html, run.created_at = md, html, utcnow()
    session.add(run)
    session.flush()
    return run


def _record_delivery(session: Session, run_id: int, channel: str, result: dict[str, Any]) -> None:
    run = session.execute(select(DigestRun).where(DigestRun.id == run_id).with_for_update()).scalar_one()
    # A new dict, so the JSON column is seen as changed.
    run.deliveries = {**run.deliveries, channel: result}
    session.add(run)


def acquire_lease(ctx: Context, *, key: str, now: datetime, seconds: int | None = None) -> bool:
    """Take the named lease for this worker unless another live worker holds it (compare-and-set)."""
    until = now + timedelta(seconds=seconds or ctx.config.scheduler.lease_seconds)
    with ctx.session() as session:
        taken = session.execute(
            update(KeyValue).where(KeyValue.key == key,
                                   or_(KeyValue.expires_at.is_(None), KeyValue.expires_at < now,
                                       KeyValue.value == ctx.worker_id))
            .values(value=ctx.worker_id, expires_at=until, updated_at=now)
        ).rowcount
        if taken:
            return True
    try:
        with ctx.session() as session:
            session.execute(insert(KeyValue).values(key=key, value=ctx.worker_id, expires_at=until, updated_at=now))
        return True
    except IntegrityError:
        return False


def release_lease(ctx: Context, *, key: str) -> None:
    with ctx.session() as session:
        session.execute(delete(KeyValue).where(KeyValue.key == key, KeyValue.value == ctx.worker_id))


def due_scopes(ctx: Context, *, now: datetime) -> list[tuple[OrgScope, date]]:
    """Organisations whose digest time has come today and that still owe a digest or a retry."""
    local_now = to_local(now, ctx.config.timezone)
    today = local_now.date()
    out = []
    with ctx.session() as session:
        scopes = [s for s in organisation_scopes(session=session, config=ctx.config) if s.organisation_id]
        runs = {org_id: deliveries for org_id, deliveries in session.execute(
            select(DigestRun.organisation_id, DigestRun.deliveries).where(DigestRun.day == today.isoformat()))}
    for scope in scopes:
        if local_now.time() < scope.digest_time:
            continue
        if scope.organisation_id not in runs:
            out.append((scope, today))
            continue
        deliveries = runs[scope.organisation_id] or {}
        if any(_retry_due(deliveries.get(ch), now) for ch in scope.channels):
            out.append((scope, today))
    return out


def _retry_due(record: dict[str, Any] | None, now: datetime) -> bool:
    if not record:
        return True
    if record.get("state") == "sent":
        return False
    next_at = record.get("next_attempt_at")
    return next_at is None or datetime.fromisoformat(next_at) <= now


def digest_job(ctx: Context, *, now: datetime | None = None) -> list[DigestOutcome]:
    """The periodic job: each organisation's digest once a day at its digest_time; failed channels retried."""
    now = now or utcnow()
    outcomes = []
    for scope, day in due_scopes(ctx, now=now):
        outcome = produce_digest(ctx, scope=scope, day=day, now=now)
        if outcome is not None:
            outcomes.append(outcome)
            for channel in outcome.failed_now:
                logger.warning("digest of {} for {}: {} failed: {}", scope.name, day, channel,
                               outcome.deliveries[channel].get("error"))
    return outcomes


def stored_run(*, session: Session, scope: OrgScope, day: date) -> DigestRun | None:
    return session.execute(
        select(DigestRun).where(DigestRun.organisation_id == scope.organisation_id, DigestRun.day == day.isoformat())
    ).scalar()

