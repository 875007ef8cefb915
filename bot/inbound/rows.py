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
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from bot.db import sqlite_pragmas
from bot.inbound.autoreply import ANSWERED_SINCE
from bot.inbound.spool import Delivery
from bot.models import InboundDelivery

SUCCESS = "success"  # tells WeChat "received, no reply"

_TABLE = InboundDelivery.__table__
_COLUMNS = ("account_id", "dedupe_key", "timestamp", "nonce", "body", "arrived_at", "reply_xml", "attempts",
            "faq_rule", "sender_id")


class Outcome(StrEnum):
    STORED = "stored"  # new, in the database
    DUPLICATE = "duplicate"  # stored before: answer with the first answer
    REPLAY = "replay"  # the signature's nonce came before with another message: refuse
    SPOOLED = "spooled"  # the database could not take it; durable in the spool


@dataclass(frozen=True)
class Stored:
    outcome: Outcome
    reply_xml: str = SUCCESS


@dataclass(frozen=True)
class PassiveAnswer:
    """An automatic answer to give in the response (bot.inbound.autoreply), stored with the delivery.

    With `once_since` it is given only if the citizen got no answer from the same rule since then
    (checked in the insert's transaction); otherwise the delivery is answered "success"."""

    faq_rule: str
    reply_xml: str
    sender_id: str
    once_since: datetime | None = None


class _Driver:
    """A Core statement compiled once for a dialect: its driver SQL and how to bind a dict of values."""

    def __init__(self, statement: Any, dialect: Any, column_keys: list[str] | None = None):
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        self.sql = str(compiled)
        self.names: list[str] | None = list(compiled.positiontup) if compiled.positional else None
        self.processors = {name: proc for name, bind in compiled.binds.items()
                           if (proc := bind.type._cached_bind_processor(dialect)) is not None}
        # The statement's own constants (a LIMIT, a compared literal) are binds with their value.
        self.constants = {name: bind.effective_value for name, bind in compiled.binds.items()
                          if bind.value is not None or bind.callable is not None}

    def params(self, values: dict[str, Any]) -> Any:
        bound = {name: self.processors[name](value) if name in self.processors else value
                 for name, value in (self.constants | values).items()}
        return tuple(bound[name] for name in self.names) if self.names is not None else bound


class _Statements:
    """The callback's two statements for one dialect: the answered-since check and the insert,
    INSERT … ON CONFLICT DO NOTHING RETURNING id."""

    def __init__(self, dialect: Any):
        insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect.name]
        # No conflict target: either unique key (dedupe key, or timestamp + nonce) makes it a no-op.
        self.insert = _Driver(insert(_TABLE).on_conflict_do_nothing().returning(_TABLE.c.id), dialect, list(_COLUMNS))
        self.answered = _Driver(ANSWERED_SINCE, dialect)
        self.first = _Driver(select(_TABLE.c.reply_xml).where(
            _TABLE.c.account_id == bindparam("account_id"), _TABLE.c.dedupe_key == bindparam("dedupe_key")), dialect)

    def insert_params(self, delivery: Delivery, answer: PassiveAnswer | None) -> Any:
        return self.insert.params({
            "account_id": delivery.account_id, "dedupe_key": delivery.dedupe_key, "timestamp": delivery.timestamp,
            "nonce": delivery.nonce, "body": delivery.body, "arrived_at": delivery.arrived_at,
            "reply_xml": answer.reply_xml if answer else SUCCESS, "attempts": 0,
            "faq_rule": answer.faq_rule if answer else None, "sender_id": answer.sender_id if answer else None,
        })

    def answered_params(self, delivery: Delivery, answer: PassiveAnswer) -> Any:
        return self.answered.params({"account_id": delivery.account_id, "sender_id": answer.sender_id,
                                     "faq_rule": answer.faq_rule, "since": answer.once_since})

    def first_params(self, delivery: Delivery) -> Any:
        return self.first.params({"account_id": delivery.account_id, "dedupe_key": delivery.dedupe_key})


_statements: dict[str, _Statements] = {}


def _statements_for(dialect: Any) -> _Statements:
    statements = _statements.get(dialect.name)
    if statements is None:
        statements = _statements[dialect.name] = _Statements(dialect)
    return statements


def _first_answer(first: str | None) -> Stored:
    # No row under the dedupe key although the insert was a no-op: the timestamp + nonce key hit.
    return Stored(Outcome.REPLAY) if first is None else Stored(Outcome.DUPLICATE, first)


def _store(cursor: Any, statements: _Statements, delivery: Delivery, answer: PassiveAnswer | None) -> tuple[Stored, int | None]:
    """Insert `delivery` on a driver cursor inside the caller's transaction; (outcome, new row id).
    The answer is dropped when the citizen had it already within its period."""
    if answer is not None and answer.once_since is not None:
        cursor.execute(statements.answered.sql, statements.answered_params(delivery, answer))
        if cursor.fetchone() is not None:
            answer = None
    cursor.execute(statements.insert.sql, statements.insert_params(delivery, answer))
    row = cursor.fetchone()
    if row is not None:
        return Stored(Outcome.STORED, answer.reply_xml if answer else SUCCESS), row[0]
    cursor.execute(statements.first.sql, statements.first_params(delivery))
    first = cursor.fetchone()
    return _first_answer(None if first is None else first[0]), None


def insert_delivery(conn: Connection, delivery: Delivery, answer: PassiveAnswer | None = None) -> tuple[Stored, int | None]:
    """Insert `delivery` (with its answer) unless stored already; (outcome, new row id)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        return _store(cursor, _statements_for(conn.dialect), delivery, answer)
    finally:
        cursor.close()


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
        self._statements = _statements_for(dialect)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        sqlite_pragmas(self._conn, busy_ms=0)
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._lock = threading.Lock()  # one event loop per process; a second caller takes the thread path

    def try_store(self, delivery: Delivery, answer: PassiveAnswer | None = None) -> Stored | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._store(delivery, answer)
        finally:
            self._lock.release()

    def _store(self, delivery: Delivery, answer: PassiveAnswer | None) -> Stored | None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")  # SQLITE_BUSY at once when another writer holds the lock
        except sqlite3.Error:
            return None
        try:
            cursor = conn.cursor()
            try:
                stored = _store(cursor, self._statements, delivery, answer)[0]
            finally:
                cursor.close()
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
