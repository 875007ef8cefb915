"""One delivery row: the INSERT that stores a verified WeChat delivery once, and its outcome.

The statement is compiled once per dialect and run on the driver's own cursor: building, caching
and executing a Core statement per row was most of the callback writer's CPU (py-spy: cache keys,
compilation lookup, result wrapping), and that CPU is GIL time the request loop waits for. Values
go through the columns' own bind processors, so a row reads back exactly as one the ORM wrote.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from bot.db import sqlite_pragmas
from bot.inbound.spool import Delivery
from bot.models import InboundDelivery

SUCCESS = "success"  # tells WeChat "received, no reply"

_TABLE = InboundDelivery.__table__
_COLUMNS = ("account_id", "dedupe_key", "timestamp", "nonce", "body", "arrived_at", "reply_xml", "attempts")


class Outcome(StrEnum):
    STORED = "stored"  # new, in the database
    DUPLICATE = "duplicate"  # stored before: answer with the first answer
    REPLAY = "replay"  # the signature's nonce came before with another message: refuse
    SPOOLED = "spooled"  # the database could not take it; durable in the spool


@dataclass(frozen=True)
class Stored:
    outcome: Outcome
    reply_xml: str = SUCCESS


class _Insert:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id for one dialect, as driver SQL and parameters."""

    def __init__(self, dialect: Any):
        insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect.name]
        # No conflict target: either unique key (dedupe key, or timestamp + nonce) makes it a no-op.
        statement = insert(_TABLE).on_conflict_do_nothing().returning(_TABLE.c.id)
        compiled = statement.compile(dialect=dialect, column_keys=list(_COLUMNS))
        self.sql = str(compiled)
        self.names: list[str] | None = list(compiled.positiontup) if compiled.positional else None
        self.processors = {name: proc for name in _COLUMNS
                           if (proc := _TABLE.c[name].type._cached_bind_processor(dialect)) is not None}

    def params(self, delivery: Delivery) -> Any:
        values: dict[str, Any] = {
            "account_id": delivery.account_id, "dedupe_key": delivery.dedupe_key, "timestamp": delivery.timestamp,
            "nonce": delivery.nonce, "body": delivery.body, "arrived_at": delivery.arrived_at,
            "reply_xml": SUCCESS, "attempts": 0,
        }
        for name, proc in self.processors.items():
            values[name] = proc(values[name])
        return tuple(values[name] for name in self.names) if self.names is not None else values


_inserts: dict[str, _Insert] = {}


def _insert_for(dialect: Any) -> _Insert:
    insert = _inserts.get(dialect.name)
    if insert is None:
        insert = _inserts[dialect.name] = _Insert(dialect)
    return insert


def _first_answer(first: str | None) -> Stored:
    # No row under the dedupe key although the insert was a no-op: the timestamp + nonce key hit.
    return Stored(Outcome.REPLAY) if first is None else Stored(Outcome.DUPLICATE, first)


def insert_delivery(conn: Connection, delivery: Delivery) -> tuple[Stored, int | None]:
    """Insert `delivery` unless stored already; (outcome, new row id)."""
    insert = _insert_for(conn.dialect)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(insert.sql, insert.params(delivery))
        row = cursor.fetchone()
    finally:
        cursor.close()
    if row is not None:
        return Stored(Outcome.STORED), row[0]
    first = conn.execute(select(_TABLE.c.reply_xml).where(
        _TABLE.c.account_id == delivery.account_id, _TABLE.c.dedupe_key == delivery.dedupe_key)).scalar_one_or_none()
    return _first_answer(first), None


class InlineSQLite:
    """SQLite only: a delivery stored right in the request's event loop while the write lock is free.

    An insert and a commit in WAL mode with synchronous=NORMAL are tens of microseconds of C; handing
    them to the writer thread costs two thread wake-ups, and under CPU contention each wake-up waits
    for the scheduler (the tail of the latency). The connection never waits for a lock (busy_timeout
    0, BEGIN IMMEDIATE): when another writer holds it (the writer thread's batch, a worker, another
    web process), or anything else goes wrong, try_store answers None and the delivery takes the
    writer thread's path, with its lock timeout, retries and spool. Never checkpoints (the intake's
    checkpointer does)."""

    def __init__(self, path: str, dialect: Any):
        self._insert = _insert_for(dialect)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        sqlite_pragmas(self._conn, busy_ms=0)
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._lock = threading.Lock()  # one event loop per process; a second caller takes the thread path

    def try_store(self, delivery: Delivery) -> Stored | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._store(delivery)
        finally:
            self._lock.release()

    def _store(self, delivery: Delivery) -> Stored | None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")  # SQLITE_BUSY at once when another writer holds the lock
        except sqlite3.Error:
            return None
        try:
            row = conn.execute(self._insert.sql, self._insert.params(delivery)).fetchone()
            if row is not None:
                stored = Stored(Outcome.STORED)
            else:
                first = conn.execute("SELECT reply_xml FROM inbounddelivery WHERE account_id = ? AND dedupe_key = ?",
                                     (delivery.account_id, delivery.dedupe_key)).fetchone()
                stored = _first_answer(None if first is None else first[0])
            conn.execute("COMMIT")
            return stored
        except sqlite3.Error:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # no transaction left to roll back
            return None

    def close(self) -> None:
        with self._lock:
            self._conn.close()
