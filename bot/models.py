"""Every table govbot keeps. Tables are created only by Alembic migrations (migrations/).

Timestamps are aware UTC datetimes (bot.clock.utcnow); SQLModel refuses naive ones. Enumerations are stored as short strings so that
reports can be written in plain SQL and read in a database shell.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.clock import utcnow

# Roles a user can hold (several, comma separated in User.roles).
ROLES = ("editor", "reviewer", "approver", "responder", "admin")
PLATFORMS = ("wechat", "weibo")


class Organisation(SQLModel, table=True):
    """A local government (县/镇/局) running one or more accounts; digests go out per organisation."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    created_at: datetime = Field(default_factory=utcnow)


class Department(SQLModel, table=True):
    """A responsible unit (民政办, 社保所, 住建局 ...) that answers the tickets routed to it."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", index=True)
    email: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, max_length=64)
    display_name: str = Field(default="", max_length=100)
    roles: str = Field(default="", max_length=200)  # comma separated, see ROLES
    department_id: int | None = Field(default=None, foreign_key="department.id", index=True)
    # 部门负责人: overdue tickets of the department are escalated to its leads.
    department_lead: bool = Field(default=False)
    email: str | None = Field(default=None, max_length=200)
    password_hash: str | None = Field(default=None, max_length=300)
    api_token_hash: str | None = Field(default=None, max_length=128, index=True)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)

    def has_role(self, role: str) -> bool:
        return role in self.role_set()

    def role_set(self) -> set[str]:
        return {r for r in (x.strip() for x in self.roles.split(",")) if r}


class Account(SQLModel, table=True):
    """An official account on one platform (公众号 or 政务微博)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    platform: str = Field(max_length=16)  # wechat | weibo
    department_id: int | None = Field(default=None, foreign_key="department.id", index=True)
    # WeChat appid or Weibo uid: the platform's id of the account.
    remote_id: str = Field(default="", max_length=100)
    # Secrets (appsecret, token, EncodingAESKey, Weibo access token), refreshed from config at start.
    credentials: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    enabled: bool = Field(default=True)
    auto_reply: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)


