"""Exactly-once publishing of due posts (定时发布): publications are rows claimed with a lease.

A short APScheduler tick, and a wake-up every WAKE_S in between, claim publications (bot.db.claim:
SKIP LOCKED on PostgreSQL, a compare-and-set lease everywhere) in batches and hand them to a small
thread pool; finished threads claim the next ones at once, so a burst of due posts does not wait for
the next tick. A burst is served submits first: a batch is checked and recorded as started in one
transaction, and what follows the platform's acceptance (the published record and its audit event,
settling posts and their notices) waits until no publishing call is under way. For each publication
(bot.publishing.attempts):

1. The attempt is recorded (state publishing, attempts, first_attempt_at) BEFORE any platform call,
   and the connector reports every id the platform hands back (cover, draft, publish job) through
   `progress`, committed before its next call.
2. An attempt that finds the publication started before (first_attempt_at set: a retry, or a worker
   that died with the lease) first asks the platform whether the post is already there
   (connector.find_published, from the stored ids or the account's recent posts) and publishes only
   if it is not. This is what keeps a post to one copy when a process dies between the platform's
   answer and the database write.
3. Before publishing, the post must still have the content hash that was scheduled (an edit cancels
   the publication) and pass the pre-publish checks again (bot.publishing.checks).
4. Transient errors retry with bounded exponential backoff and jitter; permanent ones, and the last
   allowed attempt, end in state failed with the platform's message in last_error.
5. Two waits are never failures and use up no attempt: a budget spent (QuotaWait: the publication
   waits for the next window, step "quota:<api>") and a WeChat article submitted whose outcome is
   still to come (AwaitingOutcome, step "awaiting_push"): the PUBLISHJOBFINISH push settles it
   (bot.publishing.outcome); freepublish/get is asked only at scheduler.publish_status_checks_s.

Publications never attempted are claimed up to PREPARE_AHEAD before their time: checked, recorded as
started, and prepared on the platform as far as nothing becomes public (WeChat cover and draft); they
then wait in this process, still leased, and at their time only the publishing call is left (after
a last look at the content hash and the account). A post due at 09:00 goes out at 09:00 even when
two hundred others are due with it.

Every write is fenced on lease_owner: a worker whose lease was taken over stops without writing. The
tick renews the leases of everything the process holds, and settles the posts whose publications
have all ended (published, partially_failed or failed).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import and_, or_, update
from sqlmodel import select

from bot.clock import utcnow
from bot.connectors.base import PlatformError
from bot.connectors.registry import close_all, connector_for
from bot.context import Context
from bot.db import claim, write_lock
from bot.errors import text_zh
from bot.logthrottle import log_throttled
from bot.models import Account, Media, Post, Publication
from bot.publishing.attempts import (
    ID_COLUMNS,
    PUBLICATION,
    Attempt,
    Attempts,
    LeaseLost,
    Published,
    edited,
)
from bot.publishing.outcome import ACTIVE
from bot.publishing.settle import settle_posts

# Publishing threads per process; most of a thread's time is spent waiting on the platform.
THREADS = 16
# Never attempted publications are claimed this long before their time, to be prepared.
PREPARE_AHEAD = timedelta(seconds=30)
# Prepared publications one process keeps waiting for their time, at most.
WAITING_LIMIT = 1000
# How often a process looks for newly due publications (at most tick_seconds): a post committed as
# due is seen this soon.
WAKE_S = 0.1
# Publications the platform took are recorded once the burst's calls are done, at most this late.
RECORD_DELAY = timedelta(seconds=1)
# Posts are settled when no publishing call is under way, and at least this often.
SETTLE_AT_LEAST_S = 5.0
def _logged(pub_id: int | None, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn's result, or None after logging a lost lease or a bug: the lease lapses and another attempt
    reconciles, so the row is never lost."""
    try:
        return fn(*args, **kwargs)
    except LeaseLost as e:
        logger.warning("publication {}: {}", pub_id, e)
    except Exception:
        logger.exception("publication {}: unexpected error", pub_id)
    return None


