"""Exactly-once publishing of due posts (定时发布): publications are rows claimed with a lease.

A short APScheduler tick claims due publications (bot.db.claim: SKIP LOCKED on PostgreSQL, a
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
3. Just before publishing: the post must still have the content hash that was scheduled (an edit
   cancels the publication) and pass the pre-publish checks again (bot.publishing.checks).
4. Transient errors retry with bounded exponential backoff and jitter; permanent ones, and the last
   allowed attempt, end in state failed with the platform's message in last_error.

Every write is fenced on lease_owner: a worker whose lease was taken over stops without writing. The
tick renews the leases of the publications in flight (a WeChat publish job may take minutes).
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from loguru import logger
from sqlalchemy import or_, update
from sqlmodel import Session, select

from bot import audit
from bot.clock import to_local, utcnow
from bot.connectors.base import Cover, OutgoingPost, PermanentError, PublishResult, TransientError
from bot.connectors.registry import close_all, connector_for
from bot.context import Context
from bot.db import claim
from bot.errors import GovbotError
from bot.models import Account, Media, Post, Publication

ACTIVE = ("pending", "publishing")
# Reconciling looks this far before the first attempt: platform clocks differ from ours.
SINCE_MARGIN = timedelta(minutes=5)
# Publishing threads per process; a WeChat publish spends most of its time waiting on the platform.
THREADS = 8
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


class Publisher:
    """The publishing side of one worker process: claims due publications and publishes them."""

    def __init__(self, ctx: Context, threads: int = THREADS):
        self.ctx = ctx
        cfg = ctx.config.scheduler
        self.owner = ctx.worker_id
        self.lease = timedelta(seconds=cfg.lease_seconds)
        self.capacity = threads + cfg.batch_size
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="publish")
        self.inflight: set[int] = set()
        self._inflight_lock = threading.Lock()
        self._fill_lock = threading.Lock()
        self._stopping = threading.Event()
        self._renewed_at = time.monotonic()

    # ---- claiming -----------------------------------------------------------------------

    def tick(self) -> None:
        self.renew_leases()
        self.fill()

    def fill(self) -> None:
        """Claim due publications while there is room; one claimer at a time per process."""
        if self._stopping.is_set() or not self._fill_lock.acquire(blocking=False):
            return
        try:
            while not self._stopping.is_set():
                room = self.capacity - len(self.inflight)
                if room <= 0:
                    return
                ids = self._claim(min(room, self.ctx.config.scheduler.batch_size))
                if not ids:
                    return
                for pub_id in ids:
                    self.pool.submit(self._run, pub_id)
        finally:
            self._fill_lock.release()

    def _claim(self, limit: int) -> list[int]:
        now = utcnow()
        with self.ctx.session() as session:
            rows = claim(session, Publication, [Publication.state.in_(ACTIVE), Publication.next_attempt_at <= now],
                         owner=self.owner, lease=self.lease, limit=limit, order_by=Publication.next_attempt_at,
                         now=now)
        fresh = []
        with self._inflight_lock:
            for row in rows:
                # Our own lease lapsed and we re-claimed a row still being worked on: leave it to that thread.
                if row.id not in self.inflight:
                    self.inflight.add(row.id)
                    fresh.append(row.id)
        return fresh

    def renew_leases(self) -> None:
        """Extend the leases of everything in flight, every third of a lease."""
        if time.monotonic() - self._renewed_at < self.lease.total_seconds() / 3:
            return
        self._renewed_at = time.monotonic()
        with self._inflight_lock:
            ids = list(self.inflight)
        if not ids:
            return
        with self.ctx.session() as session:
            session.execute(update(Publication).where(Publication.id.in_(ids), Publication.lease_owner == self.owner)
                            .values(lease_until=utcnow() + self.lease).execution_options(synchronize_session=False))

    def _run(self, pub_id: int) -> None:
        try:
            if not self._stopping.is_set():
                self.publish_one(pub_id)
        except LeaseLost as e:
            logger.warning("publication {}: {}", pub_id, e)
        except Exception:
            # The lease lapses and another attempt reconciles; never lose the row.
            logger.exception("publication {}: unexpected error", pub_id)
        finally:
            with self._inflight_lock:
                self.inflight.discard(pub_id)
        self.fill()

    def stop(self) -> None:
        """Stop claiming, interrupt WeChat polls, and hand back the leases of what did not finish."""
        self._stopping.set()
        close_all(self.ctx)
        self.pool.shutdown(wait=True, cancel_futures=True)
        with self._inflight_lock:
            ids = list(self.inflight)
            self.inflight.clear()
        if ids:
            with self.ctx.session() as session:
                session.execute(update(Publication)
                                .where(Publication.id.in_(ids), Publication.lease_owner == self.owner)
                                .values(lease_owner=None, lease_until=None).execution_options(synchronize_session=False))

    # ---- one publication ----------------------------------------------------------------

    def publish_one(self, pub_id: int) -> None:
        with self.ctx.session() as session:
            pub = session.get(Publication, pub_id)
            if pub is None or pub.lease_owner != self.owner or pub.state not in ACTIVE:
                return
            post = session.get(Post, pub.post_id)
            account = session.get(Account, pub.account_id)
            outgoing = self._outgoing(session, pub, post)
        resume = {name: getattr(pub, col) for name, col in ID_COLUMNS.items() if getattr(pub, col)}
        started = pub.first_attempt_at is not None
        # A submitted WeChat job can no longer be stopped: follow it whatever the checks would say now.
        committed = "publish_id" in resume
        attempt = self._start(pub)
        connector = connector_for(self.ctx, account)
        try:
            if started:
                found = connector.find_published(outgoing, since=pub.first_attempt_at - SINCE_MARGIN, resume=resume)
                if found is not None:
                    self._published(pub, account, found, reconciled=True)
                    return
            if not committed and not self._still_publishable(pub, post):
                return
            result = connector.publish(outgoing, progress=lambda step, ids: self._progress(pub.id, step, ids),
                                       resume=resume)
        except TransientError as e:
            self._retry(pub, account, attempt, str(e), e.retry_after)
            return
        except PermanentError as e:
            self._fail(pub, account, str(e))
            return
        except LeaseLost:
            raise
        except Exception as e:
            logger.exception("publication {}: unexpected error while publishing", pub.id)
            self._retry(pub, account, attempt, f"internal error: {type(e).__name__}: {e}", None)
            return
        self._published(pub, account, result, reconciled=False)

    def _outgoing(self, session: Session, pub: Publication, post: Post) -> OutgoingPost:
        cover = None
        if post.cover_media_id is not None:
            media = session.get(Media, post.cover_media_id)
            if media is not None:
                cover = Cover(filename=media.filename, data=media.data, mime=media.mime)
        return OutgoingPost(publication_id=pub.id, title=post.title, body=post.body, digest=post.digest,
                            weibo_text=post.weibo_text, cover=cover)

    def _fenced(self, session: Session, pub_id: int, **values: Any) -> None:
        result = session.execute(update(Publication)
                                 .where(Publication.id == pub_id, Publication.lease_owner == self.owner)
                                 .values(**values).execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise LeaseLost(f"lease taken over by another worker; {self.owner} stops")

    def _start(self, pub: Publication) -> int:
        """Record the attempt before any platform call; returns its number."""
        now = utcnow()
        attempt = pub.attempts + 1
        with self.ctx.session() as session:
            self._fenced(session, pub.id, state="publishing", attempts=attempt, step=pub.step or "started",
                         first_attempt_at=pub.first_attempt_at or now, lease_until=now + self.lease)
        return attempt

    def _progress(self, pub_id: int, step: str, ids: dict[str, str]) -> None:
        values: dict[str, Any] = {"step": step, "lease_until": utcnow() + self.lease}
        values.update({ID_COLUMNS[name]: value for name, value in ids.items() if name in ID_COLUMNS})
        with self.ctx.session() as session:
            self._fenced(session, pub_id, **values)

    def _still_publishable(self, pub: Publication, post: Post) -> bool:
        """The last look before publishing: unchanged content and passing checks."""
        from bot.publishing.checks import recheck_publication

        if post.content_hash != pub.content_hash:
            self._finish(pub, state="cancelled", action="publication.cancelled", level="WARNING",
                         error=f"post {post.id} was edited after it was scheduled (now version {post.version}); "
                               "sign it off and schedule it again")
            return False
        with self.ctx.session() as session:
            problems = recheck_publication(session=session, ctx=self.ctx, publication=pub)
        if problems:
            self._finish(pub, state="failed", action="publication.check_failed", level="ERROR",
                         error="pre-publish checks failed: " + "; ".join(str(p) for p in problems))
            return False
        return True

    # ---- outcomes -----------------------------------------------------------------------

    def _published(self, pub: Publication, account: Account, result: PublishResult, *, reconciled: bool) -> None:
        now = utcnow()
        with self.ctx.session() as session:
            values: dict[str, Any] = {"state": "published", "step": "done", "remote_id": result.remote_id,
                                      "remote_url": result.url, "last_error": None, "lease_owner": None,
                                      "lease_until": None,
                                      "published_at": (result.published_at or now) if reconciled else now}
            if result.msg_data_id:
                values["remote_msg_data_id"] = result.msg_data_id
            self._fenced(session, pub.id, **values)
            audit.record(session=session, actor="system", action="publication.published", subject_type="publication",
                         subject_id=pub.id, content_hash=pub.content_hash, post_id=pub.post_id, account=account.name,
                         remote_id=result.remote_id, url=result.url, reconciled=reconciled)
            settle_post(session=session, post_id=pub.post_id)
        logger.info("publication {} (post {}) published on {} as {}{}", pub.id, pub.post_id, account.name,
                    result.remote_id, " (found on the platform after an interrupted attempt)" if reconciled else "")

    def _retry(self, pub: Publication, account: Account, attempt: int, error: str, retry_after: float | None) -> None:
        cfg = self.ctx.config.scheduler
        if attempt >= cfg.max_attempts:
            self._fail(pub, account, f"gave up after {attempt} attempts: {error}")
            return
        delay = backoff_seconds(attempt, base=cfg.backoff_base_s, cap=cfg.backoff_max_s, retry_after=retry_after)
        with self.ctx.session() as session:
            self._fenced(session, pub.id, state="pending", next_attempt_at=utcnow() + timedelta(seconds=delay),
                         last_error=error, lease_owner=None, lease_until=None)
        logger.warning("publication {} on {}: attempt {} failed ({}); retrying in {:.1f} s", pub.id, account.name,
                       attempt, error, delay)

    def _fail(self, pub: Publication, account: Account, error: str) -> None:
        self._finish(pub, state="failed", action="publication.failed", level="ERROR", error=error,
                     account=account.name)

    def _finish(self, pub: Publication, *, state: str, action: str, level: str, error: str, **detail: Any) -> None:
        with self.ctx.session() as session:
            self._fenced(session, pub.id, state=state, last_error=error, lease_owner=None, lease_until=None)
            audit.record(session=session, actor="system", action=action, subject_type="publication", subject_id=pub.id,
                         content_hash=pub.content_hash, post_id=pub.post_id, error=error, **detail)
            settle_post(session=session, post_id=pub.post_id)
        logger.log(level, "publication {} (post {}) {}: {}", pub.id, pub.post_id, state, error)


def settle_post(*, session: Session, post_id: int) -> None:
    """A scheduled post is published once every publication is; partially_failed or failed otherwise.

    Called after the publication's own write in the same transaction, so two publications of one
    post finishing at once cannot both miss the other's outcome (the write lock, or on PostgreSQL
    the row lock on the post, orders them).
    """
    post = session.exec(select(Post).where(Post.id == post_id).with_for_update()).first()
    if post is None or post.status != "scheduled":
        return
    states = [s for s in session.exec(select(Publication.state).where(Publication.post_id == post_id))
              if s != "cancelled"]
    if not states or any(s in ACTIVE for s in states):
        return
    published = states.count("published")
    post.status = "published" if published == len(states) else "partially_failed" if published else "failed"
    post.updated_at = utcnow()
    session.add(post)
    audit.record(session=session, actor="system", action=f"post.{post.status}", subject_type="post",
                 subject_id=post.id, version=post.version, content_hash=post.content_hash,
                 publications=len(states), published=published)


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
    """The scheduler job: renew leases, claim due publications, publish them."""
    publisher_for(ctx).tick()


def stop(ctx: Context) -> None:
    """At shutdown: finish or hand back what this process holds."""
    with _publishers_lock:
        publisher = _publishers.pop(id(ctx), None)
    if publisher is not None:
        publisher.stop()


def handle_missed(ctx: Context) -> int:
    """At start: flag publications whose time passed while govbot was down, beyond the grace period.

    Within the grace period they stay pending and the first tick publishes them. Only publications
    never attempted are flagged: one that was attempted must be reconciled, it may be out already.
    """
    grace = ctx.config.scheduler.missed_grace_minutes
    now = utcnow()
    cutoff = now - timedelta(minutes=grace)
    free = or_(Publication.lease_until.is_(None), Publication.lease_until < now)
    missed = [Publication.state == "pending", Publication.first_attempt_at.is_(None), Publication.due_at < cutoff, free]
    with ctx.session() as session:
        rows = list(session.exec(select(Publication).where(*missed)))
    flagged = 0
    for pub in rows:
        due = to_local(pub.due_at, ctx.tz).strftime("%Y-%m-%d %H:%M")
        error = f"missed: due at {due} while govbot was not running (more than {grace} minutes ago)"
        with ctx.session() as session:
            result = session.execute(update(Publication).where(Publication.id == pub.id, *missed)
                                     .values(state="missed", last_error=error)
                                     .execution_options(synchronize_session=False))
            if result.rowcount != 1:
                continue
            audit.record(session=session, actor="system", action="publication.missed", subject_type="publication",
                         subject_id=pub.id, content_hash=pub.content_hash, post_id=pub.post_id, due_at=due)
            settle_post(session=session, post_id=pub.post_id)
        flagged += 1
        logger.warning("publication {} (post {}) {}: schedule it again if it should still go out",
                       pub.id, pub.post_id, error)
    return flagged

