"""Posts whose publications all ended are settled (published, partially_failed, failed); publications
whose time passed while govbot was down are flagged missed."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

from loguru import logger
from sqlalchemy import or_, update
from sqlmodel import Session, select

from bot import audit
from bot.clock import to_local, utcnow
from bot.context import Context
from bot.errors import text_zh
from bot.models import Account, Post, Publication
from bot.publishing import notices
from bot.publishing.outcome import ACTIVE


def settle_posts(ctx: Context, *, writing: Callable[[], AbstractContextManager[Session]] | None = None) -> int:
    """Scheduled posts whose publications have all ended become published, partially_failed or failed.

    Cancelled publications do not count; a post with no other publication is left alone. The status
    changes by compare-and-set, so several workers settling at once record it once. All the posts
    found are settled in one transaction (a burst ends many at once).
    """
    active = (select(Publication.id).where(Publication.post_id == Post.id, Publication.state.in_(ACTIVE))
              .exists())
    with ctx.session() as session:
        candidates = session.execute(select(Post.id, Post.version, Post.content_hash)
                                     .where(Post.status == "scheduled", ~active)).all()
    if not candidates:
        return 0
    settled = 0
    with (writing or ctx.session)() as session, session.no_autoflush:
        # No flush per post: the events and notices of all the posts are inserted together at the commit.
        ids = [post.id for post in candidates]
        pubs: dict[int, list[Publication]] = {post_id: [] for post_id in ids}
        for pub in session.exec(select(Publication).where(Publication.post_id.in_(ids),
                                                          Publication.state != "cancelled")):
            pubs[pub.post_id].append(pub)
        posts = {post.id: post for post in session.exec(select(Post).where(Post.id.in_(ids)))}
        names = {a.id: a.name for a in session.exec(select(Account))}
        for post in candidates:
            states = [pub.state for pub in pubs[post.id]]
            if not states or any(s in ACTIVE for s in states):
                continue
            published = states.count("published")
            status = "published" if published == len(states) else "partially_failed" if published else "failed"
            result = session.execute(update(Post).where(Post.id == post.id, Post.status == "scheduled")
                                     .values(status=status, updated_at=utcnow())
                                     .execution_options(synchronize_session=False))
            if result.rowcount != 1:
                continue
            audit.record(session=session, actor="system", action=f"post.{status}", subject_type="post",
                         subject_id=post.id, version=post.version, content_hash=post.content_hash,
                         publications=len(states), published=published)
            notices.settled(session=session, config=ctx.config, post=posts[post.id], status=status,
                            publications=pubs[post.id], account_names=names)
            settled += 1
    return settled


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
        error = text_zh("publication.missed", due=due, grace=grace)
        with ctx.session() as session:
            result = session.execute(update(Publication).where(Publication.id == pub.id, *missed)
                                     .values(state="missed", last_error=error)
                                     .execution_options(synchronize_session=False))
            if result.rowcount != 1:
                continue
            audit.record(session=session, actor="system", action="publication.missed", subject_type="publication",
                         subject_id=pub.id, content_hash=pub.content_hash, post_id=pub.post_id, due_at=due)
        flagged += 1
        logger.warning("publication {} (post {}) {}: schedule it again if it should still go out",
                       pub.id, pub.post_id, error)
    if flagged:
        settle_posts(ctx)
    return flagged
