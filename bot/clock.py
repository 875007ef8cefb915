"""Time in one place: the database stores aware UTC datetimes; people see local time."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

# Set by `at`: how far this context's clock is from the wall clock.
_offset: ContextVar[timedelta] = ContextVar("clock_offset", default=timedelta(0))


def utcnow() -> datetime:
    """Aware UTC, the form every timestamp column stores (SQLModel refuses naive datetimes)."""
    return datetime.now(UTC) + _offset.get()


@contextmanager
def at(moment: datetime) -> Iterator[None]:
    """Run the block as if it were `moment` (time keeps running from there): days of quota windows
    and polling schedules in seconds. Only this context (thread or task) sees the moved clock."""
    token = _offset.set(moment - datetime.now(UTC))
    try:
        yield
    finally:
        _offset.reset(token)


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