class KeyValue(SQLModel, table=True):
    """Small shared state that several processes must agree on (e.g. the one WeChat access token)."""

    key: str = Field(primary_key=True, max_length=200)
    value: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class Media(SQLModel, table=True):
    """An uploaded file, e.g. a post's cover image."""

    id: int | None = Field(default=None, primary_key=True)
    filename: str = Field(max_length=200)
    mime: str = Field(max_length=100)
    sha256: str = Field(max_length=64, index=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Post(SQLModel, table=True):
    """A draft and its life: draft -> in_review -> approved -> scheduled -> published."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    digest: str = Field(default="", max_length=300)  # WeChat 摘要
    # Short text for Weibo (≤140 chars, must link to the safe domain); needed when a Weibo account is a target.
    weibo_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    cover_media_id: int | None = Field(default=None, foreign_key="media.id")
    author_id: int = Field(foreign_key="user.id", index=True)
    status: str = Field(default="draft", max_length=20, index=True)
    version: int = Field(default=1)
    content_hash: str = Field(max_length=64)
    scheduled_at: datetime | None = None
    rejection_reason: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SignOff(SQLModel, table=True):
    """One decision in the sign-off chain (三审: 初审 -> 复审 -> 终审) on exactly one version."""

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    stage_index: int
    stage_name: str = Field(max_length=50)
    user_id: int = Field(foreign_key="user.id")
    role: str = Field(max_length=20)
    decision: str = Field(max_length=10)  # approve | reject
    reason: str | None = Field(default=None, sa_column=Column(Text))
    post_version: int
    content_hash: str = Field(max_length=64)
    # An edit voids every sign-off on earlier versions; they stay as history.
    voided_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Publication(SQLModel, table=True):
    """One post on one account: the unit the scheduler claims, publishes and reconciles."""

    __table_args__ = (
        UniqueConstraint("post_id", "account_id"),
        Index("ix_publication_due", "state", "next_attempt_at"),
        Index("ix_publication_account_published", "account_id", "published_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    # pending | publishing | published | failed | missed | cancelled
    state: str = Field(default="pending", max_length=20)
    due_at: datetime
    next_attempt_at: datetime
    attempts: int = Field(default=0)
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = None
    # The content version this publication sends; checked again just before publishing.
    content_hash: str = Field(default="", max_length=64)
    # Progress markers, each written as soon as the platform returns it (crash recovery).
    step: str = Field(default="", max_length=30)
    remote_media_id: str | None = Field(default=None, max_length=200)  # WeChat cover thumb_media_id
    remote_draft_id: str | None = Field(default=None, max_length=200)  # WeChat draft media_id
    remote_publish_id: str | None = Field(default=None, max_length=200)  # WeChat publish_id
    remote_id: str | None = Field(default=None, max_length=200)  # WeChat article_id / Weibo status id
    remote_msg_data_id: str | None = Field(default=None, max_length=200)  # WeChat msg_data_id (comments)
    remote_url: str | None = Field(default=None, max_length=500)
    first_attempt_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    published_at: datetime | None = None
    # Interaction figures, refreshed from the platform (WeChat data cube, Weibo counts).
    reads: int | None = None
    likes: int | None = None
    shares: int | None = None
    comments: int | None = None
    stats_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """Who did what, when, to which version. Never updated, never deleted."""

    __table_args__ = (Index("ix_audit_subject", "subject_type", "subject_id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=64)  # username, or "system"
    action: str = Field(max_length=50)
    subject_type: str = Field(max_length=30)
    subject_id: int | None = None
    version: int | None = None
    content_hash: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Message(SQLModel, table=True):
    """A citizen message or comment, stored once (unique on the platform's id) and classified."""

    __table_args__ = (
        UniqueConstraint("account_id", "dedupe_key"),
        Index("ix_message_account_received", "account_id", "received_at"),
        Index("ix_message_sender", "account_id", "sender_id", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    # wechat_message (callback) | wechat_comment (留言) | weibo_comment
    kind: str = Field(max_length=20)
    # MsgId; FromUserName+CreateTime for events; msg_data_id/index/user_comment_id; Weibo comment id.
    dedupe_key: str = Field(max_length=200)
    msg_type: str = Field(default="text", max_length=20)  # text image voice location link event unknown
    sender_id: str = Field(default="", max_length=100)  # openid / Weibo uid
    sender_name: str = Field(default="", max_length=100)
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    raw: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # What the comment is under: WeChat msg_data_id/index, Weibo status id.
    remote_ref: str | None = Field(default=None, max_length=200)
    publication_id: int | None = Field(default=None, foreign_key="publication.id", index=True)
    received_at: datetime
    stored_at: datetime = Field(default_factory=utcnow)
    # Triage result (explainable: the matched rules and words).
    intent: str | None = Field(default=None, max_length=20)
    topic: str | None = Field(default=None, max_length=20)
    confidence: float | None = None
    spam: bool = Field(default=False)
    needs_answer: bool = Field(default=False)
    rules: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    department_id: int | None = Field(default=None, foreign_key="department.id", index=True)
    # The exact passive reply sent, so a duplicate delivery is answered identically.
    reply_xml: str | None = Field(default=None, sa_column=Column(Text))
    # First time anyone answered it (auto or human) - the basis of reply rate and reply time.
    replied_at: datetime | None = None
    # WeChat CreateTime as sent when it was implausible (far past or future): received_at is then
    # the arrival time. None when the platform's time was used.
    untrusted_create_time: str | None = Field(default=None, max_length=64)


class PollCursor(SQLModel, table=True):
    """Where comment polling stopped, per account and scope (WeChat article, Weibo to_me)."""

    account_id: int = Field(foreign_key="account.id", primary_key=True)
    scope: str = Field(primary_key=True, max_length=200)
    cursor: str = Field(default="", max_length=200)
    backoff_until: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class Ticket(SQLModel, table=True):
    """A message that needs an answer, with working-day deadlines (工作日)."""

    __table_args__ = (
        Index("ix_ticket_dept_state_due", "department_id", "state", "resolution_due"),
        Index("ix_ticket_created", "created_at"),
        # Reports: tickets answered or closed after a period's end were still open at its end (backlog).
        Index("ix_ticket_answered", "answered_at"),
        Index("ix_ticket_closed", "closed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", unique=True)
    department_id: int | None = Field(default=None, foreign_key="department.id")
    intent: str = Field(max_length=20)
    topic: str | None = Field(default=None, max_length=20)
    priority: int = Field(default=2)  # 1 high, 2 normal, 3 low
    # new | acknowledged | answered | closed
    state: str = Field(default="new", max_length=20, index=True)
    close_reason: str | None = Field(default=None, max_length=200)
    assignee_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)  # when the citizen's message arrived
    first_response_due: datetime
    resolution_due: datetime
    warn_at: datetime
    warned_at: datetime | None = None
    escalated_at: datetime | None = None
    first_response_at: datetime | None = None
    answered_at: datetime | None = None
    closed_at: datetime | None = None
    # Lease for workers that send reminders/escalations (several processes, one DB).
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = None


class Reply(SQLModel, table=True):
    """An answer to a message: automatic (FAQ) or by a responder, through one channel."""

    __table_args__ = (Index("ix_reply_auto_once", "account_id", "sender_id", "faq_rule", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", index=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    account_id: int = Field(foreign_key="account.id")
    sender_id: str = Field(default="", max_length=100)  # the citizen answered
    author_id: int | None = Field(default=None, foreign_key="user.id")  # None for automatic replies
    automatic: bool = Field(default=False)
    faq_rule: str | None = Field(default=None, max_length=100)
    # wechat_passive | wechat_comment | wechat_custom | weibo_comment
    channel: str = Field(max_length=20)
    text: str = Field(sa_column=Column(Text, nullable=False))
    # pending | sending | sent | failed
    state: str = Field(default="pending", max_length=20, index=True)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    remote_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = None


class TicketNote(SQLModel, table=True):
    """Internal note on a ticket (never sent to the citizen)."""

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    author_id: int | None = Field(default=None, foreign_key="user.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class ReplyTemplate(SQLModel, table=True):
    """A department's canned answer (答复模板)."""

    __table_args__ = (UniqueConstraint("department_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    department_id: int = Field(foreign_key="department.id")
    name: str = Field(max_length=100)
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class DigestRun(SQLModel, table=True):
    """A daily digest as written and where it was delivered (kept so a failed delivery can be retried)."""

    __table_args__ = (UniqueConstraint("organisation_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    day: str = Field(max_length=10)  # local date, YYYY-MM-DD
    markdown: str = Field(sa_column=Column(Text, nullable=False))
    html: str = Field(sa_column=Column(Text, nullable=False))
    # channel -> {"state": "sent"|"failed", "error": ..., "at": ...}
    deliveries: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Notification(SQLModel, table=True):
    """An outbox row: a ticket warning (提醒) or escalation (督办) to deliver by e-mail or the WeCom robot.

    Written in the transaction that records the warning or escalation; the `notifications.send` job
    claims pending rows with a lease, sends them and records the outcome (bot/tickets/notifications.py).
    """

    __table_args__ = (
        Index("ix_notification_due", "state", "next_attempt_at"),
        Index("ix_notification_recipient", "recipient", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    kind: str = Field(max_length=20)  # warning | escalation
    channel: str = Field(max_length=10)  # email | wecom
    # The user told (username); "" for the WeCom group message, whose text names everyone told.
    recipient: str = Field(default="", max_length=64)
    address: str = Field(default="", max_length=200)  # e-mail address; "" for WeCom
    subject: str = Field(max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    # pending | sent | failed
    state: str = Field(default="pending", max_length=20)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = None


class InboundDelivery(SQLModel, table=True):
    """A verified WeChat callback delivery as received (raw XML), stored once before it is answered.

    The callback answers as soon as this row is written; the `inbound.process` job claims pending
    rows with a lease and turns each into a Message (triage, routing, tickets). (account_id,
    dedupe_key) makes a redelivery find the first copy; (account_id, timestamp, nonce) is the
    nonce cache: a signature seen before may only carry the same message again (replay check).
    """

    __table_args__ = (
        UniqueConstraint("account_id", "dedupe_key"),
        UniqueConstraint("account_id", "timestamp", "nonce"),
        Index("ix_inbounddelivery_pending", "processed_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    dedupe_key: str = Field(max_length=200)
    timestamp: int  # the signature's timestamp (seconds)
    nonce: str = Field(max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))  # plain XML (decrypted in AES mode)
    arrived_at: datetime
    # The exact answer given ("success" or the passive reply XML), so a redelivery gets the same.
    reply_xml: str = Field(default="success", sa_column=Column(Text, nullable=False, default="success"))
    processed_at: datetime | None = None
    message_id: int | None = Field(default=None, foreign_key="message.id")
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = None