class Publisher(Attempts):
    """The publishing side of one worker process: claims publications and publishes them.

    A burst is served submits first: publications are claimed, checked and recorded as started in
    batches (one transaction per batch), the platform calls run in the thread pool, and what follows
    a platform's acceptance (the published record, its audit event, settling the posts) waits until
    no publishing call is queued or running, at most RECORD_DELAY. Until then the publication stays
    leased by this process: a crash leaves it to another worker, which reconciles with the platform.
    """

    def __init__(self, ctx: Context, threads: int = THREADS):
        self.ctx = ctx
        cfg = ctx.config.scheduler
        self.owner = ctx.worker_id
        self.lease = timedelta(seconds=cfg.lease_seconds)
        self.threads = threads
        # Publications queued for or in a thread, at most (those waiting for their time are not counted).
        self.capacity = threads + cfg.batch_size
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="publish")
        self.inflight: set[int] = set()  # every publication this process holds the lease of
        self._queued = 0  # tasks submitted to the pool, not started yet
        self._running = 0  # tasks in a pool thread
        # (due_at, seq, publication id, prepared attempt or None): waiting for their time, a heap.
        self._waiting: list[tuple[datetime, int, int, Attempt | None]] = []
        self._seq = itertools.count()
        self._unrecorded: list[Published] = []  # taken by the platform, not recorded yet
        self._unrecorded_since = 0.0  # monotonic time of the oldest of them
        self._lock = threading.Condition()  # guards the above; wakes the timer and the recorder
        self._fill_lock = threading.Lock()
        self._filling = False  # claimed publications' attempts are being started
        self._stopping = threading.Event()
        self._renewed_at = time.monotonic()
        self._settled_at = 0.0
        # SQLite has one writer at a time: this process's writers (the quota ledger too) queue on one lock,
        # woken at once, instead of in SQLite's busy handler, which sleeps in growing steps.
        self._write_lock: AbstractContextManager[Any] = write_lock(ctx.engine)
        self._threads = [threading.Thread(target=target, name=name, daemon=True) for target, name in (
            (self._release_due, "publish-timer"), (self._record_published, "publish-recorder"),
            (self._watch, "publish-watch"))]
        self._warm_up()
        for thread in self._threads:
            thread.start()

    def _warm_up(self) -> None:
        """Build the accounts' connectors (HTTP pools, wechatpy's import) and read or fetch the WeChat access
        tokens (shared by all processes, valid two hours) before the first claim: the first burst after a
        start does not pay for them. A failure here only leaves it to the first call."""
        with self.ctx.session() as session:
            accounts = list(session.exec(select(Account).where(Account.enabled)))
        for account in accounts:
            try:
                connector_for(self.ctx, account).warm_up()
            except Exception as e:
                logger.warning("account {}: connector not ready ahead ({}); tried again at its first call",
                               account.name, e)

    # ---- claiming and timing ------------------------------------------------------------

    def tick(self) -> None:
        self.renew_leases()
        self.fill()
        # Settling posts (audit, notices) is bookkeeping: it waits while publishing calls are under way.
        if not self._calling() or time.monotonic() - self._settled_at > SETTLE_AT_LEAST_S:
            self._settled_at = time.monotonic()
            settle_posts(self.ctx, writing=self._writing)

    def _calling(self) -> bool:
        """Publications are being claimed, or publishing tasks are queued or running (a burst is under way)."""
        return self._filling or self._queued + self._running > 0

    def _watch(self) -> None:
        """Looks for newly due publications every WAKE_S: a post committed as due goes out without
        waiting for the next tick."""
        while not self._stopping.wait(min(WAKE_S, self.ctx.config.scheduler.tick_seconds)):
            try:
                self.fill()
            except Exception:
                log_throttled("publishing.watch", "ERROR", "looking for due publications failed", exception=True)

    def fill(self) -> None:
        """Claim publications while there is room; one claimer at a time per process."""
        if self._stopping.is_set() or not self._fill_lock.acquire(blocking=False):
            return
        try:
            while not self._stopping.is_set():
                with self._lock:
                    busy = len(self.inflight) - len(self._waiting) - len(self._unrecorded)
                    room = min(self.capacity - busy, WAITING_LIMIT - len(self.inflight))
                    # Claim in batches (each claim is a transaction), but never let the threads run dry.
                    if room <= 0 or (room < self.threads and self._queued > 0):
                        return
                claimed = self._claim(min(room, self.ctx.config.scheduler.batch_size))
                if not claimed:
                    return
                self._filling = True
                now = utcnow()
                ahead = [(pub_id, due_at) for pub_id, due_at, fresh in claimed if due_at > now and fresh]
                for pub_id, due_at, fresh in claimed:
                    if due_at > now and not fresh:
                        self._wait_until(due_at, pub_id, None)
                self._start([pub_id for pub_id, due_at, _ in claimed if due_at <= now])
                due_of = dict(ahead)
                with self._or_let_go(list(due_of), "preparing"):
                    for attempt in self._begin(list(due_of)):
                        self._submit(attempt.pub.id, self._prepare, attempt, due_of[attempt.pub.id])
        finally:
            self._filling = False
            self._fill_lock.release()
            with self._lock:
                if not self._calling():
                    self._lock.notify_all()  # the recorder waits for the calls (and claims) to end

    def _start(self, pub_ids: list[int]) -> None:
        """Due now: begin the attempts (one batch) and hand each to a thread for its platform calls."""
        with self._or_let_go(pub_ids, "starting"):
            for attempt in self._begin(pub_ids):
                self._submit(attempt.pub.id, self._publish, attempt)

    @contextmanager
    def _or_let_go(self, pub_ids: list[int], what: str) -> Iterator[None]:
        """Work on a batch this process holds; if it fails, the batch is let go: no longer renewed, the
        leases lapse and a later claim tries again (reconciling with the platform where it had started)."""
        try:
            yield
        except Exception:
            logger.exception("{} publications {} failed; tried again once their leases lapse", what, pub_ids)
            with self._lock:
                self.inflight.difference_update(pub_ids)

    def _claim(self, limit: int) -> list[tuple[int, datetime, bool]]:
        """Claim publications due before the next tick, and never attempted ones due within PREPARE_AHEAD."""
        now = utcnow()
        soon = now + timedelta(seconds=self.ctx.config.scheduler.tick_seconds)
        due = or_(Publication.next_attempt_at <= soon,
                  and_(Publication.first_attempt_at.is_(None), Publication.next_attempt_at <= now + PREPARE_AHEAD))
        with self._writing() as session:
            rows = claim(session, Publication, [Publication.state.in_(ACTIVE), due], owner=self.owner,
                         lease=self.lease, limit=limit, order_by=Publication.next_attempt_at, now=now)
        taken = []
        with self._lock:
            for row in rows:
                # Our own lease lapsed and we re-claimed a row still being worked on: leave it to that thread.
                if row.id not in self.inflight:
                    self.inflight.add(row.id)
                    taken.append((row.id, row.next_attempt_at, row.first_attempt_at is None))
        return taken

    def _submit(self, pub_id: int, fn: Callable[..., bool | None], *args: Any) -> None:
        """Run fn(*args) in a thread; the publication stays held only if fn put it to wait (returned True)."""
        with self._lock:
            if self._stopping.is_set():
                self.inflight.discard(pub_id)
                return
            self._queued += 1
        self.pool.submit(self._run, pub_id, fn, *args)

    def _wait_until(self, due_at: datetime, pub_id: int, attempt: Attempt | None) -> None:
        with self._lock:
            heapq.heappush(self._waiting, (due_at, next(self._seq), pub_id, attempt))
            self._lock.notify_all()

    def _release_due(self) -> None:
        """The timer thread: at their time, hands the waiting publications to the pool, all that are due at once."""
        with self._lock:
            while not self._stopping.is_set():
                if not self._waiting:
                    self._lock.wait()
                    continue
                delay = (self._waiting[0][0] - utcnow()).total_seconds()
                if delay > 0:
                    self._lock.wait(delay)
                    continue
                now = utcnow()
                due: list[tuple[int, Attempt | None]] = []
                while self._waiting and self._waiting[0][0] <= now:
                    _, _, pub_id, attempt = heapq.heappop(self._waiting)
                    due.append((pub_id, attempt))
                self._queued += 1
                self.pool.submit(self._run, None, self._release, due)

    def _release(self, due: list[tuple[int, Attempt | None]]) -> None:
        """Publications whose time came: prepared ones get their last look (one query for all), then each its call."""
        self._start([pub_id for pub_id, attempt in due if attempt is None])
        prepared = [attempt for _, attempt in due if attempt is not None]
        ids = [attempt.pub.id for attempt in prepared]
        with self._or_let_go(ids, "releasing prepared"):
            self._last_looks(prepared)

    def _last_looks(self, prepared: list[Attempt]) -> None:
        if not prepared:
            return
        ids = [attempt.pub.id for attempt in prepared]
        with self.ctx.session() as session:
            enabled = select(Account.enabled).where(Account.id == Publication.account_id).scalar_subquery()
            rows = {row.id: row for row in session.execute(
                select(Publication.id, Post.content_hash, Post.version, enabled.label("enabled"),
                       Publication.lease_owner, Publication.lease_until)
                .join(Post, Post.id == Publication.post_id).where(Publication.id.in_(ids)))}
        now = utcnow()
        stale = [i for i in ids if i in rows and rows[i].lease_until - now < self.lease / 2]
        if stale:
            # The tick renews leases; after a stall, renew before the calls rather than risk a lapse during them.
            with self._updating() as session:
                session.execute(update(PUBLICATION).where(PUBLICATION.c.id.in_(stale),
                                                          PUBLICATION.c.lease_owner == self.owner)
                                .values(lease_until=now + self.lease))
        for attempt in prepared:
            self._submit(attempt.pub.id, self._last_look, attempt, rows.get(attempt.pub.id))

    def _last_look(self, attempt: Attempt, row: Any) -> bool:
        """At its time, a prepared publication: still ours, content unchanged, account enabled; then the call."""
        pub = attempt.pub
        if row is None or row.lease_owner != self.owner:
            raise LeaseLost("lease.lost", owner=self.owner)
        if row.content_hash != pub.content_hash:
            self._finish(pub, **edited(pub.post_id, row.version))
        elif not row.enabled:
            self._fail(pub, attempt.account, text_zh("publication.account_disabled", account=attempt.account.name))
        else:
            return self._publish(attempt)
        return False

    def _run(self, pub_id: int | None, fn: Callable[..., bool | None], *args: Any) -> None:
        """A pool task; the publication stays held only if `fn` put it to wait (returned True)."""
        with self._lock:
            self._queued -= 1
            self._running += 1
        waiting = False
        try:
            if not self._stopping.is_set():
                waiting = bool(_logged(pub_id, fn, *args))
        finally:
            with self._lock:
                self._running -= 1
                if not waiting and pub_id is not None:
                    self.inflight.discard(pub_id)
                if not self._calling():
                    self._lock.notify_all()  # the recorder waits for the calls to end
        self.fill()

    def _record_published(self) -> None:
        """The recorder thread: writes what the platforms took, many in one transaction, once no publishing
        call is queued or running (at most RECORD_DELAY after the oldest)."""
        while True:
            with self._lock:
                while not self._unrecorded and not self._stopping.is_set():
                    self._lock.wait()
                while self._unrecorded and self._calling() and not self._stopping.is_set():
                    left = self._unrecorded_since + RECORD_DELAY.total_seconds() - time.monotonic()
                    if left <= 0:
                        break
                    self._lock.wait(left)
                batch, self._unrecorded = self._unrecorded, []
            if batch:
                self._record(batch)
                self.fill()
            elif self._stopping.is_set():
                return

    def renew_leases(self) -> None:
        """Extend the leases of everything this process holds, every third of a lease."""
        if time.monotonic() - self._renewed_at < self.lease.total_seconds() / 3:
            return
        self._renewed_at = time.monotonic()
        with self._lock:
            ids = list(self.inflight)
        if not ids:
            return
        with self._updating() as session:
            session.execute(update(PUBLICATION).where(PUBLICATION.c.id.in_(ids), PUBLICATION.c.lease_owner == self.owner)
                            .values(lease_until=utcnow() + self.lease))

    def stop(self) -> None:
        """Stop claiming, interrupt WeChat polls, record what the platforms took, and hand back the leases
        of what did not finish."""
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        close_all(self.ctx)
        self.pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            batch, self._unrecorded = self._unrecorded, []
        if batch:
            self._record(batch)
        with self._lock:
            ids = list(self.inflight)
            self.inflight.clear()
            self._waiting.clear()
        if ids:
            with self._updating() as session:
                session.execute(update(PUBLICATION)
                                .where(PUBLICATION.c.id.in_(ids), PUBLICATION.c.lease_owner == self.owner)
                                .values(lease_owner=None, lease_until=None))

    # ---- one publication ----------------------------------------------------------------

    def _prepare(self, attempt: Attempt, due_at: datetime) -> bool:
        """Ahead of its time (the attempt recorded as started): prepare what is not public, then wait."""
        if not attempt.reconcile:
            try:
                connector_for(self.ctx, attempt.account).prepare(
                    attempt.outgoing, progress=self._progress_of(attempt), resume=attempt.resume)
            except PlatformError as e:
                # Publishing does the rest at the due time, and handles the error if it persists.
                logger.info("publication {}: preparing failed ({}); left to publishing", attempt.pub.id, e)
        self._wait_until(due_at, attempt.pub.id, attempt)
        return True

    def _begin(self, pub_ids: list[int]) -> list[Attempt]:
        """Load the publications (one query each for them, their posts and accounts), check first attempts,
        and record the attempts as started before any platform call, in one transaction."""
        if not pub_ids:
            return []
        attempts, refused = [], []
        with self.ctx.session() as session:
            pubs = [p for p in session.exec(select(Publication).where(Publication.id.in_(pub_ids)))
                    if p.lease_owner == self.owner and p.state in ACTIVE]
            posts = {p.id: p for p in session.exec(select(Post).where(Post.id.in_({p.post_id for p in pubs})))}
            accounts = {a.id: a for a in session.exec(
                select(Account).where(Account.id.in_({p.account_id for p in pubs})))}
            # The covers in one query, held here: the session keeps no unreferenced row, so each
            # publication's session.get (attempts._outgoing) would read its cover again.
            covers = list(session.exec(select(Media).where(
                Media.id.in_({p.cover_media_id for p in posts.values() if p.cover_media_id is not None}))))
            resumes = {pub.id: {name: getattr(pub, col) for name, col in ID_COLUMNS.items() if getattr(pub, col)}
                       for pub in pubs}
            # A first attempt is checked right away; a later one reconciles with the platform first.
            refusals = self._refusals(session, [pub for pub in pubs if pub.first_attempt_at is None
                                                and "publish_id" not in resumes[pub.id]], posts)
            for pub in pubs:
                post, resume, started = posts[pub.post_id], resumes[pub.id], pub.first_attempt_at is not None
                if pub.id in refusals:
                    refused.append((pub, refusals[pub.id]))
                    continue
                attempts.append(Attempt(pub=pub, account=accounts[pub.account_id],
                                        outgoing=self._outgoing(session, pub, post), resume=resume,
                                        number=pub.attempts + 1, reconcile=started))
            del covers
        with self._lock:
            for pub_id in set(pub_ids) - {a.pub.id for a in attempts} - {pub.id for pub, _ in refused}:
                self.inflight.discard(pub_id)  # no longer ours or no longer active
        for pub, refusal in refused:
            self._held(pub.id, self._finish, pub, **refusal)
        now = utcnow()
        begun = []
        with self._updating() as session:
            for attempt in attempts:
                pub = attempt.pub
                if self._fenced_ok(session, pub.id, {
                        "state": "publishing", "attempts": attempt.number, "step": pub.step or "started",
                        "first_attempt_at": pub.first_attempt_at or now, "lease_until": now + self.lease}):
                    begun.append(attempt)
        with self._lock:
            self.inflight.difference_update({a.pub.id for a in attempts} - {a.pub.id for a in begun})
        return begun

    def _held(self, pub_id: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """fn for a publication this thread holds, then let it go."""
        try:
            _logged(pub_id, fn, *args, **kwargs)
        finally:
            with self._lock:
                self.inflight.discard(pub_id)

# ---- the worker's job and start-up --------------------------------------------------------

_publishers: dict[int, Publisher] = {}
_publishers_lock = threading.Lock()


def publisher_for(ctx: Context) -> Publisher:
    with _publishers_lock:
        publisher = _publishers.get(id(ctx))
        if publisher is None:
            publisher = _publishers[id(ctx)] = Publisher(ctx)
        return publisher


def start(ctx: Context) -> None:
    """At start, before the first tick: the publisher, with its connectors ready."""
    publisher_for(ctx)


def tick(ctx: Context) -> None:
    """The scheduler job: renew leases, claim due publications, publish them, settle their posts."""
    publisher_for(ctx).tick()


def stop(ctx: Context) -> None:
    """At shutdown: finish or hand back what this process holds."""
    with _publishers_lock:
        publisher = _publishers.pop(id(ctx), None)
    if publisher is not None:
        publisher.stop()
