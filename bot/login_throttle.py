"""Failed log-ins (登录失败限制) per user name and per client address, kept in the database so every
web process sees the same counts.

After `max_failures` failures for a user name (four times as many for an address, which may be a whole
office behind one NAT) the key is locked for 30 s, doubling with each further failure up to `max_lock`; a success clears the user name's count (not the address's: one valid account must not
clear the way for guessing the others). Counts older than a day are forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.clock import utcnow
from bot.models import LoginThrottle

FORGET_AFTER = timedelta(days=1)
FIRST_LOCK = timedelta(seconds=30)
# An address may be a whole office behind one NAT: it is locked only after this many times the failures.
ADDRESS_FACTOR = 4


@dataclass(frozen=True)
class Limits:
    max_failures: int
    max_lock: timedelta


def keys(username: str, address: str) -> list[str]:
    return [f"user:{username.strip().lower()[:150]}", f"addr:{address[:150]}"]


def lock_for(key: str, failures: int, limits: Limits) -> timedelta | None:
    """How long a key with this many failures is locked (None: not locked). Pure."""
    threshold = limits.max_failures * (ADDRESS_FACTOR if key.startswith("addr:") else 1)
    if failures < threshold:
        return None
    return min(FIRST_LOCK * 2 ** min(failures - threshold, 20), limits.max_lock)


def locked_until(*, session: Session, username: str, address: str, now: datetime | None = None) -> datetime | None:
    """The latest time until which the user name or the address is locked, if either is now."""
    now = now or utcnow()
    until = [row.locked_until for key in keys(username, address)
             if (row := session.get(LoginThrottle, key)) is not None and row.locked_until and row.locked_until > now]
    return max(until) if until else None


def record_failure(*, session: Session, username: str, address: str, limits: Limits,
                   now: datetime | None = None) -> None:
    now = now or utcnow()
    for key in keys(username, address):
        row = session.get(LoginThrottle, key, with_for_update=True) or LoginThrottle(key=key)
        if row.failures and now - row.last_failure_at > FORGET_AFTER:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        lock = lock_for(key, row.failures, limits)
        row.locked_until = now + lock if lock else None
        session.add(row)


def record_success(*, session: Session, username: str) -> None:
    row = session.get(LoginThrottle, keys(username, "")[0])
    if row is not None:
        session.delete(row)
