"""The notification outbox (Notification rows): the `notifications.send` job sends what is due.

Rows are written by the areas that tell people things (ticket warnings and escalations in
bot.tickets.notifications, publishing notices in bot.publishing.notices), inside their own
transactions. This job claims due rows with a lease (several workers never send one twice at the
same time), sends outside the transaction and records the outcome: sent, or pending again after a
growing pause (retry_after), or failed with the error once scheduler.max_attempts attempts have
failed. A row is never deleted. A worker that dies between sending and recording lets the lease
lapse and the row is sent again: a person may be told twice, never not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy import update
from sqlmodel import Session

from bot.clock import utcnow
from bot.config import Config
from bot.context import Context
from bot.db import claim
from bot.errors import text_zh
from bot.models import Notification
from bot.outbox.channels import DeliveryError, email_html, retry_after, send_email, send_wecom

CHANNELS = ("email", "wecom")


@dataclass(frozen=True)
class SendReport:
    attempted: int
    sent: int
    failed: int  # given up (max_attempts reached)
    retrying: int


@dataclass(frozen=True)
class _Work:
    id: int
    channel: str
    address: str
    subject: str
    body: str
    attempts: int


def _send(config: Config, work: _Work) -> None:
    if work.channel == "email":
        send_email(smtp=config.delivery.smtp, recipients=[work.address], subject=work.subject, text=work.body,
                   html=email_html(work.body))
    elif work.channel == "wecom":
        send_wecom(wecom=config.delivery.wecom, content=work.body)
    else:
        raise DeliveryError("notification.unknown_channel", channel=work.channel, known=", ".join(CHANNELS))


def _record(ctx: Context, work: _Work, error: str | None, now: datetime) -> str:
    """Write one attempt's outcome, if this worker still holds the row; returns sent|retry|failed|lost."""
    if error is None:
        values = {"state": "sent", "sent_at": now, "last_error": None}
        outcome = "sent"
    elif work.attempts < ctx.config.scheduler.max_attempts:
        values = {"state": "pending", "last_error": error, "next_attempt_at": now + retry_after(work.attempts)}
        outcome = "retry"
    else:
        values = {"state": "failed", "last_error": error}
        outcome = "failed"
    with ctx.session() as session:
        done = session.execute(
            update(Notification)
            .where(Notification.id == work.id, Notification.lease_owner == ctx.worker_id)
            .values(lease_owner=None, lease_until=None, **values)
            .execution_options(synchronize_session=False)
        ).rowcount
    if not done:
        # The lease lapsed (a very slow server) and another worker took the row over: its record stands.
        logger.warning("notification {}: lease lost while sending; outcome {} not recorded", work.id, outcome)
        return "lost"
    return outcome


def retry_failed(*, session: Session, notification_id: int | None = None) -> int:
    """Put failed notifications (one, or all) back in the queue with fresh attempts; returns how many."""
    conditions = [Notification.state == "failed"]
    if notification_id is not None:
        conditions.append(Notification.id == notification_id)
    return session.execute(
        update(Notification).where(*conditions)
        .values(state="pending", attempts=0, next_attempt_at=utcnow(), lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    ).rowcount


def send_due(ctx: Context, *, now: datetime | None = None) -> SendReport:
    """Periodic job `notifications.send`: send one batch of the notifications that are due."""
    at = now or utcnow()
    s = ctx.config.scheduler
    with ctx.session() as session:
        batch = claim(session, Notification,
                      [Notification.state == "pending", Notification.next_attempt_at <= at],
                      owner=ctx.worker_id, lease=timedelta(seconds=s.lease_seconds), limit=s.batch_size,
                      order_by=Notification.id, now=at)
        work = []
        for row in batch:
            # Counted before the attempt, so a worker dying mid-send still uses one up.
            row.attempts += 1
            session.add(row)
            work.append(_Work(id=row.id, channel=row.channel, address=row.address, subject=row.subject,
                              body=row.body, attempts=row.attempts))
    outcomes = []
    for item in work:
        try:
            _send(ctx.config, item)
            error = None
        except DeliveryError as exc:
            error = exc.message_zh
        except Exception as exc:  # a bug must not lose the row; bounded by max_attempts like the rest
            logger.exception("notification {} raised", item.id)
            error = text_zh("internal") + f"（{type(exc).__name__}）"
        outcome = _record(ctx, item, error, now or utcnow())
        outcomes.append(outcome)
        if outcome == "retry":
            logger.info("notification {} ({}) attempt {} failed, retried later: {}", item.id, item.channel,
                        item.attempts, error)
        elif outcome == "failed":
            logger.error("notification {} ({} {}) failed after {} attempts: {}", item.id, item.channel,
                         item.address or "group", item.attempts, error)
    return SendReport(attempted=len(work), sent=outcomes.count("sent"), failed=outcomes.count("failed"),
                      retrying=outcomes.count("retry"))
