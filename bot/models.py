"""Every table govbot keeps. Tables are created only by Alembic migrations (migrations/).

Timestamps are aware UTC datetimes (bot.clock.utcnow); SQLModel refuses naive ones. Enumerations are stored as short strings so that
reports can be written in plain SQL and read in a database shell.
"""

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint, event, text
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
    # WeChat 作者 shown under the title (draft/add author, at most 16 characters); "" shows none.
    byline: str = Field(default="", max_length=100)
    # WeChat 留言: readers may comment on the article (draft/add need_open_comment).
    open_comment: bool = Field(default=True)
    author_id: int = Field(foreign_key="user.id", index=True)
    status: str = Field(default="draft", max_length=20, index=True)
    version: int = Field(default=1)
    content_hash: str = Field(max_length=64)
    scheduled_at: datetime | None = None
    rejection_reason: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # 发布账号与时间, chosen at 送审 and covered by content_hash: the signers approve them with the text.
    # Account ids, sorted; None before the post was first submitted.
    target_account_ids: list[int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Signed publication time (UTC): publishing may be later (a retry), never earlier. None: the editor
    # chooses the time after the last sign-off.
    planned_at: datetime | None = None


class PostVersion(SQLModel, table=True):
    """What one submitted version said (标题、正文、账号、时间), kept so signers see what changed since they signed."""

    __table_args__ = (UniqueConstraint("post_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    version: int
    content_hash: str = Field(max_length=64)
    title: str = Field(max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    digest: str = Field(default="", max_length=300)
    weibo_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    byline: str = Field(default="", max_length=100)
    open_comment: bool = Field(default=True)
    cover_media_id: int | None = Field(default=None, foreign_key="media.id")
    target_account_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    planned_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


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
    # Why reads/shares stay empty for this post, when no platform API reports them (shown, not guessed).
    stats_unavailable: str | None = Field(default=None, max_length=300)
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
    # The text's words cut by jieba, space separated: what full-text search indexes (bot/search.py).
    search_text: str = Field(default="", sa_column=Column(Text, nullable=False, default="", server_default=""))
    # WeChat CreateTime as sent when it was implausible (far past or future): received_at is then
    # the arrival time. None when the platform's time was used.
    untrusted_create_time: str | None = Field(default=None, max_length=64)


@event.listens_for(Message, "before_insert")
def _index_words(_mapper, _connection, message: Message) -> None:
    """Messages added through the ORM get their search words too (the ingest path sets them itself)."""
    if message.text and not message.search_text:
        from bot.search import search_text  # imported here: search imports this module

        message.search_text = search_text(message.text)


class PollCursor(SQLModel, table=True):
    """Where comment polling stopped, per account and scope (WeChat article, Weibo to_me)."""

    account_id: int = Field(foreign_key="account.id", primary_key=True)
    scope: str = Field(primary_key=True, max_length=200)
    cursor: str = Field(default="", max_length=200)
    backoff_until: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    # WeChat articles are polled on a schedule of their own (bot.inbound.schedule): when next, when a new
    # comment was last found (activity), when the whole list was last read again (rescan).
    next_poll_at: datetime | None = None
    last_new_at: datetime | None = None
    full_scan_at: datetime | None = None


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
    """An outbox row: a ticket warning (提醒) or escalation (督办), or a post's news (待审签、退回、已发布、
    发布失败), to deliver by e-mail or the WeCom robot, or to show in the console (channel "console").

    Written in the transaction that records the event; the `notifications.send` job claims pending
    rows with a lease, sends them and records the outcome (bot/tickets/notifications.py). Console rows
    are written as sent and read in the console (bot/publishing/notices.py).
    """

    __table_args__ = (
        Index("ix_notification_due", "state", "next_attempt_at"),
        Index("ix_notification_recipient", "recipient", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    # warning | escalation (tickets); post_waiting | post_rejected | post_published | post_failed
    kind: str = Field(max_length=20)
    channel: str = Field(max_length=10)  # email | wecom | console
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
    post_id: int | None = Field(default=None, foreign_key="post.id", index=True)
    read_at: datetime | None = None  # console notices: when the recipient opened it


class Correction(SQLModel, table=True):
    """A responder's correction of a message's intent or topic (纠正分类): who, when, from what to what.

    The message keeps the corrected values; these rows are the training material for the rules
    (`govbot rules learn`) and show where the rules disagree with the people who read the messages.
    """

    __table_args__ = (Index("ix_correction_message", "message_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id")
    user_id: int = Field(foreign_key="user.id")
    old_intent: str | None = Field(default=None, max_length=20)
    old_topic: str | None = Field(default=None, max_length=20)
    intent: str | None = Field(default=None, max_length=20)
    topic: str | None = Field(default=None, max_length=20)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Rectification(SQLModel, table=True):
    """A problem an inspection indicator found on an account, and its rectification (整改): what was done,
    when, by whom. Found by the daily evaluation (once per account, indicator and evidence); the office
    completes it in the console; the 自查报告 lists them."""

    __table_args__ = (UniqueConstraint("account_id", "indicator", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    indicator: str = Field(max_length=50)
    key: str = Field(max_length=100)  # what the evidence is about: a post, a ticket, the day a gap began
    problem: str = Field(sa_column=Column(Text, nullable=False))
    found_on: date
    measure: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # 整改措施
    fixed_on: date | None = None
    fixed_by: str = Field(default="", max_length=64)  # username
    created_at: datetime = Field(default_factory=utcnow)


class WebSession(SQLModel, table=True):
    """A console login (登录会话), kept here so that logout, a password change or an admin ends it at once.

    The cookie carries a random token; only its keyed hash is stored. Rows of visitors not logged in
    hold the login form's CSRF token and flashes; expired rows are removed as they are met.
    """

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    address: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow, index=True)


class LoginThrottle(SQLModel, table=True):
    """Failed log-ins per user name and per client address (登录失败限制), shared by every process."""

    key: str = Field(primary_key=True, max_length=200)  # "user:<name>" or "addr:<address>"
    failures: int = Field(default=0)
    last_failure_at: datetime = Field(default_factory=utcnow)
    locked_until: datetime | None = None


class QuotaUsage(SQLModel, table=True):
    """Calls spent from one account's budget (调用额度) for one platform API in one window.

    Shared by every process: a call is counted by one UPDATE that refuses to pass the limit, so
    workers never overspend between them. `closed` marks a window the platform itself declared
    exhausted (WeChat 45009, Weibo 10022-10024): nothing more is tried until window_end.
    """

    __table_args__ = (UniqueConstraint("account_id", "api", "window_start"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    api: str = Field(max_length=60)  # e.g. freepublish/get, comment/list, weibo:calls
    window_start: datetime
    window_end: datetime
    used: int = Field(default=0)
    # The limit in force when the window was last spent from (config may change between windows).
    limit: int = Field(default=0)
    closed: bool = Field(default=False)
    updated_at: datetime = Field(default_factory=utcnow)


class SystemEvent(SQLModel, table=True):
    """A platform notice pushed to the callback (PUBLISHJOBFINISH, MASSSENDJOBFINISH, LOCATION, card events).

    Not a citizen message: never triaged, ticketed or counted as interaction; kept for the record
    and handled by what it reports (a publish job's outcome settles its publication).
    """

    __table_args__ = (UniqueConstraint("account_id", "dedupe_key"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    event: str = Field(max_length=50)  # lower case, e.g. publishjobfinish
    dedupe_key: str = Field(max_length=200)
    # What it is about: the publish_id, MsgID of a mass/template send, a card id ...
    subject: str = Field(default="", max_length=200)
    # What it did here, e.g. "publication 12 published", or why nothing was done.
    outcome: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    raw: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    received_at: datetime
    stored_at: datetime = Field(default_factory=utcnow)


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
        # The once-per-citizen check of the callback's automatic answers; only answered rows are indexed.
        Index("ix_inbounddelivery_answered", "account_id", "sender_id", "faq_rule",
              sqlite_where=text("faq_rule IS NOT NULL"), postgresql_where=text("faq_rule IS NOT NULL")),
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
    # A passive automatic answer given in that reply (the FAQ rule's id, or "welcome"), and to whom: the
    # worker records it as a sent Reply; until then it counts for the once-per-citizen limit.
    faq_rule: str | None = Field(default=None, max_length=100)
    sender_id: str | None = Field(default=None, max_length=100)
    processed_at: datetime | None = None
    message_id: int | None = Field(default=None, foreign_key="message.id")
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = None


class CoverMaterial(SQLModel, table=True):
    """A cover image already in a WeChat account's permanent material library (永久素材), by the image's
    sha256: later articles with the same cover reuse its media_id instead of uploading it again (the
    library has a hard cap, 图片素材上限 100000). Shared by every worker; an entry WeChat refuses (40007)
    is dropped and the cover uploaded again (bot.connectors.covers)."""

    __table_args__ = (UniqueConstraint("account_id", "sha256"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    sha256: str = Field(max_length=64)
    media_id: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
