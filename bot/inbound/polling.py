"""Comment polling (留言 / 评论): neither platform pushes comments, so a periodic job fetches them.

For each enabled account, one worker at a time (a lease row in KeyValue, `poll-lease:<account id>`,
taken by compare-and-set and expiring on its own if the worker dies):
- WeChat: each publication published within polling.lookback_days that has a msg_data_id, when its
  own schedule says so (bot.inbound.schedule: new or busy articles often, old ones rarely),
  `list_comments(target="msg_data_id/index")` (the connector pages with count <= 49), the whole
  list again every polling.full_rescan_s; comment/list spends at most polling.comment_budget_share
  of the account's daily budget (bot.connectors.quota);
- Weibo: `comments/to_me` (target "to_me"), then `comments/show` for one of our recent statuses
  (target: the status id), each status at most every WEIBO_STATUS_EVERY_S, and the account at most
  every WEIBO_ACCOUNT_EVERY_S. Weibo allows about 150 calls per hour per user and app, publishing
  and replies included; polling takes at most 60 of them (plus paging).

Where each target stopped is a PollCursor (account, scope); a page of comments and its cursor are
committed together, and every comment goes through `ingest`, which stores it once (unique on the
platform's comment id), so polling the same page twice stores nothing new. Rate limits (WeChat
45009, Weibo 10022-10024) set the account's backoff_until; other errors back off that target only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from loguru import logger
from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from bot.clock import to_local, to_utc, utcnow
from bot.connectors.base import CommentPage, Connector, PermanentError, PlatformError, RemoteComment
from bot.connectors.quota import QuotaWait
from bot.connectors.registry import connector_for
from bot.context import Context
from bot.inbound.schedule import needs_full_rescan, next_poll
from bot.inbound.store import Incoming, ingest
from bot.models import Account, KeyValue, PollCursor, Publication

ACCOUNT_SCOPE = "*"  # PollCursor row holding the account-wide rate-limit backoff
RATE_LIMIT_CODES = {"45009", "10022", "10023", "10024"}
WEIBO_RATE_LIMIT_BACKOFF_S = 3600.0  # Weibo counts calls per hour
TARGET_ERROR_BACKOFF_S = 3600.0  # a target the platform refuses (comments closed, deleted article ...)
WEIBO_STATUS_EVERY_S = 1800.0
WEIBO_ACCOUNT_EVERY_S = 120.0
LEASE_PREFIX = "poll-lease:"


@dataclass
class PollReport:
    accounts: int = 0
    targets: int = 0
    new: int = 0
    seen: int = 0
    errors: list[str] = field(default_factory=list)


# ---- the per-account lease ---------------------------------------------------------------------


def take_lease(ctx: Context, account_id: int, *, seconds: float) -> bool:
    """Whether this worker may poll the account now (nobody else holds an unexpired lease)."""
    key, now = f"{LEASE_PREFIX}{account_id}", utcnow()
    until = now + timedelta(seconds=seconds)
    with ctx.session() as session:
        dialect = session.get_bind().dialect.name
        insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]
        created = session.execute(
            insert(KeyValue).values(key=key, value=ctx.worker_id, expires_at=until, updated_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
        ).rowcount
        if created == 1:
            return True
        taken = session.execute(
            update(KeyValue)
            .where(KeyValue.key == key, or_(KeyValue.expires_at.is_(None), KeyValue.expires_at < now,
                                            KeyValue.value == ctx.worker_id))
            .values(value=ctx.worker_id, expires_at=until, updated_at=now)
        ).rowcount
        return taken == 1


def release_lease(ctx: Context, account_id: int) -> None:
    with ctx.session() as session:
        session.execute(
            update(KeyValue)
            .where(KeyValue.key == f"{LEASE_PREFIX}{account_id}", KeyValue.value == ctx.worker_id)
            .values(expires_at=utcnow())
        )


# ---- cursors -----------------------------------------------------------------------------------


def _aware(dt: datetime | None) -> datetime | None:
    return None if dt is None else dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _cursor(session: Session, account_id: int, scope: str) -> PollCursor:
    row = session.get(PollCursor, (account_id, scope))
    if row is None:
        row = PollCursor(account_id=account_id, scope=scope)
        session.add(row)
        session.flush()
    return row


def backing_off(session: Session, account_id: int, scope: str, now: datetime) -> bool:
    row = session.get(PollCursor, (account_id, scope))
    until = _aware(row.backoff_until) if row else None
    return until is not None and until > now


def _back_off(ctx: Context, account_id: int, scope: str, until: datetime) -> None:
    with ctx.session() as session:
        row = _cursor(session, account_id, scope)
        row.backoff_until = until
        row.updated_at = utcnow()


def _rate_limit_until(ctx: Context, account: Account, exc: PlatformError, now: datetime) -> datetime:
    if getattr(exc, "retry_after", None):
        return now + timedelta(seconds=exc.retry_after)
    if str(exc.code) == "45009":
        # WeChat's daily quotas reset at midnight Beijing time.
        tomorrow = to_local(now, ctx.tz).date() + timedelta(days=1)
        return to_utc(datetime(tomorrow.year, tomorrow.month, tomorrow.day), ctx.tz)
    return now + timedelta(seconds=WEIBO_RATE_LIMIT_BACKOFF_S)


# ---- one target --------------------------------------------------------------------------------


def _incoming(account: Account, comment: RemoteComment, publication_id: int | None) -> Incoming:
    kind = "wechat_comment" if account.platform == "wechat" else "weibo_comment"
    raw = json.dumps({"comment": comment.raw, "reply_target": comment.reply_target}, ensure_ascii=False, default=str)
    return Incoming(
        account_id=account.id, kind=kind, dedupe_key=comment.dedupe_key, received_at=comment.created_at,
        msg_type="text", sender_id=comment.sender_id, sender_name=comment.sender_name, text=comment.text,
        raw=raw, remote_ref=comment.ref, publication_id=publication_id, already_replied=comment.replied,
    )


def _publication_for(session: Session, account: Account, ref: str, default: int | None) -> int | None:
    """The publication a comment is under (Weibo to_me lists comments of every status)."""
    if default is not None or account.platform != "weibo" or not ref:
        return default
    return session.execute(
        select(Publication.id).where(Publication.account_id == account.id, Publication.remote_id == ref)
    ).scalar_one_or_none()


def poll_target(ctx: Context, connector: Connector, account: Account, *, target: str, scope: str,
                publication_id: int | None, report: PollReport, published_at: datetime | None = None) -> None:
    """Fetch the comments under one target after its cursor; store them and the new cursor together.

    With `published_at` (a WeChat article) the target's own schedule is kept: a full rescan when due,
    and when to poll it next."""
    now = utcnow()
    polling = ctx.config.polling
    with ctx.session() as session:
        row = _cursor(session, account.id, scope)
        cursor, full_scan_at, last_new_at = row.cursor, _aware(row.full_scan_at), _aware(row.last_new_at)
    full = published_at is not None and needs_full_rescan(now=now, full_scan_at=full_scan_at,
                                                         every_s=polling.full_rescan_s)
    page: CommentPage = connector.list_comments(target=target, cursor=cursor, full=full,
                                                share=polling.comment_budget_share)
    report.targets += 1
    new = 0
    with ctx.session() as session:
        for comment in page.comments:
            if account.platform == "weibo" and comment.sender_id == account.remote_id:
                continue  # our own replies under our statuses
            pub_id = _publication_for(session, account, comment.ref, publication_id)
            result = ingest(session=session, ctx=ctx, incoming=_incoming(account, comment, pub_id))
            if result.created:
                new += 1
            else:
                report.seen += 1
        report.new += new
        row = _cursor(session, account.id, scope)
        row.cursor = page.cursor[:200]
        row.backoff_until = None
        row.updated_at = now
        if published_at is not None:
            row.last_new_at = now if new else last_new_at
            row.full_scan_at = now if full else full_scan_at
            row.next_poll_at = next_poll(now=now, published_at=_aware(published_at), last_new_at=row.last_new_at,
                                         fresh_s=polling.fresh_interval_s)


def _wechat_target(pub: Publication) -> str:
    ref = pub.remote_msg_data_id or ""
    return ref if "/" in ref else f"{ref}/0"  # one article per post: index 0


Target = tuple[str, str, int | None, datetime | None]


def _targets(session: Session, ctx: Context, account: Account, now: datetime) -> list[Target]:
    """(target, scope, publication id, published_at of a scheduled WeChat article) to poll this tick, in order."""
    since = now - timedelta(days=ctx.config.polling.lookback_days)
    recent = select(Publication).where(
        Publication.account_id == account.id, Publication.state == "published", Publication.published_at >= since,
    ).order_by(Publication.published_at.desc())
    if account.platform == "wechat":
        pubs = session.execute(recent.where(Publication.remote_msg_data_id.is_not(None))).scalars()
        out: list[Target] = []
        for pub in pubs:
            target = _wechat_target(pub)
            row = session.get(PollCursor, (account.id, f"wechat:{target}"))
            due = _aware(row.next_poll_at) if row else None
            if due is None or due <= now:
                out.append((target, f"wechat:{target}", pub.id, pub.published_at))
        return out
    to_me = session.get(PollCursor, (account.id, "weibo:to_me"))
    if to_me is not None and (now - _aware(to_me.updated_at)).total_seconds() < WEIBO_ACCOUNT_EVERY_S:
        return []
    targets: list[Target] = [("to_me", "weibo:to_me", None, None)]
    due: list[tuple[datetime, Publication]] = []
    for pub in session.execute(recent.where(Publication.remote_id.is_not(None))).scalars():
        row = session.get(PollCursor, (account.id, f"weibo:{pub.remote_id}"))
        last = _aware(row.updated_at) if row else None
        if last is None or (now - last).total_seconds() >= WEIBO_STATUS_EVERY_S:
            due.append((last or datetime.min.replace(tzinfo=UTC), pub))
    if due:
        _, pub = min(due, key=lambda item: item[0])  # the status polled longest ago
        targets.append((pub.remote_id, f"weibo:{pub.remote_id}", pub.id, None))
    return targets


def poll_account(ctx: Context, account: Account, connector: Connector, report: PollReport) -> None:
    now = utcnow()
    with ctx.session() as session:
        if backing_off(session, account.id, ACCOUNT_SCOPE, now):
            return
        targets = [t for t in _targets(session, ctx, account, now) if not backing_off(session, account.id, t[1], now)]
    for target, scope, publication_id, published_at in targets:
        try:
            poll_target(ctx, connector, account, target=target, scope=scope, publication_id=publication_id,
                        report=report, published_at=published_at)
        except QuotaWait as exc:
            # The budget polling may spend is used up (or the platform closed the window): until it renews.
            report.errors.append(f"{account.name} {target}: {exc}")
            logger.info("comment polling of {} waits for its budget until {}", account.name, exc.until)
            _back_off(ctx, account.id, ACCOUNT_SCOPE, exc.until)
            return
        except PlatformError as exc:
            report.errors.append(f"{account.name} {target}: {exc}")
            if str(exc.code) in RATE_LIMIT_CODES:
                until = _rate_limit_until(ctx, account, exc, utcnow())
                logger.warning("comment polling of {} rate-limited until {}: {}", account.name, until, exc)
                _back_off(ctx, account.id, ACCOUNT_SCOPE, until)
                return
            if isinstance(exc, PermanentError):
                logger.error("comment polling of {} {} refused: {}", account.name, target, exc)
                _back_off(ctx, account.id, scope, utcnow() + timedelta(seconds=TARGET_ERROR_BACKOFF_S))
            else:
                logger.warning("comment polling of {} {} failed, next tick retries: {}", account.name, target, exc)


def poll_comments(ctx: Context) -> PollReport:
    """The periodic job: poll every enabled account that no other worker is polling."""
    report = PollReport()
    with ctx.session() as session:
        accounts = list(session.execute(select(Account).where(Account.enabled.is_(True)).order_by(Account.id)).scalars())
    lease_s = max(ctx.config.scheduler.lease_seconds, ctx.config.polling.interval_s * 2)
    for account in accounts:
        if not take_lease(ctx, account.id, seconds=lease_s):
            continue
        report.accounts += 1
        try:
            poll_account(ctx, account, connector_for(ctx, account), report)
        except Exception as exc:  # one broken account must not stop the others
            logger.exception("comment polling of {} failed", account.name)
            report.errors.append(f"{account.name}: {exc!r}")
        finally:
            release_lease(ctx, account.id)
    if report.new:
        logger.info("comment polling: {} new comment(s) on {} target(s)", report.new, report.targets)
    return report
