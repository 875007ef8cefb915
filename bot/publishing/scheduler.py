"""Exactly-once publishing of due posts (定时发布): publications are rows claimed with a lease.

A short APScheduler tick claims publications (bot.db.claim: SKIP LOCKED on PostgreSQL, a
compare-and-set lease everywhere) and hands them to a small thread pool; finished threads claim the
next ones at once, so a burst of due posts does not wait for the next tick. For each publication:

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
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import and_, func, or_, update
from sqlalchemy.engine import Connection
from sqlmodel import Session, select

from bot import audit
from bot.clock import utcnow
from bot.connectors.base import (
    AwaitingOutcome,
    Cover,
    OutgoingPost,
    PermanentError,
    PlatformError,
    ProgressFn,
    PublishResult,
    TransientError,
)
from bot.connectors.quota import WAITING_STEP, QuotaWait
from bot.connectors.registry import close_all, connector_for
from bot.context import Context
from bot.db import claim, write_lock
from bot.errors import GovbotError, text_zh
from bot.logthrottle import log_throttled
from bot.models import Account, Media, Post, Publication
from bot.publishing.images import body_images
from bot.publishing.outcome import ACTIVE, next_status_check
from bot.publishing.settle import settle_posts

PUBLICATION = Publication.__table__  # fenced writes go through the table: no ORM bookkeeping per row
AWAITING = "awaiting_push"  # Publication.step of a submitted WeChat job waiting for its outcome
# Reconciling looks this far before the first attempt: platform clocks differ from ours.
SINCE_MARGIN = timedelta(minutes=5)
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
# Connector id names -> Publication columns.
ID_COLUMNS = {"media_id": "remote_media_id", "draft_id": "remote_draft_id", "publish_id": "remote_publish_id",
              "msg_data_id": "remote_msg_data_id"}


class LeaseLost(GovbotError):
    """Another worker took the publication over (our lease had lapsed): stop without writing."""


def backoff_seconds(attempt: int, *, base: float, cap: float, retry_after: float | None = None,
                    rng: random.Random | None = None) -> float:
    """Delay before attempt `attempt + 1`: exponential, capped, with jitter (half to full delay)."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    delay *= (rng or random).uniform(0.5, 1.0)
    if retry_after:
        delay = max(delay, retry_after)
    return min(cap, delay)


@dataclass
class Attempt:
    """One attempt at a publication, recorded as started: what the platform calls need."""

    pub: Publication  # as loaded when the attempt started (detached)
    account: Account
    outgoing: OutgoingPost
    resume: dict[str, str]  # the stored ids, updated as `progress` reports new ones
    number: int
    # Started before this attempt: the platform may already have the post.
    reconcile: bool
    # Ids of the submit's answer, stored with the outcome right after it (no platform call in between).
    submitted: dict[str, str] = field(default_factory=dict)


@dataclass
class Published:
    """A publication the platform took, waiting to be recorded with others after the burst's submits."""

    pub: Publication
    account: Account
    result: PublishResult
    reconciled: bool


