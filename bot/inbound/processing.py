"""After the answer: stored WeChat deliveries become triaged messages (the `inbound.process` job).

The callback stores each verified delivery raw (InboundDelivery) and answers; this job, run by
every worker, first moves spooled deliveries into the database (exactly once: the insert is
deduplicated like the callback's, and a file is deleted only after its row is committed), then
claims pending deliveries with a lease (FOR UPDATE SKIP LOCKED on PostgreSQL) and processes each in
its own short transaction, so SQLite's write lock is never held long against the callback.

`process_delivery` is the one place where a delivery becomes a message: parse, then ingest
(classify, route, ticket), with the passive answer the callback gave, if any (faq_rule), recorded
as a sent automatic Reply.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from bot.clock import utcnow
from bot.context import Context
from bot.db import claim
from bot.inbound.autoreply import GivenAnswer
from bot.inbound.events import handle_system_event, is_system_event
from bot.inbound.rows import Outcome, insert_delivery
from bot.inbound.spool import Spool
from bot.inbound.store import ingest
from bot.inbound.wechat_xml import incoming_from_xml, parse_xml
from bot.logthrottle import log_throttled
from bot.models import InboundDelivery

BATCH = 100
LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 5
# Processed deliveries are kept this long (the nonce cache needs only the timestamp window; a late
# redelivery after that still finds its Message by the dedupe key).
RETENTION = timedelta(days=2)


def spool_of(ctx: Context) -> Spool:
    return Spool(ctx.config.path(ctx.config.callback.spool_dir))


def replay_spool(ctx: Context) -> int:
    """Move spooled deliveries into the database; returns how many were new."""
    spool = spool_of(ctx)
    new = 0
    for path in spool.pending():
        try:
            delivery = spool.read(path)
        except FileNotFoundError:
            continue  # another worker took it
        except (ValueError, TypeError, KeyError):
            log_throttled("spool.unreadable", "ERROR", "spooled delivery {} is unreadable; set aside", path.name)
            spool.reject(path)
            continue
        with ctx.engine.begin() as conn:
            stored, _row_id = insert_delivery(conn, delivery)
        if stored.outcome is Outcome.REPLAY:
            log_throttled("spool.replay", "WARNING", "spooled delivery {} reuses a signature nonce of another "
                          "message (a replay); set aside in {}", path.name, spool.rejected)
            spool.reject(path)
            continue
        spool.remove(path)
        new += stored.outcome is Outcome.STORED
    spool.expire_nonces(2 * ctx.config.callback.timestamp_window_s)
    return new


def process_delivery(session: Session, ctx: Context, delivery: InboundDelivery) -> None:
    """Turn one stored delivery into a Message: parse it again, then triage, route and ticket it."""
    doc = parse_xml(delivery.body.encode("utf-8"))
    if is_system_event(str(doc.get("MsgType", "")), str(doc.get("Event", ""))):
        # Not a citizen's message: handled by what it reports, stored apart (bot.inbound.events).
        handle_system_event(session, account_id=delivery.account_id, doc=doc, raw=delivery.body)
        session.execute(update(InboundDelivery).where(InboundDelivery.id == delivery.id).values(
            processed_at=utcnow(), lease_owner=None, lease_until=None))
        return
    incoming = incoming_from_xml(delivery.account_id, doc, delivery.body, arrived_at=delivery.arrived_at,
                                 cfg=ctx.config.callback)
    if delivery.faq_rule:  # the callback answered with an automatic answer: recorded as given
        content = parse_xml(delivery.reply_xml.encode("utf-8")).get("Content")
        incoming = dataclasses.replace(incoming, answered=GivenAnswer(
            faq_rule=delivery.faq_rule, text=content if isinstance(content, str) else "", sent_at=delivery.arrived_at))
    result = ingest(session=session, ctx=ctx, incoming=incoming)
    if result.created:
        result.message.reply_xml = delivery.reply_xml
    session.execute(update(InboundDelivery).where(InboundDelivery.id == delivery.id).values(
        processed_at=utcnow(), message_id=result.message.id, lease_owner=None, lease_until=None))


def _failed(ctx: Context, delivery: InboundDelivery, exc: Exception) -> None:
    attempts = delivery.attempts + 1
    with ctx.session() as session:
        session.execute(update(InboundDelivery).where(InboundDelivery.id == delivery.id).values(
            attempts=attempts, last_error=f"{type(exc).__name__}: {exc}"[:1000],
            lease_until=utcnow() + timedelta(seconds=30 * attempts)))
    if attempts >= MAX_ATTEMPTS:
        log_throttled("inbound.gave_up", "ERROR", "delivery {} could not be triaged after {} attempts ({}); "
                      "it stays in inbounddelivery with its error", delivery.id, attempts, type(exc).__name__)
    else:
        log_throttled("inbound.failed", "WARNING", "delivery {} could not be triaged ({}); retried later",
                      delivery.id, type(exc).__name__)


def process_pending(ctx: Context, *, limit: int | None = None) -> int:
    """Replay the spool, then triage pending deliveries; returns how many were processed."""
    try:
        replay_spool(ctx)
    except DBAPIError as exc:
        log_throttled("spool.db", "WARNING", "spool not replayed: database unavailable ({})", type(exc.orig or exc).__name__)
        return 0
    try:
        return _process_claimed(ctx, limit)
    except DBAPIError as exc:
        log_throttled("inbound.db", "WARNING", "deliveries not triaged: database unavailable ({})",
                      type(exc.orig or exc).__name__)
        return 0


def _process_claimed(ctx: Context, limit: int | None) -> int:
    done = 0
    while limit is None or done < limit:
        with ctx.session() as session:
            rows = claim(session, InboundDelivery,
                         [InboundDelivery.processed_at.is_(None), InboundDelivery.attempts < MAX_ATTEMPTS],
                         owner=ctx.worker_id, lease=LEASE, limit=BATCH, order_by=InboundDelivery.id)
        if not rows:
            break
        for delivery in rows:
            try:
                with ctx.session() as session:
                    process_delivery(session, ctx, delivery)
                done += 1
            except Exception as exc:
                _failed(ctx, delivery, exc)
    return done


def prune_deliveries(ctx: Context) -> int:
    """Delete processed deliveries past RETENTION."""
    with ctx.session() as session:
        result = session.execute(delete(InboundDelivery).where(
            InboundDelivery.processed_at.is_not(None), InboundDelivery.arrived_at < utcnow() - RETENTION))
        return result.rowcount or 0
