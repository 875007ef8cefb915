"""Time in one place: the database stores aware UTC datetimes; people see local time."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
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
