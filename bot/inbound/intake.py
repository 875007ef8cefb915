"""The callback's writer: stores verified deliveries once, in batches, or spools them.

On SQLite a delivery is first tried right in the request (bot.inbound.rows.InlineSQLite: one
insert and commit when the write lock is free, never waiting for it). Otherwise requests hand their delivery to one writer thread per web process and wait for the outcome; the
thread takes whatever has queued up meanwhile and stores it in one transaction (a group commit),
so under a burst the cost of a commit is shared by many requests and SQLite's single write lock
is taken once per batch instead of being fought over by request threads. Driver statements only
(bot.inbound.rows): no ORM on the hot path.

A delivery answered with a passive automatic answer (an FAQ reply, the welcome of a subscribe)
comes with it (bot.inbound.rows.PassiveAnswer) and is stored the same way, the answer with it; the
worker records it as a Reply. When the database cannot take it, it is spooled and answered
"success" like any other (a person answers the question from its ticket).

On SQLite the writer never checkpoints the WAL itself: a checkpoint copies and fsyncs megabytes,
and every request queued behind it would wait. A background thread checkpoints (PASSIVE: it never
blocks the writer) once a second after writes, in quick passes until one finds nothing new
(checkpoint): only then does the next commit start the WAL again from its beginning. (Commits keep
the project's synchronous=NORMAL: a fsync per commit made the answer wait for the disk, p50 x3 and
a collapse at 500 req/s here.)

When the database cannot take a batch (down, locked past callback.store_timeout_s), the batch goes
to the spool (fsync'd files) and is answered: nothing is acknowledged that is not durable
somewhere. The database is then left alone for RETRY_S before the next try, so an outage does not
add a timeout to every request.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from bot import db
from bot.context import Context
from bot.inbound.rows import InlineSQLite, Outcome, PassiveAnswer, Stored, insert_delivery
from bot.inbound.spool import Delivery, Spool
from bot.logthrottle import clear_throttled, log_throttled
from bot.models import InboundDelivery

MAX_BATCH = 256
RETRY_S = 1.0  # after a failed write, deliveries go straight to the spool for this long
CHECKPOINT_S = 1.0
CATCH_UP_PASSES = 6

_TABLE = InboundDelivery.__table__


def checkpoint(conn: Any) -> None:
    """PASSIVE checkpoints (never waiting for a writer) until a pass finds the log as the previous one
    left it, all copied: the next commit then restarts the WAL from its beginning.

    One pass is not enough under a steady stream of deliveries. The commits made while it copies
    (several milliseconds) stay behind, the log is never restarted, and the file grows by every
    commit's pages: 6 MB a second at 300 req/s, and every new block of it an allocation on the file
    system (stalls of milliseconds when its journal commits). The passes after the first copy only
    those few commits, in a fraction of a millisecond."""
    previous = None
    for _ in range(CATCH_UP_PASSES):
        _busy, log, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        if log == done == previous:
            return
        previous = log


@dataclass(frozen=True)
class _Job:
    delivery: Delivery
    answer: PassiveAnswer | None
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class Intake:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        cfg = ctx.config.callback
        self.engine = db.make_engine(ctx.config.database_url, write_timeout_s=cfg.store_timeout_s)
        self.spool = Spool(ctx.config.path(cfg.spool_dir))
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._down_until = 0.0
        self._closed = threading.Event()
        self._wrote = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._inline: InlineSQLite | None = None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_writer_pragmas)
            path = self.engine.url.database
            if path and path != ":memory:":
                self._inline = InlineSQLite(path, self.engine.dialect)

    # ---- requests ----------------------------------------------------------------------------

    async def store(self, delivery: Delivery, answer: PassiveAnswer | None = None) -> Stored:
        """Store `delivery` durably (database or spool) with the answer to give, if any (unless the
        citizen had it already); raises if neither could take it."""
        self._start()
        if self._inline is not None and self.database_up:
            stored = self._inline.try_store(delivery, answer)
            if stored is not None:
                self._wrote.set()
                return stored
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Job(delivery, answer, future, loop))
        return await future

    @property
    def database_up(self) -> bool:
        return time.monotonic() >= self._down_until

    def writable(self) -> bool:
        """Whether the database takes a write now (a no-op UPDATE, rolled back): for /healthz."""
        if not self.database_up:
            return False
        try:
            with self.engine.connect() as conn:
                tx = conn.begin()
                conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
                tx.rollback()
            return True
        except DBAPIError:
            return False

    def close(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=10)
                self._thread = None
            self._closed.set()
            if self._checkpointer is not None:
                self._checkpointer.join(timeout=10)
                self._checkpointer = None
            if self._inline is not None:
                self._inline.close()
        self.engine.dispose()

    # ---- the writer thread -------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="callback-intake", daemon=True)
                self._thread.start()
                if self.engine.dialect.name == "sqlite":
                    self._checkpointer = threading.Thread(target=self._checkpoint, name="callback-checkpoint",
                                                          daemon=True)
                    self._checkpointer.start()

    def _checkpoint(self) -> None:
        while not self._closed.wait(CHECKPOINT_S):
            if not self._wrote.is_set():
                continue
            self._wrote.clear()
            try:
                with self.engine.connect() as conn:
                    checkpoint(conn)
            except DBAPIError:
                pass  # the next round tries again; the writers' failures are what gets logged

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            stop = False
            while len(jobs) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.append(more)
            try:
                outcomes = self._write(jobs)
            except Exception as exc:  # never leave a request waiting: it answers 503 and WeChat retries
                log_throttled("callback.intake.bug", "ERROR", "the delivery writer failed", exception=True)
                outcomes = [exc] * len(jobs)
            by_loop: dict[asyncio.AbstractEventLoop, list] = {}
            for job, outcome in zip(jobs, outcomes, strict=True):
                by_loop.setdefault(job.loop, []).append((job.future, outcome))
            for loop, results in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_resolve, results)
                except RuntimeError:  # the loop closed: its requests are gone, WeChat retries
                    pass
            if stop:
                return

    def _write(self, jobs: list[_Job]) -> list[Stored | BaseException]:
        outcomes: list[Stored | BaseException | None] = [None] * len(jobs)
        if self.database_up:
            try:
                with self.engine.begin() as conn:
                    # In key order: two processes' batches with the same redeliveries then wait for
                    # each other in one order, never in a cycle (PostgreSQL's unique index waits).
                    for i in sorted(range(len(jobs)), key=lambda i: (jobs[i].delivery.account_id,
                                                                     jobs[i].delivery.dedupe_key)):
                        outcomes[i] = insert_delivery(conn, jobs[i].delivery, jobs[i].answer)[0]
            except Exception as exc:
                self._failed(exc)
                outcomes = [None] * len(jobs)
        for i, outcome in enumerate(outcomes):
            if outcome is None:
                outcomes[i] = self._to_spool(jobs[i].delivery)
        self._wrote.set()
        if self.database_up and clear_throttled("callback.store"):
            log_throttled("callback.recovered", "INFO", "WeChat deliveries are stored in the database again")
        return outcomes  # type: ignore[return-value]

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, DBAPIError):
            self._down_until = time.monotonic() + RETRY_S
            log_throttled("callback.store", "ERROR", "cannot store WeChat deliveries in the database ({}); "
                          "keeping them in the spool {}", type(exc.orig or exc).__name__, self.spool.directory)
        else:
            log_throttled("callback.store.bug", "ERROR", "storing a WeChat delivery failed; kept in the spool",
                          exception=True)

    def _to_spool(self, delivery: Delivery) -> Stored | BaseException:
        try:
            if not self.spool.nonce_fresh(delivery):
                return Stored(Outcome.REPLAY)
            self.spool.put(delivery)
            return Stored(Outcome.SPOOLED)
        except OSError as exc:  # neither database nor disk: not acknowledged, WeChat retries
            log_throttled("callback.spool", "CRITICAL", "cannot write the spool {}: {}", self.spool.directory,
                          type(exc).__name__)
            return exc


def _sqlite_writer_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA wal_autocheckpoint=0")
    cur.close()


def _resolve(results: list[tuple[asyncio.Future, Stored | BaseException]]) -> None:
    for future, outcome in results:
        if future.done():  # the client went away
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