class Publisher:
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
        self._filling = False  # a claim and its attempts' start are under way
        self._stopping = threading.Event()
        self._renewed_at = time.monotonic()
        self._settled_at = 0.0
        # SQLite has one writer at a time: this process's writers (the quota ledger too) queue on one lock,
        # woken at once, instead of in SQLite's busy handler, which sleeps in growing steps.
        self._write_lock: AbstractContextManager[Any] = write_lock(ctx.engine)
        self._threads = [threading.Thread(target=target, name=name, daemon=True) for target, name in (
            (self._release_due, "publish-timer"), (self._record_published, "publish-recorder"),
            (self._watch, "publish-watch"))]
        for thread in self._threads:
            thread.start()

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A short write transaction."""
        with self._write_lock, self.ctx.session() as session:
            yield session

    @contextmanager
    def _updating(self) -> Iterator[Connection]:
        """A short write transaction of plain UPDATEs: no ORM session to set up for it."""
        with self._write_lock, self.ctx.engine.begin() as conn:
            yield conn

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
        try:
            # Connectors are built ahead (HTTP pools, wechatpy's import): the first burst does not pay for it.
            with self.ctx.session() as session:
                accounts = list(session.exec(select(Account).where(Account.enabled)))
            for account in accounts:
                connector_for(self.ctx, account)
        except Exception:
            logger.exception("building the accounts' connectors ahead failed; they are built at first use")
        while not self._stopping.wait(min(WAKE_S, self.ctx.config.scheduler.tick_seconds)):
            try:
                self.fill()
            except Exception:
                log_throttled("publishing.watch", "ERROR", "looking for due publications failed", exception=True)

    def fill(self) -> None:
        """Claim publications while there is room; one claimer at a time per process."""
        if self._stopping.is_set() or not self._fill_lock.acquire(blocking=False):
            return
        self._filling = True
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
                now = utcnow()
                ahead = [(pub_id, due_at) for pub_id, due_at, fresh in claimed if due_at > now and fresh]
                for pub_id, due_at, fresh in claimed:
                    if due_at > now and not fresh:
                        self._wait_until(due_at, pub_id, None)
                self._start([pub_id for pub_id, due_at, _ in claimed if due_at <= now])
                due_of = dict(ahead)
                for attempt in self._begin([pub_id for pub_id, _ in ahead]):
                    self._submit(attempt.pub.id, self._prepare, attempt, due_of[attempt.pub.id])
        finally:
            self._filling = False
            self._fill_lock.release()
            with self._lock:
                self._lock.notify_all()  # the recorder waits for the calls (and claims) to end

    def _start(self, pub_ids: list[int]) -> None:
        """Due now: begin the attempts (one batch) and hand each to a thread for its platform calls."""
        for attempt in self._begin(pub_ids):
            self._submit(attempt.pub.id, self._publish, attempt)

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
                waiting = bool(fn(*args))
        except LeaseLost as e:
            logger.warning("publication {}: {}", pub_id, e)
        except Exception:
            # The lease lapses and another attempt reconciles; never lose the row.
            logger.exception("publication {}: unexpected error", pub_id)
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
            elif self._stopping.is_set():
                return

    def _record(self, batch: list[Published]) -> None:
        """Record publications the platforms took (state published, audit event), in one transaction."""
        recorded = []
        try:
            with self._writing() as session:
                for item in batch:
                    values: dict[str, Any] = {
                        "state": "published", "step": "done", "remote_id": item.result.remote_id,
                        "remote_url": item.result.url, "last_error": None, "lease_owner": None, "lease_until": None,
                        # A submit accepted earlier recorded its time already (_await_outcome): that one stays.
                        "published_at": func.coalesce(PUBLICATION.c.published_at,
                                                      item.result.published_at or utcnow())}
                    if item.result.msg_data_id:
                        values["remote_msg_data_id"] = item.result.msg_data_id
                    if not self._fenced_ok(session, item.pub.id, values):
                        logger.warning("publication {}: {}", item.pub.id, LeaseLost("lease.lost", owner=self.owner))
                        continue
                    audit.record(session=session, actor="system", action="publication.published",
                                 subject_type="publication", subject_id=item.pub.id,
                                 content_hash=item.pub.content_hash, post_id=item.pub.post_id,
                                 account=item.account.name, remote_id=item.result.remote_id, url=item.result.url,
                                 reconciled=item.reconciled)
                    recorded.append(item)
        except Exception:
            # Still leased by this process until the lease lapses: another attempt reconciles with the platform.
            logger.exception("recording {} published publications failed", len(batch))
        finally:
            with self._lock:
                for item in batch:
                    self.inflight.discard(item.pub.id)
        for item in recorded:
            logger.info("publication {} (post {}) published on {} as {}{}", item.pub.id, item.pub.post_id,
                        item.account.name, item.result.remote_id,
                        " (found on the platform after an interrupted attempt)" if item.reconciled else "")
        self.fill()

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
            fn(*args, **kwargs)
        except LeaseLost as e:
            logger.warning("publication {}: {}", pub_id, e)
        except Exception:
            logger.exception("publication {}: unexpected error", pub_id)
        finally:
            with self._lock:
                self.inflight.discard(pub_id)

    def _publish(self, attempt: Attempt) -> bool:
        """The platform calls of one attempt; True when the publication waits for the recorder."""
        pub, account, outgoing, resume = attempt.pub, attempt.account, attempt.outgoing, attempt.resume
        connector = connector_for(self.ctx, account)
        try:
            if attempt.reconcile:
                found = connector.find_published(outgoing, since=pub.first_attempt_at - SINCE_MARGIN, resume=resume)
                if found is not None:
                    return self._taken(attempt, found, reconciled=True)
                # A submitted WeChat job can no longer be stopped: follow it whatever the checks would say now.
                if "publish_id" not in resume:
                    with self.ctx.session() as session:
                        post = session.get(Post, pub.post_id)
                        refusal = self._refusals(session, [pub], {post.id: post}).get(pub.id)
                    if refusal is not None:
                        self._finish(pub, **refusal)
                        return False
            result = connector.publish(outgoing, progress=self._progress_of(attempt), resume=resume)
        except QuotaWait as e:
            self._defer(attempt, until=e.until, step=f"{WAITING_STEP}{e.api}", error=str(e))
            return False
        except AwaitingOutcome as e:
            self._await_outcome(attempt, str(e))
            return False
        except TransientError as e:
            if resume.get("publish_id"):
                # Submitted: the platform has the post. A status check that failed is asked again later,
                # never counted against the attempts (a post accepted is never failed for lack of a status).
                self._await_outcome(attempt, f"status check failed ({e}); asked again later")
            else:
                self._retry(pub, account, attempt.number, e.message_zh, e.retry_after)
            return False
        except PermanentError as e:
            self._fail(pub, account, e.message_zh)
            return False
        except LeaseLost:
            raise
        except Exception as e:
            logger.exception("publication {}: unexpected error while publishing", pub.id)
            self._retry(pub, account, attempt.number, text_zh("publication.internal", error=f"{type(e).__name__}: {e}"),
                        None)
            return False
        if result.pending:
            self._await_outcome(attempt, "submitted; waiting for the platform's PUBLISHJOBFINISH",
                                accepted_at=result.published_at)
            return False
        return self._taken(attempt, result, reconciled=False)

    def _taken(self, attempt: Attempt, result: PublishResult, *, reconciled: bool) -> bool:
        """The platform has the post: the recorder thread records it once the burst's calls are done."""
        with self._lock:
            if not self._unrecorded:
                self._unrecorded_since = time.monotonic()
            self._unrecorded.append(Published(attempt.pub, attempt.account, result, reconciled))
            self._lock.notify_all()
        return True

    def _outgoing(self, session: Session, pub: Publication, post: Post) -> OutgoingPost:
        cover = None
        if post.cover_media_id is not None:
            media = session.get(Media, post.cover_media_id)
            if media is not None:
                cover = Cover(filename=media.filename, data=media.data, mime=media.mime)
        return OutgoingPost(publication_id=pub.id, title=post.title, body=post.body, digest=post.digest,
                            weibo_text=post.weibo_text, cover=cover, author=post.byline,
                            open_comment=post.open_comment, images=body_images(session, post.body))

    def _fenced_ok(self, session: Session | Connection, pub_id: int, values: dict[str, Any]) -> bool:
        """Write `values` if the publication is still ours and active (a PUBLISHJOBFINISH push may have
        settled it meanwhile)."""
        result = session.execute(update(PUBLICATION)
                                 .where(PUBLICATION.c.id == pub_id, PUBLICATION.c.lease_owner == self.owner,
                                        PUBLICATION.c.state.in_(ACTIVE))
                                 .values(**values))
        return result.rowcount == 1

    def _fenced(self, session: Session | Connection, pub_id: int, **values: Any) -> None:
        if not self._fenced_ok(session, pub_id, values):
            raise LeaseLost("lease.lost", owner=self.owner)

    def _progress_of(self, attempt: Attempt) -> ProgressFn:
        """The connector's `progress`: store the step and ids before its next call, and keep them for a retry.

        The submit's ids (step awaiting_push) precede no further call: they are stored with the outcome,
        written right after, in one transaction."""
        def progress(step: str, ids: dict[str, str]) -> None:
            attempt.resume.update(ids)
            if step == AWAITING:
                attempt.submitted.update(ids)
                return
            values: dict[str, Any] = {"step": step, "lease_until": utcnow() + self.lease}
            values.update({ID_COLUMNS[name]: value for name, value in ids.items() if name in ID_COLUMNS})
            with self._updating() as session:
                self._fenced(session, attempt.pub.id, **values)

        return progress

    def _refusals(self, session: Session, pubs: list[Publication], posts: dict[int, Post]) -> dict[int, dict[str, str]]:
        """The pre-publish look, for a batch: how each publication ends if its content changed or a check
        fails (by publication id; the others are not in it)."""
        from bot.publishing.checks import recheck_publications

        refusals: dict[int, dict[str, str]] = {}
        for pub in pubs:
            post = posts[pub.post_id]
            if post.content_hash != pub.content_hash:
                refusals[pub.id] = edited(post.id, post.version)
            elif pub.account_id not in (post.target_account_ids or []):
                # Whatever wrote this row, nobody signed this post for this account.
                refusals[pub.id] = {"state": "cancelled", "action": "publication.cancelled", "level": "ERROR",
                                    "error": f"account {pub.account_id} was not signed for post {post.id}; not published"}
        checked = recheck_publications(session=session, ctx=self.ctx,
                                       publications=[pub for pub in pubs if pub.id not in refusals])
        for pub_id, problems in checked.items():
            if problems:
                refusals[pub_id] = {"state": "failed", "action": "publication.check_failed", "level": "ERROR",
                                    "error": text_zh("publication.checks_failed",
                                                     problems="；".join(p.located_zh for p in problems))}
        return refusals

    # ---- outcomes -----------------------------------------------------------------------

    def _defer(self, attempt: Attempt, *, until: datetime, step: str, error: str, **values: Any) -> None:
        """Wait until `until` without using up the attempt: a spent budget or a job still running is no failure."""
        state = "publishing" if attempt.resume.get("publish_id") else "pending"
        values.update({ID_COLUMNS[name]: value for name, value in attempt.submitted.items() if name in ID_COLUMNS})
        with self._updating() as session:
            self._fenced(session, attempt.pub.id, state=state, step=step, attempts=attempt.number - 1,
                         next_attempt_at=until, last_error=error, lease_owner=None, lease_until=None, **values)
        # A submitted job waiting for its outcome is the normal case: not worth a line per post at INFO.
        logger.log("DEBUG" if step == AWAITING else "INFO", "publication {} on {}: {}; next look at {}",
                   attempt.pub.id, attempt.account.name, error, until.isoformat())

    def _await_outcome(self, attempt: Attempt, why: str, accepted_at: datetime | None = None) -> None:
        """Submitted to WeChat: the push settles it; freepublish/get only at the configured check times.

        The submit's acceptance is when the article went out: kept as published_at (counted only once
        the state is published). Written at once with the submit's publish_id: the push finds it by that."""
        checks = self.ctx.config.scheduler.publish_status_checks_s
        due = attempt.pub.due_at if attempt.pub.due_at.tzinfo else attempt.pub.due_at.replace(tzinfo=UTC)
        now = utcnow()
        until = now + timedelta(seconds=next_status_check((now - due).total_seconds(), checks))
        self._defer(attempt, until=until, step=AWAITING, error=why,
                    **({"published_at": accepted_at} if accepted_at else {}))

    def _retry(self, pub: Publication, account: Account, attempt: int, error: str, retry_after: float | None) -> None:
        cfg = self.ctx.config.scheduler
        if attempt >= cfg.max_attempts:
            self._fail(pub, account, text_zh("publication.gave_up", attempts=attempt, error=error))
            return
        delay = backoff_seconds(attempt, base=cfg.backoff_base_s, cap=cfg.backoff_max_s, retry_after=retry_after)
        with self._updating() as session:
            self._fenced(session, pub.id, state="pending", next_attempt_at=utcnow() + timedelta(seconds=delay),
                         last_error=error, lease_owner=None, lease_until=None)
        logger.warning("publication {} on {}: attempt {} failed ({}); retrying in {:.1f} s", pub.id, account.name,
                       attempt, error, delay)

    def _fail(self, pub: Publication, account: Account, error: str) -> None:
        self._finish(pub, state="failed", action="publication.failed", level="ERROR", error=error,
                     account=account.name)

    def _finish(self, pub: Publication, *, state: str, action: str, level: str, error: str, **detail: Any) -> None:
        values: dict[str, Any] = {"state": state, "last_error": error, "lease_owner": None, "lease_until": None}
        if self._discard_draft(pub):
            # A later reschedule then makes a new draft instead of looking for a submit of this one.
            values["remote_draft_id"] = None
        with self._writing() as session:
            self._fenced(session, pub.id, **values)
            audit.record(session=session, actor="system", action=action, subject_type="publication", subject_id=pub.id,
                         content_hash=pub.content_hash, post_id=pub.post_id, error=error, **detail)
        logger.log(level, "publication {} (post {}) {}: {}", pub.id, pub.post_id, state, error)

    def _discard_draft(self, pub: Publication) -> bool:
        """A publication that ends before its submit leaves no prepared draft in the account's draft box."""
        with self.ctx.session() as session:
            row = session.get(Publication, pub.id)
            if row is None or not row.remote_draft_id or row.remote_publish_id:
                return False
            account = session.get(Account, row.account_id)
            resume = {"draft_id": row.remote_draft_id}
        try:
            return connector_for(self.ctx, account).discard(resume=resume)
        except PlatformError as e:
            logger.warning("publication {}: prepared draft {} not deleted: {}", pub.id, resume["draft_id"], e)
            return False


def edited(post_id: int, version: int | None) -> dict[str, Any]:
    """How a publication ends when its post changed after scheduling."""
    now = f"（现为第 {version} 版）" if version is not None else ""
    return {"state": "cancelled", "action": "publication.cancelled", "level": "WARNING",
            "error": text_zh("publication.edited", post_id=post_id, now=now)}


# ---- the worker's job and start-up --------------------------------------------------------

_publishers: dict[int, Publisher] = {}
_publishers_lock = threading.Lock()


def publisher_for(ctx: Context) -> Publisher:
    with _publishers_lock:
        publisher = _publishers.get(id(ctx))
        if publisher is None:
            publisher = _publishers[id(ctx)] = Publisher(ctx)
        return publisher


def tick(ctx: Context) -> None:
    """The scheduler job: renew leases, claim due publications, publish them, settle their posts."""
    publisher_for(ctx).tick()


def stop(ctx: Context) -> None:
    """At shutdown: finish or hand back what this process holds."""
    with _publishers_lock:
        publisher = _publishers.pop(id(ctx), None)
    if publisher is not None:
        publisher.stop()
