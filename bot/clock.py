"""Time in one place: the database stores aware UTC datetimes; people see local time."""

from datetime import UTC, datetime
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
