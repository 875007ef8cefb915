"""Interaction figures (阅读, 点赞, 转发, 评论) of recent posts, refreshed from the platforms for the reports.

WeChat's data cube serves a day's reads only once the day is over, so figures are refreshed
periodically rather than once; a publication is claimed with its lease, so workers share the work.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from loguru import logger
from sqlmodel import or_

from bot.clock import utcnow
from bot.connectors.base import PlatformError, PublishResult
from bot.connectors.registry import connector_for
from bot.context import Context
from bot.db import claim
from bot.models import Account, Publication


def refresh_stats(ctx: Context, *, now: datetime | None = None) -> int:
    """Refresh the figures of publications published within polling.lookback_days; returns how many."""
    now = now or utcnow()
    cfg = ctx.config
    stale_before = now - timedelta(seconds=cfg.polling.stats_interval_s)
    with ctx.session() as session:
        rows = claim(
            session, Publication,
            [Publication.state == "published", Publication.remote_id.is_not(None),
             Publication.published_at >= now - timedelta(days=cfg.polling.lookback_days),
             or_(Publication.stats_at.is_(None), Publication.stats_at < stale_before)],
            owner=ctx.worker_id, lease=timedelta(seconds=cfg.scheduler.lease_seconds),
            limit=cfg.scheduler.batch_size * 5, order_by=Publication.stats_at, now=now,
        )
        work = [(p.id, session.get(Account, p.account_id),
                 PublishResult(remote_id=p.remote_id, url=p.remote_url, msg_data_id=p.remote_msg_data_id,
                               published_at=p.published_at)) for p in rows]
    done = 0
    for pub_id, account, result in work:
        try:
            stats = connector_for(ctx, account).fetch_stats(result)
        except PlatformError as e:
            # Transient: the lease lapses and the next round tries again; permanent: wait a full interval.
            logger.warning("interaction figures of publication {} ({}) not refreshed: {}", pub_id, account.name, e)
            stats = None
            if e.transient:
                continue
        with ctx.session() as session:
            pub = session.get(Publication, pub_id)
            if stats is not None:
                for name in ("reads", "likes", "shares", "comments"):
                    value = getattr(stats, name)
                    if value is not None:
                        setattr(pub, name, value)
                pub.stats_unavailable = stats.unavailable
                done += 1
            pub.stats_at, pub.lease_owner, pub.lease_until = utcnow(), None, None
            session.add(pub)
    return done
