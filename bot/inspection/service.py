"""Inspection status of accounts (迎检状态) and the rectification records (整改台账).

`status_for` evaluates the checklist for a scope and period; `daily_check` (a worker job) evaluates the
last `inspection.window_days` every day, records each new failure as a Rectification to be completed by the
office, and logs the accounts at risk of a single veto.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from loguru import logger
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot import audit
from bot.clock import to_local, to_utc, utcnow
from bot.config import Config
from bot.errors import GovbotError, NotFound, PermissionDenied
from bot.inspection.checklist import CHECKLIST_FILE, Checklist, load_checklist
from bot.inspection.evaluate import AccountStatus, evaluate_account
from bot.inspection.facts import account_facts
from bot.models import Account, Rectification, User
from bot.oversight.reports import Scope
from bot.permissions import allowed
from bot.resources import rule_file
from bot.tickets.calendar import WorkCalendar

MEASURE_LIMIT = 2000  # characters of 整改措施
_cache: dict[Path, tuple[tuple[int, int], Checklist]] = {}


def checklist_path(config: Config) -> Path:
    """The site's own rules/inspection.toml (its province's variant) if it has one, else the shipped one."""
    return rule_file(config.rules_dir, CHECKLIST_FILE)


def load(config: Config) -> Checklist:
    """The checklist, read again when the file changes (a bad edit raises ChecklistError naming the file)."""
    path = checklist_path(config).resolve()
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        stamp = (0, 0)
    cached = _cache.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    checklist = load_checklist(path)
    _cache[path] = (stamp, checklist)
    return checklist


def status_for(*, session: Session, config: Config, calendar: WorkCalendar, scope: Scope, start: datetime,
               end: datetime, now: datetime | None = None) -> list[AccountStatus]:
    """Every account of the scope against every indicator over [start, end) as of min(now, end)."""
    now = now or utcnow()
    if end <= start:
        raise GovbotError("inspection.empty_period")
    if now <= start:
        raise GovbotError("inspection.not_begun")
    checklist = load(config)
    facts = account_facts(session=session, config=config, calendar=calendar, account_ids=scope.account_ids,
                          start=start, as_of=min(now, end))
    return [evaluate_account(checklist, f, config.timezone) for f in facts]


def rolling_window(config: Config, now: datetime) -> tuple[datetime, datetime]:
    """The daily check's period: the last window_days local days, up to now."""
    today = to_local(now, config.timezone).date()
    first = today - timedelta(days=config.inspection.window_days - 1)
    return to_utc(datetime.combine(first, datetime.min.time()), config.timezone), now


def current_status(*, session: Session, config: Config, calendar: WorkCalendar, scope: Scope,
                   now: datetime | None = None) -> list[AccountStatus]:
    now = now or utcnow()
    start, _ = rolling_window(config, now)
    return status_for(session=session, config=config, calendar=calendar, scope=scope, start=start,
                      end=now + timedelta(seconds=1), now=now)


def record_findings(*, session: Session, statuses: list[AccountStatus], day: date) -> list[Rectification]:
    """A Rectification for each failing evidence not recorded before (one per account, indicator and key)."""
    known = {(r.account_id, r.indicator, r.key) for r in session.exec(
        select(Rectification).where(Rectification.account_id.in_([s.facts.account_id for s in statuses])))}
    new = []
    for st in statuses:
        for r in st.results:
            if r.status != "fail":
                continue
            items = r.evidence or ()
            pairs = [(f"{e.kind}:{e.ref if e.ref is not None else e.day}", e.text) for e in items] or \
                [(f"period:{day.isoformat()[:7]}", r.summary)]
            for key, text in pairs:
                k = (st.facts.account_id, r.indicator.id, key)
                if k in known:
                    continue
                known.add(k)
                row = Rectification(account_id=st.facts.account_id, indicator=r.indicator.id, key=key,
                                    problem=f"{r.indicator.name}：{text}", found_on=day)
                session.add(row)
                new.append(row)
    session.flush()
    return new


def daily_check(ctx, *, now: datetime | None = None) -> list[AccountStatus]:
    """Worker job: evaluate every account, record new failures, log single vetoes failing or at risk."""
    from bot.oversight.reports import resolve_scope

    now = now or utcnow()
    try:
        with ctx.session() as session:
            scope = resolve_scope(session=session)
            statuses = current_status(session=session, config=ctx.config, calendar=ctx.calendar, scope=scope,
                                      now=now)
            new = record_findings(session=session, statuses=statuses, day=to_local(now, ctx.config.timezone).date())
            session.commit()
    except IntegrityError:
        # Another worker recorded the same findings first; its rows stand.
        logger.info("inspection findings already recorded by another worker")
        return []
    for st in statuses:
        for r in st.results:
            if r.indicator.veto and r.status in ("fail", "risk"):
                logger.warning("inspection: account {} {} {}: {}", st.facts.name, r.indicator.name, r.status, r.summary)
    if new:
        logger.info("inspection: {} new problems recorded for rectification", len(new))
    return statuses


def can_rectify(user: User, account: Account) -> bool:
    """Admins, and the editors and the lead of the account's department, complete rectifications."""
    return allowed(user, "inspection.rectify", account.department_id)


def complete_rectification(*, session: Session, rectification_id: int, user: User, measure: str,
                           fixed_on: date | None) -> Rectification:
    row = session.get(Rectification, rectification_id)
    if row is None:
        raise NotFound("rectification.not_found", rectification_id=rectification_id)
    account = session.get(Account, row.account_id)
    if account is None or not can_rectify(user, account):
        raise PermissionDenied("rectification.denied", user=user.username, account_id=row.account_id)
    measure = measure.strip()
    if not measure:
        raise GovbotError("rectification.measure_required")
    if len(measure) > MEASURE_LIMIT:
        raise GovbotError("rectification.measure_too_long", limit=MEASURE_LIMIT)
    if fixed_on is not None and fixed_on < row.found_on:
        raise GovbotError("rectification.fixed_before_found", fixed_on=fixed_on, found_on=row.found_on)
    row.measure, row.fixed_on, row.fixed_by = measure, fixed_on, user.username
    session.add(row)
    audit.record(session=session, actor=user.username, action="rectification.updated", subject_type="rectification",
                 subject_id=row.id, fixed_on=fixed_on.isoformat() if fixed_on else None)
    session.flush()
    return row


def list_rectifications(*, session: Session, account_ids: tuple[int, ...], since: date | None = None,
                        until: date | None = None) -> list[Rectification]:
    q = select(Rectification).where(Rectification.account_id.in_(account_ids))
    if since is not None:
        q = q.where(Rectification.found_on >= since)
    if until is not None:
        q = q.where(Rectification.found_on < until)
    return list(session.exec(q.order_by(Rectification.found_on, Rectification.id)))
