"""The publishing calendar (发布日历): month and week grids, the posts on each day, and the days on
which each account would cross the warning and the inspection limit if nothing more is scheduled.
Pure: callers pass the rows and the gap verdicts (bot.publishing.gap)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot.clock import to_local
from bot.publishing.gap import AccountGap


@dataclass(frozen=True)
class Entry:
    day: date
    time: str  # local HH:MM
    post_id: int
    title: str
    account: str
    state: str  # publication state


@dataclass(frozen=True)
class Mark:
    day: date
    account: str
    level: str  # warn | limit
    text: str


def days(anchor: date, view: str) -> list[date]:
    """Monday-first days shown: the weeks covering anchor's month, or anchor's week."""
    if view == "week":
        start = anchor - timedelta(days=anchor.weekday())
        return [start + timedelta(days=i) for i in range(7)]
    first = anchor.replace(day=1)
    start = first - timedelta(days=first.weekday())
    following = (first + timedelta(days=32)).replace(day=1)
    end = following - timedelta(days=1)
    end += timedelta(days=6 - end.weekday())
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def shift(anchor: date, view: str, step: int) -> date:
    """The anchor of the previous (-1) or next (+1) month or week."""
    if view == "week":
        return anchor + timedelta(days=7 * step)
    month = anchor.month - 1 + step
    return date(anchor.year + month // 12, month % 12 + 1, 1)


def crossing_marks(gaps: list[AccountGap], *, warn_days: int, limit_days: int, tz: str) -> list[Mark]:
    """For each account, the days its silence reaches warn_days and limit_days counting from its last
    post or last scheduled post (what happens if nothing more is scheduled)."""
    marks = []
    for g in gaps:
        points = ([g.last_published_at] if g.last_published_at else []) + list(g.scheduled)
        if not points:
            continue
        last = max(points)
        marks.append(Mark(to_local(last + timedelta(days=warn_days), tz).date(), g.account_name, "warn",
                          f"{g.account_name} 满 {warn_days} 天未更新"))
        marks.append(Mark(to_local(last + timedelta(days=limit_days), tz).date(), g.account_name, "limit",
                          f"{g.account_name} 满 {limit_days} 天，超过检查限值"))
    return marks


def entry_day(due_at: datetime, published_at: datetime | None, tz: str) -> tuple[date, str]:
    local = to_local(published_at or due_at, tz)
    return local.date(), local.strftime("%H:%M")
