"""Sending replies (发送答复): one sender for automatic FAQ answers and responders' answers.

A Reply row waits "pending"; the sender claims it with a lease (several workers never send the same
one twice), marks it "sending", calls the platform and records the outcome:

- sent: the message (and its ticket, if any) is answered;
- a transient error: back to pending, retried after a bounded backoff (config scheduler.*), at most
  scheduler.max_attempts times;
- a refusal (WeChat 88005 / 45015), a permanent error, the last retry: failed, with the reason;
- a reply left "sending" by a worker that died is not sent again blindly (it may have reached the
  citizen; a second comment reply is refused anyway): it is marked failed as interrupted.

What differs between the two kinds is a `Policy`: responders' replies have their channel checked again
before each attempt and every step written to the audit log and the ticket's notes
(bot.tickets.answering); a failed automatic reply is handed to a person (bot.inbound.autoreply).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from loguru import logger
from sqlmodel import Session

from bot.clock import utcnow
from bot.connectors.base import PlatformError, ReplyRefused
from bot.connectors.registry import connector_for
from bot.context import Context
from bot.db import claim
from bot.errors import text_zh
from bot.models import Account, Message, Reply, Ticket
from bot.retry import backoff_delay

# The channels a platform call answers on (the others are answered at once or outside govbot).
PLATFORM_CHANNELS = ("wechat_comment", "weibo_comment", "wechat_custom")
INTERRUPTED = text_zh("reply.interrupted")


@dataclass(frozen=True)
class Result:
    """One outcome of a reply, as told to its policy."""

    outcome: str  # sent | retry | failed | refused | interrupted
    attempt: int
    exc: BaseException | None = None  # what the platform (or the connector) raised
    retry_in: float | None = None


@dataclass(frozen=True)
class Policy:
    """How one kind of reply differs; the sending itself is the same for all."""

    # After every outcome, in the transaction that records it (the reply's state is already set).
    settled: Callable[[Session, Context, Reply, Message, Result], None]
    # Before each attempt, in the claiming transaction: False when the reply must not go out (the
    # hook has marked it failed and said why). None: sent as claimed.
    may_send: Callable[[Session, Context, Reply, Message, datetime], bool] | None = None


@dataclass(frozen=True)
class Report:
    attempted: int  # replies handed to their platform
    sent: int


@dataclass(frozen=True)
class _Work:
    reply_id: int
    automatic: bool
    attempts: int
    channel: str
    text: str
    account: Account
    target: dict[str, str]
    user_id: str
    policy: Policy


# The policies of the replies to send, by Reply.automatic: each area passes its own (bot.inbound.autoreply.AUTOMATIC,
# bot.tickets.answering.RESPONDERS) and the worker's job both, so this module imports neither area.
Policies = Mapping[bool, Policy]


def reply_target(message: Message) -> dict[str, str]:
    """The platform ids a comment reply needs: stored by polling with the comment, else from its ids."""
    try:
        data = json.loads(message.raw or "{}")
    except ValueError:
        data = {}
    target = data.get("reply_target") if isinstance(data, dict) else None
    if isinstance(target, dict) and target:
        return {str(k): str(v) for k, v in target.items()}
    if message.kind == "wechat_comment":
        parts = message.dedupe_key.split("/")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            return {"msg_data_id": parts[0], "index": parts[1], "user_comment_id": parts[2]}
    if message.kind == "weibo_comment" and message.remote_ref:
        return {"cid": message.dedupe_key, "id": message.remote_ref}
    return {}


def mark_answered(session: Session, ticket: Ticket | None, message: Message, at: datetime) -> None:
    """The citizen got an answer at `at` (the earliest answer counts)."""
    message.replied_at = min(message.replied_at, at) if message.replied_at else at
    session.add(message)
    if ticket is None:
        return
    ticket.first_response_at = min(ticket.first_response_at, at) if ticket.first_response_at else at
    ticket.answered_at = min(ticket.answered_at, at) if ticket.answered_at else at
    if ticket.state != "closed":
        ticket.state = "answered"
    session.add(ticket)


def _start(session: Session, ctx: Context, reply: Reply, now: datetime, policies: Policies) -> _Work | None:
    """A claimed pending reply: let its policy check it, mark it sending."""
    message = session.get(Message, reply.message_id)
    policy = policies[reply.automatic]
    if policy.may_send is not None and not policy.may_send(session, ctx, reply, message, now):
        return None
    reply.state, reply.attempts = "sending", reply.attempts + 1
    session.add(reply)
    return _Work(reply_id=reply.id, automatic=reply.automatic, attempts=reply.attempts, channel=reply.channel,
                 text=reply.text, account=session.get(Account, reply.account_id), target=reply_target(message),
                 user_id=message.sender_id, policy=policy)


def _interrupted(session: Session, ctx: Context, reply: Reply, policy: Policy) -> None:
    reply.state, reply.lease_owner, reply.lease_until, reply.last_error = "failed", None, None, INTERRUPTED
    session.add(reply)
    logger.warning("reply {} was interrupted while sending; not sent again", reply.id)
    policy.settled(session, ctx, reply, session.get(Message, reply.message_id), Result("interrupted", reply.attempts))


def _finish(ctx: Context, work: _Work, result: Result, *, error: str | None = None, remote_id: str | None = None,
            now: datetime | None = None) -> str:
    with ctx.session() as session:
        reply = session.get(Reply, work.reply_id)
        message = session.get(Message, reply.message_id)
        at = now or utcnow()
        reply.lease_owner, reply.last_error = None, error
        if result.outcome == "sent":
            reply.state, reply.sent_at, reply.remote_id, reply.lease_until = "sent", at, remote_id, None
            mark_answered(session, session.get(Ticket, reply.ticket_id) if reply.ticket_id else None, message, at)
        elif result.outcome == "retry":
            # The lease doubles as the time of the next attempt: claim skips the row until then.
            reply.state, reply.lease_until = "pending", at + timedelta(seconds=result.retry_in)
        else:
            reply.state, reply.lease_until = "failed", None
        session.add(reply)
        work.policy.settled(session, ctx, reply, message, result)
    return result.outcome


def _deliver(ctx: Context, work: _Work, now: datetime | None) -> str:
    """Call the platform and record the outcome; returns it."""
    s = ctx.config.scheduler
    if work.channel != "wechat_custom" and not work.target:
        return _finish(ctx, work, Result("failed", work.attempts), error=text_zh("reply.no_target"),
                       now=now)
    try:
        connector = connector_for(ctx, work.account)
        if work.channel == "wechat_custom":
            connector.send_message(work.user_id, work.text)
            remote_id = ""
        else:
            remote_id = connector.reply_comment(work.target, work.text)
    except ReplyRefused as exc:
        logger.warning("reply {} refused by {}: {}", work.reply_id, exc.platform, exc)
        return _finish(ctx, work, Result("refused", work.attempts, exc), error=exc.message_zh, now=now)
    except PlatformError as exc:
        if exc.transient and work.attempts < s.max_attempts:
            delay = backoff_delay(s, work.attempts, getattr(exc, "retry_after", None))
            logger.info("reply {} will be retried in {:.0f} s: {}", work.reply_id, delay, exc)
            return _finish(ctx, work, Result("retry", work.attempts, exc, delay), error=exc.message_zh, now=now)
        logger.error("reply {} failed after {} attempt(s): {}", work.reply_id, work.attempts, exc)
        return _finish(ctx, work, Result("failed", work.attempts, exc), error=exc.message_zh, now=now)
    except Exception as exc:  # a connector bug must not lose the reply; bounded by max_attempts like the rest
        logger.exception("reply {} raised", work.reply_id)
        if work.attempts < s.max_attempts:
            result = Result("retry", work.attempts, exc, backoff_delay(s, work.attempts))
        else:
            result = Result("failed", work.attempts, exc)
        return _finish(ctx, work, result, error=text_zh("reply.system_error", error=repr(exc)), now=now)
    return _finish(ctx, work, Result("sent", work.attempts), remote_id=remote_id or None, now=now)


def send_reply(ctx: Context, reply_id: int, policies: Policies, *, now: datetime | None = None) -> Reply:
    """Send one pending reply now (it stays pending for the job if another worker holds it)."""
    at = now or utcnow()
    with ctx.session() as session:
        claimed = claim(session, Reply, [Reply.id == reply_id, Reply.state == "pending",
                                         Reply.channel.in_(PLATFORM_CHANNELS), Reply.automatic.in_(list(policies))],
                        owner=ctx.worker_id, lease=timedelta(seconds=ctx.config.scheduler.lease_seconds), limit=1,
                        now=at)
        work = _start(session, ctx, claimed[0], at, policies) if claimed else None
    if work is not None:
        _deliver(ctx, work, now)
    with ctx.session() as session:
        return session.get(Reply, reply_id)


def send_due(ctx: Context, policies: Policies, *, now: datetime | None = None) -> Report:
    """Send the replies that are due, of the kinds `policies` has a policy for."""
    s = ctx.config.scheduler
    lease = timedelta(seconds=s.lease_seconds)
    at = now or utcnow()
    kind = [Reply.channel.in_(PLATFORM_CHANNELS), Reply.automatic.in_(list(policies))]
    with ctx.session() as session:
        for reply in claim(session, Reply, [*kind, Reply.state == "sending"], owner=ctx.worker_id, lease=lease,
                           limit=s.batch_size, order_by=Reply.id, now=at):
            _interrupted(session, ctx, reply, policies[reply.automatic])
        batch = claim(session, Reply, [*kind, Reply.state == "pending"], owner=ctx.worker_id, lease=lease,
                      limit=s.batch_size, order_by=Reply.id, now=at)
        work = [w for w in (_start(session, ctx, reply, at, policies) for reply in batch) if w is not None]
    outcomes = [_deliver(ctx, item, now) for item in work]
    return Report(attempted=len(work), sent=outcomes.count("sent"))
