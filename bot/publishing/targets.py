"""Where and when a post goes out (发布账号与时间): chosen at 送审, signed with the text.

The accounts and the planned time are part of the content hash, so a sign-off holds for them too:
changing them is an edit (new version, sign-offs void). An editor may choose only the accounts of
their own department unless `posts.any_account_editors` names them (or they have no department, or
are admin); the server enforces it here, the forms only offer what this module allows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session, col, select

from bot.clock import to_local
from bot.config import Config
from bot.errors import PermissionDenied
from bot.labels import label
from bot.models import Account, Media, Post, PostVersion, SignOff, User
from bot.publishing.diff import Snapshot, VersionDiff, compare


def may_target_any(config: Config, user: User) -> bool:
    return user.has_role("admin") or user.department_id is None or user.username in config.posts.any_account_editors


def allowed_accounts(*, session: Session, config: Config, user: User) -> list[Account]:
    """The enabled accounts `user` may choose at 送审, by platform then name."""
    query = select(Account).where(Account.enabled).order_by(Account.platform, Account.name)
    if not may_target_any(config, user):
        query = query.where(Account.department_id == user.department_id)
    return list(session.exec(query))


def require_allowed(*, session: Session, config: Config, user: User, accounts: Iterable[Account]) -> None:
    allowed = {a.id for a in allowed_accounts(session=session, config=config, user=user)}
    refused = [a.name for a in accounts if a.id not in allowed]
    if refused:
        raise PermissionDenied("post.accounts_not_own", user=user.username, accounts="、".join(refused))


def target_accounts(*, session: Session, post: Post) -> list[Account]:
    ids = post.target_account_ids or []
    if not ids:
        return []
    rows = {a.id: a for a in session.exec(select(Account).where(col(Account.id).in_(ids)))}
    return [rows[i] for i in ids if i in rows]


def describe(*, accounts: Iterable[Account], planned_at: datetime | None, tz: str) -> dict:
    """What the audit log records with a submission or sign-off: the accounts and the time signed."""
    return {"targets": [f"{a.name}（{label(a.platform, 'platform')}）" for a in accounts],
            "planned_at": to_local(planned_at, tz).isoformat(timespec="minutes") if planned_at else None}


def snapshot(*, session: Session, post: Post) -> PostVersion:
    """Keep what this version says (once per version; a resubmission refreshes it)."""
    row = session.exec(select(PostVersion).where(PostVersion.post_id == post.id,
                                                 PostVersion.version == post.version)).first()
    row = row or PostVersion(post_id=post.id, version=post.version)
    row.content_hash = post.content_hash
    row.title, row.body, row.digest, row.weibo_text = post.title, post.body, post.digest, post.weibo_text
    row.byline, row.open_comment = post.byline, post.open_comment
    row.cover_media_id = post.cover_media_id
    row.target_account_ids = list(post.target_account_ids or [])
    row.planned_at = post.planned_at
    session.add(row)
    session.flush()
    return row


def has_snapshot(*, session: Session, post: Post) -> bool:
    return session.exec(select(PostVersion.id).where(PostVersion.post_id == post.id,
                                                     PostVersion.version == post.version)).first() is not None


def _as_snapshot(session: Session, row: Post | PostVersion, tz: str) -> Snapshot:
    cover = session.get(Media, row.cover_media_id) if row.cover_media_id is not None else None
    ids = row.target_account_ids or []
    names = {a.id: a.name for a in session.exec(select(Account).where(col(Account.id).in_(ids)))} if ids else {}
    return Snapshot(title=row.title, body=row.body, digest=row.digest, weibo_text=row.weibo_text,
                    byline=row.byline, open_comment=row.open_comment, cover=cover.sha256 if cover else "", accounts=tuple(names.get(i, str(i)) for i in ids),
                    planned_at=to_local(row.planned_at, tz).strftime("%Y-%m-%d %H:%M") if row.planned_at else "")


def since_last_signed(*, session: Session, post: Post, tz: str) -> tuple[int | None, VersionDiff | None]:
    """The version someone last signed (voided or not) and what changed since; (None, None) when
    nobody signed any version yet."""
    last = session.exec(select(SignOff).where(SignOff.post_id == post.id, SignOff.decision == "approve")
                        .order_by(col(SignOff.id).desc())).first()
    if last is None:
        return None, None
    if last.post_version == post.version:
        return last.post_version, VersionDiff()
    old = session.exec(select(PostVersion).where(PostVersion.post_id == post.id,
                                                 PostVersion.version == last.post_version)).first()
    if old is None:
        return last.post_version, None
    return last.post_version, compare(_as_snapshot(session, old, tz), _as_snapshot(session, post, tz))
