"""A WeChat publish job's outcome, as the PUBLISHJOBFINISH push reports it, settles its publication.

The push carries publish_id, publish_status (0 success, 1 publishing, 2-6 failures), article_id,
the article URLs and fail_idx (Publish/Callback_on_finish.html). It is matched to the publication
by account and publish_id and applied by compare-and-set on an active state, so a push delivered
twice, or racing a fallback freepublish/get of a worker, records the outcome once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, select

from bot import audit
from bot.connectors.wechat import job_failure
from bot.models import Publication

ACTIVE = ("pending", "publishing")


@dataclass(frozen=True)
class JobOutcome:
    publish_id: str
    status: int
    article_id: str = ""
    url: str | None = None
    fail_idx: tuple[int, ...] = ()


def settle_publish_job(session: Session, *, account_id: int, outcome: JobOutcome, at: datetime) -> str:
    """Apply a publish job's outcome to its publication; returns what was done (for the event's record)."""
    pub = session.execute(select(Publication).where(Publication.account_id == account_id,
                                                    Publication.remote_publish_id == outcome.publish_id)).scalar_one_or_none()
    if pub is None:
        return f"no publication with publish_id {outcome.publish_id} (published outside govbot?)"
    if outcome.status == 1:
        return f"publication {pub.id}: job still publishing"
    if pub.state not in ACTIVE:
        return f"publication {pub.id} already {pub.state}"
    if outcome.status == 0:
        values = {"state": "published", "step": "done", "remote_id": outcome.article_id, "remote_url": outcome.url,
                  "published_at": func.coalesce(Publication.published_at, at), "last_error": None, "lease_owner": None, "lease_until": None}
        action, done = "publication.published", "published"
    else:
        error = job_failure(outcome.publish_id, outcome.status, list(outcome.fail_idx))
        values = {"state": "failed", "last_error": error, "lease_owner": None, "lease_until": None}
        action, done = "publication.failed", f"failed: {error}"
    changed = session.execute(update(Publication).where(Publication.id == pub.id, Publication.state.in_(ACTIVE))
                              .values(**values).execution_options(synchronize_session=False)).rowcount
    if changed != 1:
        return f"publication {pub.id} settled meanwhile"
    audit.record(session=session, actor="system", action=action, subject_type="publication", subject_id=pub.id,
                 content_hash=pub.content_hash, post_id=pub.post_id, remote_id=outcome.article_id or None,
                 url=outcome.url, via="PUBLISHJOBFINISH",
                 **({"error": values["last_error"]} if outcome.status else {}))
    return f"publication {pub.id} {done}"


def next_status_check(elapsed_s: float, checks: list[float]) -> float:
    """Seconds from now to the next freepublish/get of a submitted job, `elapsed_s` after its due time.

    `checks` are times after the submit (e.g. 1, 5, 30 min); after the last, it repeats as a period.
    """
    for at in checks:
        if at > elapsed_s:
            return at - elapsed_s
    period = checks[-1]
    beyond = elapsed_s - checks[-1]
    return period - beyond % period if period > 0 else 0.0
