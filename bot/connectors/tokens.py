"""One WeChat access token per account, shared by every govbot process through the database.

WeChat allows 2,000 token fetches a day and a new token supersedes the old one (which stays valid
for about five minutes), so processes must not each fetch their own. The token lives in the
KeyValue table; wechatpy reads it through `DbSessionStorage`, and a refresh first re-reads the
table: if another thread or process already stored a newer token, that one is used instead of
fetching again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from wechatpy.session import SessionStorage

from bot.clock import utcnow
from bot.models import KeyValue

# A token this close to its expiry counts as expired, so no call starts with a token about to lapse.
EXPIRY_MARGIN = timedelta(seconds=60)


class DbSessionStorage(SessionStorage):
    """wechatpy's SessionStorage over the KeyValue table (values stored as JSON)."""

    def __init__(self, engine: Engine, prefix: str = "wechatpy:"):
        self.engine = engine
        self.prefix = prefix

    def get(self, key: str, default: Any = None) -> Any:
        found = self.get_with_expiry(key)
        return default if found is None else found[0]

    def get_with_expiry(self, key: str) -> tuple[Any, datetime] | None:
        """The value and its expiry (far future when it has none), unless it is (nearly) expired."""
        with Session(self.engine) as session:
            row = session.get(KeyValue, self.prefix + key)
            if row is None or (row.expires_at is not None and row.expires_at - EXPIRY_MARGIN <= utcnow()):
                return None
            return json.loads(row.value), row.expires_at or datetime.max.replace(tzinfo=UTC)

    def set(self, key: str, value: Any, ttl: int | float | None = None) -> None:
        now = utcnow()
        values = {"value": json.dumps(value, ensure_ascii=False), "updated_at": now,
                  "expires_at": now + timedelta(seconds=ttl) if ttl else None}
        full_key = self.prefix + key
        with Session(self.engine) as session:
            # UPDATE first: it takes the write lock, so the insert below races only with a first-ever set.
            done = session.execute(update(KeyValue).where(KeyValue.key == full_key).values(**values)).rowcount
            if not done:
                session.add(KeyValue(key=full_key, **values))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                session.execute(update(KeyValue).where(KeyValue.key == full_key).values(**values))
                session.commit()

    def delete(self, key: str) -> None:
        with Session(self.engine) as session:
            session.execute(delete(KeyValue).where(KeyValue.key == self.prefix + key))
            session.commit()


class SharedToken:
    """The access token of one account: read from the shared store, refreshed at most once per failure.

    The token read last is kept in memory until it nears expiry; a token the platform refuses is
    re-read from the store first (another process may have refreshed it) and fetched only if the
    store still holds the refused one.
    """

    _locks: dict[str, threading.Lock] = {}
    _locks_guard = threading.Lock()

    def __init__(self, storage: DbSessionStorage, key: str, fetch: Callable[[], tuple[str, int]]):
        self.storage, self.key, self._fetch = storage, key, fetch
        self._cached: tuple[str, datetime] | None = None
        with self._locks_guard:
            self._lock = self._locks.setdefault(key, threading.Lock())

    def current(self) -> str:
        cached = self._cached
        if cached is not None and cached[1] - EXPIRY_MARGIN > utcnow():
            return cached[0]
        stored = self.storage.get_with_expiry(self.key)
        if stored is not None:
            self._cached = stored
            return stored[0]
        return self.refresh(stale=None)

    def refresh(self, *, stale: str | None) -> str:
        """A token other than `stale`: a newer stored one if someone refreshed meanwhile, else a fetched one."""
        with self._lock:
            stored = self.storage.get_with_expiry(self.key)
            if stored is not None and stored[0] != stale:
                self._cached = stored
                return stored[0]
            token, expires_in = self._fetch()
            self.storage.set(self.key, token, expires_in)
            self._cached = (token, utcnow() + timedelta(seconds=expires_in))
            logger.info("fetched a new access token for {} (valid {} s)", self.key, expires_in)
            return token
