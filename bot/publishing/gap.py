"""Update-gap guard (更新间隔): days since each account's last post, and whether the posts already
scheduled keep every gap under the inspection limit (no update in 14 days fails an account)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy import func
from sqlmodel import Session, select

from bot.clock import utcnow
from bot.config import Config
from bot.models import Account, Publication

DAY = timedelta(days=1)


@dataclass(frozen=True)
class AccountGap:
    account_id: int
    account_name: str
    platform: str
    last_published_at: datetime | None
    days_since_last: float | None
    # Posts already scheduled for the account, oldest first.
    scheduled: tuple[datetime, ...]
    # Longest silence from the last post through the scheduled ones (days).
    longest_planned_gap_days: float | None
    # When the account crosses the limit if nothing more is scheduled.
    silent_limit_at: datetime | None
    level: str  # ok | warn | limit
    message: str


def evaluate_gap(
    *,
    account_id: int,
    account_name: str,
    platform: str,
    last_published_at: datetime | None,
    scheduled: list[datetime],
    now: datetime,
    warn_days: int,
    limit_days: int,
) -> AccountGap:
    """Pure: the gap verdict for one account."""
    scheduled = sorted(t for t in scheduled if t >= now)
    since = (now - last_published_at) / DAY if last_published_at else None
    points = ([last_published_at] if last_published_at else []) + scheduled
    longest = max(((b - a) / DAY for a, b in zip(points, points[1:], strict=False)), default=None)
    last_known = points[-1] if points else None
    limit_at = last_known + timedelta(days=limit_days) if last_known else None
    if since is None and not scheduled:
        level, msg = "limit", "never posted and nothing scheduled"
    elif since is not None and since >= limit_days:
        level, msg = "limit", f"{since:.1f} days without a post (limit {limit_days})"
    elif longest is not None and longest >= limit_days:
        level, msg = "warn", f"scheduled posts leave a gap of {longest:.1f} days (limit {limit_days})"
    elif since is not None and since >= warn_days and not (scheduled and (scheduled[0] - last_published_at) / DAY < limit_days):
        level, msg = "warn", f"{since:.1f} days without a post; nothing scheduled before day {limit_days}"
    elif since is not None and since >= warn_days:
        level, msg = "warn", f"{since:.1f} days without a post (warning at {warn_days})"
    else:
        level, msg = "ok", "ok"
    return AccountGap(account_id, account_name, platform, last_published_at, since, tuple(scheduled),
                      longest, limit_at, level, msg)


def account_gaps(*, session: Session, config: Config, now: datetime | None = None) -> list[AccountGap]:
    """The verdict for every enabled account, from two grouped queries."""
    now = now or utcnow()
    last = dict(
        session.exec(
            select(Publication.account_id, func.max(Publication.published_at))
            .where(Publication.state == "published")
            .group_by(Publication.account_id)
        ).all()
    )
    planned: dict[int, list[datetime]] = {}
    for account_id, due in session.exec(
        select(Publication.account_id, Publication.due_at).where(Publication.state.in_(("pending", "publishing")))
    ):
        planned.setdefault(account_id, []).append(due)
    gaps = []
    for acc in session.exec(select(Account).where(Account.enabled).order_by(Account.name)):
        gaps.append(
            evaluate_gap(
                account_id=acc.id, account_name=acc.name, platform=acc.platform,
                last_published_at=last.get(acc.id), scheduled=planned.get(acc.id, []), now=now,
                warn_days=config.gap.warn_days, limit_days=config.gap.limit_days,
            )
        )
    return gaps


def log_gap_warnings(gaps: list[AccountGap]) -> None:
    for g in gaps:
        if g.level != "ok":
            logger.warning("account {} ({}): {}", g.account_name, g.platform, g.message)


def gap_check(ctx, *, now: datetime | None = None) -> list[AccountGap]:
    """Periodic job: log every account that is near or over the silence limit."""
    with ctx.session() as session:
        gaps = account_gaps(session=session, config=ctx.config, now=now)
    log_gap_warnings(gaps)
    return gaps
