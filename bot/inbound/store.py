"""Store each citizen message or comment once, classify it, route it, answer or ticket it.

`ingest` is the one pipeline behind the WeChat callback and comment polling:

1. classify with the current triage rules (intent, topic, confidence, spam, the matched rules) and
   route: topic -> department (config triage.topic_departments), no clear topic -> the default desk.
   This is pure work done before writing, so the write transaction stays short;
2. insert once: (account_id, dedupe_key) is unique. The insert is `INSERT ... ON CONFLICT DO
   NOTHING` and the row is then read back, so a redelivery - or the same comment polled by two
   processes at the same moment - finds the first copy instead of failing (on PostgreSQL the second
   insert waits for the first transaction; on SQLite the write lock serialises them);
3. record the passive answer the callback gave to a WeChat message, or answer a comment
   automatically when an FAQ rule fits (bot.inbound.autoreply); otherwise open a ticket for a
   message that needs an answer (praise, spam and other never make tickets).

Everything happens in the caller's transaction, which commits once: a crash leaves nothing
half-stored (no message without its triage, no ticket without its message).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime

from loguru import logger
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.clock import utcnow
from bot.context import Context
from bot.inbound.autoreply import GivenAnswer, decide, record_given
from bot.models import Account, Department, Message, Reply, Ticket
from bot.search import search_text
from bot.tickets.service import open_ticket
from bot.triage.classifier import Classification

KINDS = ("wechat_message", "wechat_comment", "weibo_comment")
# Rule summaries longer than this are cut (a pathological message can match hundreds of words).
MAX_RULES_CHARS = 4000


@dataclass(frozen=True)
class Incoming:
    """One message or comment as received, platform-neutral."""

    account_id: int
    kind: str  # wechat_message (callback) | wechat_comment (留言) | weibo_comment
    dedupe_key: str  # unique per account: MsgId, event key, the platform's comment id
    received_at: datetime  # when the citizen sent it (aware; naive is taken as UTC)
    msg_type: str = "text"  # text image voice video shortvideo location link event unknown
    sender_id: str = ""  # openid / Weibo uid
    sender_name: str = ""
    text: str = ""  # what is classified: content, voice recognition, location label, link title ...
    raw: str = ""  # the payload as received (XML; JSON for comments)
    event: str | None = None  # WeChat event, lower case: subscribe, unsubscribe, click ...
    own_id: str = ""  # WeChat ToUserName (our original id, gh_...): the sender of a passive reply
    remote_ref: str | None = None  # what a comment is under: "msg_data_id/index" or the Weibo status id
    publication_id: int | None = None
    already_replied: bool = False  # the platform shows a reply already (given outside govbot)
    classify: bool = True  # False for events: nothing a citizen wrote
    # The CreateTime as sent when it was not believed (received_at is then the arrival time).
    untrusted_create_time: str | None = None
    # A WeChat message: the passive answer the callback gave with its response, if any (an FAQ
    # answer, the welcome). Nothing else can answer a WeChat message automatically after that.
    answered: GivenAnswer | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown message kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if not self.dedupe_key:
            raise ValueError("a message needs a dedupe_key")


@dataclass(frozen=True)
class IngestResult:
    message: Message
    created: bool  # False: a duplicate delivery, `message` is the first copy
    ticket: Ticket | None = None
    auto_reply: Reply | None = None
    classification: Classification | None = field(default=None, compare=False)


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _insert_once(session: Session, incoming: Incoming, triage: dict) -> tuple[int, bool]:
    """(message id, created): insert the row unless (account_id, dedupe_key) exists already."""
    values = dict(
        account_id=incoming.account_id,
        kind=incoming.kind,
        dedupe_key=incoming.dedupe_key[:200],
        msg_type=incoming.msg_type[:20],
        sender_id=incoming.sender_id[:100],
        sender_name=incoming.sender_name[:100],
        text=incoming.text,
        search_text=search_text(incoming.text),
        raw=incoming.raw,
        remote_ref=incoming.remote_ref[:200] if incoming.remote_ref else None,
        publication_id=incoming.publication_id,
        received_at=_aware(incoming.received_at),
        stored_at=utcnow(),
        replied_at=utcnow() if incoming.already_replied else None,
        untrusted_create_time=incoming.untrusted_create_time,
        **triage,
    )
    dialect = session.get_bind().dialect.name
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]
    stmt = insert(Message).values(**values).on_conflict_do_nothing(index_elements=["account_id", "dedupe_key"])
    new_id = session.execute(stmt.returning(Message.id)).scalar_one_or_none()
    if new_id is not None:
        return new_id, True
    existing = session.execute(
        select(Message.id).where(Message.account_id == incoming.account_id, Message.dedupe_key == values["dedupe_key"])
    ).scalar_one()
    return existing, False


# engine -> department name -> (monotonic expiry, id): departments change only when the config is synced.
_DEPARTMENT_TTL_S = 60.0
_department_ids: weakref.WeakKeyDictionary[Engine, dict[str, tuple[float, int]]] = weakref.WeakKeyDictionary()


def _department_id(session: Session, ctx: Context, topic: str | None) -> int | None:
    name = ctx.config.triage.department_for(topic)
    cache, now = _department_ids.setdefault(ctx.engine, {}), time.monotonic()
    cached = cache.get(name)
    if cached is not None and cached[0] > now:
        return cached[1]
    dept_id = session.execute(select(Department.id).where(Department.name == name)).scalar_one_or_none()
    if dept_id is None:
        logger.warning("department {!r} (triage routing) is not in the database; message left unrouted", name)
        return None
    cache[name] = (now + _DEPARTMENT_TTL_S, dept_id)
    return dept_id


def _ticket_of(session: Session, message_id: int) -> Ticket | None:
    return session.execute(select(Ticket).where(Ticket.message_id == message_id)).scalar_one_or_none()


def _triage(session: Session, ctx: Context, incoming: Incoming) -> tuple[Classification | None, dict]:
    """The classification and the Message columns it fills. Pure work and one read: done before the
    insert, so the write transaction (SQLite: the database's one write lock) stays short."""
    if not incoming.classify:
        return None, dict(intent=None, spam=False, needs_answer=False, rules="")
    if not incoming.text.strip():
        # Pictures, videos, an empty location: stored for the record; nothing to triage.
        return None, dict(intent="other", spam=False, needs_answer=False, rules="")
    c = ctx.rules.current().classify(incoming.text)
    return c, dict(intent=c.intent, topic=c.topic, confidence=c.confidence, spam=c.spam, needs_answer=c.needs_answer,
                   rules=c.rules_summary()[:MAX_RULES_CHARS], department_id=_department_id(session, ctx, c.topic))


def ingest(*, session: Session, ctx: Context, incoming: Incoming) -> IngestResult:
    """Store `incoming` once and triage it; a duplicate returns the first copy untouched."""
    classification, triage = _triage(session, ctx, incoming)
    message_id, created = _insert_once(session, incoming, triage)
    message = session.get(Message, message_id, populate_existing=True)
    if not created:
        return IngestResult(message=message, created=False, ticket=_ticket_of(session, message_id))
    account = session.get(Account, incoming.account_id)
    if account is None:
        raise ValueError(f"no account with id {incoming.account_id}")
    if incoming.answered is not None:
        reply = record_given(session=session, account=account, message=message, given=incoming.answered)
        return IngestResult(message=message, created=True, auto_reply=reply, classification=classification)
    if classification is None or not classification.needs_answer:
        return IngestResult(message=message, created=True, classification=classification)

    reply = None
    if not incoming.already_replied and incoming.kind != "wechat_message":
        reply = decide(session=session, ctx=ctx, account=account, message=message, classification=classification).reply
    ticket = None if reply is not None else open_ticket(session=session, ctx=ctx, message=message)
    logger.debug("message {} ({} {}) -> {} / {} {}", message.id, incoming.kind, incoming.dedupe_key,
                 classification.intent, classification.topic,
                 f"auto-reply {reply.faq_rule}" if reply else f"ticket {ticket.id}" if ticket else "no ticket")
    return IngestResult(message=message, created=True, ticket=ticket, auto_reply=reply, classification=classification)
