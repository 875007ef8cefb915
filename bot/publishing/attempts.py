"""One attempt at a publication: its platform calls, and how it ends (published, waiting, retried,
failed, cancelled). The half of bot.publishing.scheduler.Publisher that works on one publication
(or one batch of them); the other half claims, times and runs them.

Every write is fenced on lease_owner and an active state: a worker whose lease was taken over, or
whose publication a PUBLISHJOBFINISH push settled meanwhile, stops without writing.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import bindparam, func, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement
from sqlmodel import Session

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
from bot.connectors.registry import connector_for
from bot.context import Context
from bot.errors import GovbotError, text_zh
from bot.models import Account, Media, Post, Publication
from bot.publishing.images import body_images
from bot.publishing.outcome import ACTIVE, next_status_check
from bot.retry import backoff

PUBLICATION = Publication.__table__  # fenced writes go through the table: no ORM bookkeeping per row
# A write to a publication still ours and active; the columns to set are the execution's parameters.
FENCED = update(PUBLICATION).where(PUBLICATION.c.id == bindparam("p_id"), PUBLICATION.c.lease_owner == bindparam("p_owner"),
                                   PUBLICATION.c.state.in_(ACTIVE))
AWAITING = "awaiting_push"  # Publication.step of a submitted WeChat job waiting for its outcome
# Ids whose report is stored with the attempt's next write, not before the next call (_progress_of).
LATER_IDS = {"media_id"}
# Reconciling looks this far before the first attempt: platform clocks differ from ours.
SINCE_MARGIN = timedelta(minutes=5)
# Connector id names -> Publication columns.
ID_COLUMNS = {"media_id": "remote_media_id", "draft_id": "remote_draft_id", "publish_id": "remote_publish_id",
              "msg_data_id": "remote_msg_data_id"}


class LeaseLost(GovbotError):
    """Another worker took the publication over (our lease had lapsed): stop without writing."""


# Jitter for the one backoff (bot.retry): workers whose calls failed together do not retry together.
JITTER = random.Random()


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
    # Ids reported but not stored yet: they go with the attempt's next write (see _progress_of).
    unsaved: dict[str, str] = field(default_factory=dict)


@dataclass
class Published:
    """A publication the platform took, waiting to be recorded with others after the burst's submits:
    published, or (`submitted`: the row's values) a WeChat job whose outcome comes later."""

    pub: Publication
    account: Account
    result: PublishResult
    reconciled: bool
    submitted: dict[str, Any] | None = None


class Attempts:
    """Works on publications this process holds the lease of (Publisher sets the attributes)."""

    ctx: Context
    owner: str  # lease_owner of this process
    lease: timedelta
    inflight: set[int]  # every publication this process holds the lease of
    _lock: threading.Condition
    _write_lock: AbstractContextManager[Any]
    _unrecorded: list[Published]  # taken by the platform, not recorded yet
    _unrecorded_since: float  # monotonic time of the oldest of them

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
                self._retry(attempt, e.message_zh, e.retry_after)
            return False
        except PermanentError as e:
            self._fail(pub, account, e.message_zh)
            return False
        except LeaseLost:
            raise
        except Exception as e:
            logger.exception("publication {}: unexpected error while publishing", pub.id)
            self._retry(attempt, text_zh("publication.internal", error=f"{type(e).__name__}: {e}"), None)
            return False
        if result.pending:
            # Its publish_id is written with the burst's records, one write fewer per article while the burst's
            # calls queue on the database: the draft_id, stored before the submit, already keeps any later
            # attempt from submitting again (it reconciles), and the status checks settle a job whose push
            # came before the write.
            submitted = self._deferral(attempt, error="submitted; waiting for the platform's PUBLISHJOBFINISH",
                                       **self._awaiting(attempt, accepted_at=result.published_at))
            return self._taken(attempt, result, reconciled=False, submitted=submitted)
        return self._taken(attempt, result, reconciled=False)

    def _taken(self, attempt: Attempt, result: PublishResult, *, reconciled: bool,
               submitted: dict[str, Any] | None = None) -> bool:
        """The platform has the post: the recorder thread records it once the burst's calls are done."""
        with self._lock:
            self._unrecorded.append(Published(attempt.pub, attempt.account, result, reconciled, submitted))
            if len(self._unrecorded) == 1:
                # The recorder waits for a first one; after that, for the calls to end (woken by the last).
                self._unrecorded_since = time.monotonic()
                self._lock.notify_all()
        return True

    def _outgoing(self, session: Session, pub: Publication, post: Post) -> OutgoingPost:
        cover = None
        if post.cover_media_id is not None:
            media = session.get(Media, post.cover_media_id)
            if media is not None:
                cover = Cover(filename=media.filename, data=media.data, mime=media.mime, sha256=media.sha256)
        return OutgoingPost(publication_id=pub.id, title=post.title, body=post.body, digest=post.digest,
                            weibo_text=post.weibo_text, cover=cover, author=post.byline,
                            open_comment=post.open_comment, images=body_images(session, post.body))

    def _fenced_ok(self, session: Session | Connection, pub_id: int, values: dict[str, Any]) -> bool:
        """Write `values` if the publication is still ours and active (a PUBLISHJOBFINISH push may have
        settled it meanwhile)."""
        # Plain values go in as parameters of the one statement built at import; SQL expressions need values().
        expressions = {name: value for name, value in values.items() if isinstance(value, ClauseElement)}
        statement = FENCED.values(**expressions) if expressions else FENCED
        params = {name: value for name, value in values.items() if name not in expressions}
        return session.execute(statement, {"p_id": pub_id, "p_owner": self.owner, **params}).rowcount == 1

    def _fenced(self, session: Session | Connection, pub_id: int, **values: Any) -> None:
        if not self._fenced_ok(session, pub_id, values):
            raise LeaseLost("lease.lost", owner=self.owner)

    def _progress_of(self, attempt: Attempt) -> ProgressFn:
        """The connector's `progress`: store the step and ids before its next call, and keep them for a retry.

        Two reports wait for the attempt's next write instead, one transaction fewer each: the submit's
        ids (step awaiting_push: no call follows, the outcome is written right after) and the cover's
        media_id (nothing public; lost only with the process, and then the cover is uploaded again)."""
        def progress(step: str, ids: dict[str, str]) -> None:
            attempt.resume.update(ids)
            attempt.unsaved.update(ids)
            if step == AWAITING or set(ids) <= LATER_IDS:
                return
            values: dict[str, Any] = {"step": step, "lease_until": utcnow() + self.lease, **self._unsaved(attempt)}
            with self._updating() as session:
                self._fenced(session, attempt.pub.id, **values)
            attempt.unsaved.clear()

        return progress

    @staticmethod
    def _unsaved(attempt: Attempt) -> dict[str, str]:
        return {ID_COLUMNS[name]: value for name, value in attempt.unsaved.items() if name in ID_COLUMNS}

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
        with self._updating() as session:
            self._fenced(session, attempt.pub.id, **self._deferral(attempt, until=until, step=step, error=error,
                                                                   **values))
        # A submitted job waiting for its outcome is the normal case: not worth a line per post at INFO.
        logger.log("DEBUG" if step == AWAITING else "INFO", "publication {} on {}: {}; next look at {}",
                   attempt.pub.id, attempt.account.name, error, until.isoformat())

    def _deferral(self, attempt: Attempt, *, until: datetime, step: str, error: str, **values: Any) -> dict[str, Any]:
        """The row's values of a publication that waits until `until`, its lease given back."""
        state = "publishing" if attempt.resume.get("publish_id") else "pending"
        return {"state": state, "step": step, "attempts": attempt.number - 1, "next_attempt_at": until,
                "last_error": error, "lease_owner": None, "lease_until": None, **values, **self._unsaved(attempt)}

    def _awaiting(self, attempt: Attempt, accepted_at: datetime | None = None) -> dict[str, Any]:
        """Submitted to WeChat: the push settles it; freepublish/get only at the configured check times.

        The submit's acceptance is when the article went out: kept as published_at (counted only once
        the state is published). The push finds the publication by the publish_id written with it."""
        checks = self.ctx.config.scheduler.publish_status_checks_s
        due = attempt.pub.due_at if attempt.pub.due_at.tzinfo else attempt.pub.due_at.replace(tzinfo=UTC)
        now = utcnow()
        until = now + timedelta(seconds=next_status_check((now - due).total_seconds(), checks))
        return {"until": until, "step": AWAITING, **({"published_at": accepted_at} if accepted_at else {})}

    def _await_outcome(self, attempt: Attempt, why: str) -> None:
        self._defer(attempt, error=why, **self._awaiting(attempt))

    def _retry(self, attempt: Attempt, error: str, retry_after: float | None) -> None:
        cfg = self.ctx.config.scheduler
        pub, account, number = attempt.pub, attempt.account, attempt.number
        if number >= cfg.max_attempts:
            self._fail(pub, account, text_zh("publication.gave_up", attempts=number, error=error))
            return
        delay = backoff(number, base=cfg.backoff_base_s, cap=cfg.backoff_max_s, retry_after=retry_after, rng=JITTER)
        with self._updating() as session:
            # The ids reported so far (the cover's) go too: the retry reuses them.
            self._fenced(session, pub.id, state="pending", next_attempt_at=utcnow() + timedelta(seconds=delay),
                         last_error=error, lease_owner=None, lease_until=None, **self._unsaved(attempt))
        logger.warning("publication {} on {}: attempt {} failed ({}); retrying in {:.1f} s", pub.id, account.name,
                       number, error, delay)

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

    def _record(self, batch: list[Published]) -> None:
        """Record publications the platforms took (state published, audit event), in one transaction."""
        recorded = []
        try:
            with self._writing() as session:
                for item in batch:
                    if item.submitted is not None:
                        if not self._fenced_ok(session, item.pub.id, item.submitted):
                            logger.warning("publication {}: {}", item.pub.id, LeaseLost("lease.lost", owner=self.owner))
                        continue
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
            logger.exception("recording {} published or submitted publications failed", len(batch))
        finally:
            with self._lock:
                for item in batch:
                    self.inflight.discard(item.pub.id)
        for item in recorded:
            logger.info("publication {} (post {}) published on {} as {}{}", item.pub.id, item.pub.post_id,
                        item.account.name, item.result.remote_id,
                        " (found on the platform after an interrupted attempt)" if item.reconciled else "")


def edited(post_id: int, version: int | None) -> dict[str, Any]:
    """How a publication ends when its post changed after scheduling."""
    now = f"（现为第 {version} 版）" if version is not None else ""
    return {"state": "cancelled", "action": "publication.cancelled", "level": "WARNING",
            "error": text_zh("publication.edited", post_id=post_id, now=now)}
