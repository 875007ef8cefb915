"""Time in one place: the database stores aware UTC datetimes; people see local time."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    """Aware UTC, the form every timestamp column stores (SQLModel refuses naive datetimes)."""
    return datetime.now(UTC)


def to_local(dt: datetime, tz: str) -> datetime:
    """An aware datetime (naive is taken as UTC) in the local time zone `tz`."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(ZoneInfo(tz))


def to_utc(dt: datetime, tz: str) -> datetime:
    """A local wall-clock time (naive, in `tz`) or any aware time -> aware UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(tz))
    return dt.astimezone(UTC)


# The days govbot can hold figures for (政务微博 from 2009, 公众号 from 2012); earlier or far later days
# are typing mistakes, and at the ends of the calendar (year 1, year 9999) time-zone arithmetic overflows.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)


def out_of_range(day: date) -> str | None:
    """Why the day cannot be asked for, or None."""
    if FIRST_DAY <= day <= LAST_DAY:
        return None
    return f"{day} is outside the days govbot keeps ({FIRST_DAY} to {LAST_DAY})"
