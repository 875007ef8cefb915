"""The database: one engine per process, sessions, migrations and row claiming.

SQLite (embedded default) and PostgreSQL (scale-out) share every code path. Several worker processes
claim due rows with `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite ignores the lock clause
and serialises writers itself, and the compare-and-set UPDATE in `claim` keeps a row to one owner on both.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from loguru import logger
from sqlalchemy import event, or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from bot.clock import utcnow
from bot.errors import GovbotError
from bot.resources import migrations_dir

MIGRATIONS_DIR = migrations_dir()


class DatabaseNotReady(GovbotError):
    """The database is missing migrations; says how to fix it."""


_sqlite_writers: dict[int, threading.Lock] = {}
_sqlite_writers_guard = threading.Lock()


def write_lock(engine: Engine) -> AbstractContextManager[Any]:
    """The process's one writer lock of a SQLite engine (nothing for PostgreSQL).

    SQLite has one write lock and its busy handler polls for it in sleeps of up to 100 ms: writers of one
    process that queue on a Python lock instead are woken at once. Every in-process writer that runs
    often (publishing, the quota ledger) takes this same lock.
    """
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _sqlite_writers_guard:
        return _sqlite_writers.setdefault(id(engine), threading.Lock())


def sqlite_pragmas(dbapi_conn: Any, busy_ms: int) -> None:
    """Every SQLite connection's settings. WAL lets readers run beside the one writer; busy_timeout waits
    (0: fails at once) instead of "database is locked"."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={busy_ms}")
    cur.close()


def make_engine(url: str, *, write_timeout_s: float | None = None) -> Engine:
    """The engine for `url`. `write_timeout_s`: how long a statement may wait for a lock (SQLite's
    busy timeout, PostgreSQL's lock and statement timeouts) before it fails; default: 30 s / none."""
    busy_ms = 30000 if write_timeout_s is None else int(write_timeout_s * 1000)
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            sqlite_pragmas(dbapi_conn, busy_ms)

        return engine
    connect_args: dict[str, Any] = {}
    if write_timeout_s is not None:
        connect_args = {"connect_timeout": max(2, round(write_timeout_s)),
                        "options": f"-c lock_timeout={busy_ms} -c statement_timeout={busy_ms}"}
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str) -> None:
    logger.info("applying database migrations to {}", _redact(url))
    command.upgrade(alembic_config(url), "head")


def ensure_schema(engine: Engine, url: str, *, auto_migrate: bool) -> None:
    """Upgrade an outdated database at start, or refuse to run on one (database.auto_migrate)."""
    head, current = head_revision(url), current_revision(engine)
    if current == head:
        return
    if auto_migrate:
        upgrade(url)
        return
    raise DatabaseNotReady("database.not_ready", url=_redact(url), current=current or "none (empty)", head=head)


def _redact(url: str) -> str:
    from bot.logs import safe_url

    return safe_url(url)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(
    session: Session,
    model: Any,
    conditions: Sequence[Any],
    *,
    owner: str,
    lease: timedelta,
    limit: int,
    order_by: Any = None,
    now: datetime | None = None,
) -> list[Any]:
    """Claim up to `limit` rows of `model` that match `conditions` and whose lease is free.

    The caller commits. A claimed row carries lease_owner/lease_until; an owner that dies simply lets
    the lease lapse and another worker takes the row over.
    """
    now = now or utcnow()
    free = or_(model.lease_until.is_(None), model.lease_until < now)
    query = select(model.id).where(*conditions, free).limit(limit).with_for_update(skip_locked=True)
    if order_by is not None:
        query = query.order_by(order_by)
    ids = list(session.execute(query).scalars())
    if not ids:
        return []
    # One statement for the batch; the conditions again, so on SQLite (no row locks) a row another
    # process claimed meanwhile is left out.
    table = model.__table__
    claimed = list(session.execute(update(table).where(table.c.id.in_(ids), free, *conditions)
                                   .values(lease_owner=owner, lease_until=now + lease)
                                   .returning(table.c.id)).scalars())
    if not claimed:
        return []
    rows = session.execute(select(model).where(model.id.in_(claimed)).execution_options(populate_existing=True))
    return list(rows.scalars())
