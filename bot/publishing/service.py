"""Posts from draft to scheduled: create, edit, submit, schedule, unschedule; and how they are shown.

Status: draft -> in_review (submitted, checks passed) -> approved (every sign-off stage signed) ->
scheduled (one Publication per account, claimed and published by the scheduler). A rejection sends
the post to "rejected"; any edit returns it to "draft", voids every sign-off and cancels its pending
publications. Every action writes an audit event with the version and content hash it acted on.

Sign-off itself lives in bot.publishing.signoff; the checks in bot.publishing.checks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from bot.audit import record
from bot.clock import to_local, to_utc, utcnow
from bot.config import Config
from bot.errors import CheckFailed, GovbotError, InvalidState, NotFound, PermissionDenied
from bot.models import Account, AuditEvent, Media, Post, Publication, User
from bot.publishing.checks import (
    WECHAT_IMAGE_MAX_BYTES,
    Problem,
    check_post,
    cover_info,
    image_kind,
    rules_for,
)
from bot.publishing.signoff import current_chain, post_signoffs, touch_post, void_signoffs
from bot.users import require_role

# partially_failed / failed: set by the scheduler when a post's publications end.
POST_STATUSES = ("draft", "in_review", "rejected", "approved", "scheduled", "published", "partially_failed", "failed")
# A post in one of these states with a complete sign-off chain may be (re)scheduled.
SCHEDULABLE = ("approved", "scheduled", "published", "partially_failed", "failed")
PUBLICATION_STATES = ("pending", "publishing", "published", "failed", "missed", "cancelled")
# Publications the platform may already have: the post can no longer change under them.
LIVE_STATES = ("publishing", "published")
# A publication in one of these states is scheduled again by resetting it.
RESTARTABLE_STATES = ("cancelled", "failed", "missed")
EDITABLE_FIELDS = ("title", "body", "digest", "weibo_text")
MIME = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "bmp": "image/bmp"}

# (filename, data, mime or None): the MIME type is taken from the file's bytes, not trusted from the client.
CoverUpload = tuple[str, bytes, str | None]


def content_hash(*, title: str, body: str, digest: str, weibo_text: str, cover_sha256: str | None) -> str:
    """sha256 over exactly what gets published; a sign-off holds for this hash only."""
    payload = json.dumps([title, body, digest, weibo_text, cover_sha256 or ""], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _post_hash(session: Session, post: Post) -> str:
    cover = session.get(Media, post.cover_media_id) if post.cover_media_id is not None else None
    return content_hash(title=post.title, body=post.body, digest=post.digest, weibo_text=post.weibo_text,
                        cover_sha256=cover.sha256 if cover else None)


def save_cover(*, session: Session, filename: str, data: bytes, mime: str | None = None) -> Media:
    """Store an uploaded cover image. Refuses what is not an image or is larger than any platform takes."""
    name = (filename or "cover").rsplit("/", 1)[-1][:200]
    if not data:
        raise GovbotError(f"cover {name!r} is empty")
    if len(data) > WECHAT_IMAGE_MAX_BYTES:
        raise GovbotError(f"cover {name!r} has {len(data)} bytes; the limit is {WECHAT_IMAGE_MAX_BYTES}")
    kind = image_kind(data)
    if kind is None:
        raise GovbotError(f"cover {name!r} is not a JPEG, PNG, GIF or BMP image")
    media = Media(filename=name, mime=MIME[kind], sha256=hashlib.sha256(data).hexdigest(), data=data)
    session.add(media)
    session.flush()
    return media


def _acting(user: User) -> None:
    if not user.active:
        raise PermissionDenied(f"user {user.username} is disabled")


def _audit(session: Session, user: User | str, action: str, post: Post, **detail: Any) -> None:
    actor = user if isinstance(user, str) else user.username
    record(session=session, actor=actor, action=action, subject_type="post", subject_id=post.id,
           version=post.version, content_hash=post.content_hash, **detail)


def create_post(*, session: Session, author: User, title: str, body: str, digest: str = "", weibo_text: str = "",
                cover: CoverUpload | None = None, byline: str = "", open_comment: bool = True) -> Post:
    """A new draft by an editor (宣传干事). Checks run at submission, so a draft may be incomplete."""
    _acting(author)
    require_role(author, "editor")
    media = save_cover(session=session, filename=cover[0], data=cover[1], mime=cover[2]) if cover else None
    now = utcnow()
    post = Post(title=title, body=body, digest=digest, weibo_text=weibo_text, author_id=author.id,
                byline=byline, open_comment=open_comment,
                cover_media_id=media.id if media else None, status="draft", version=1,
                content_hash=content_hash(title=title, body=body, digest=digest, weibo_text=weibo_text,
                                          cover_sha256=media.sha256 if media else None),
                created_at=now, updated_at=now)
    session.add(post)
    session.flush()
    _audit(session, author, "post.created", post, title=title, cover=media.filename if media else None)
    return post


def get_post(*, session: Session, post_id: int) -> Post:
    post = session.get(Post, post_id)
    if post is None:
        raise NotFound(f"no post with id {post_id}")
    return post


def list_posts(*, session: Session, status: str | None = None, limit: int = 100) -> list[Post]:
    if status is not None and status not in POST_STATUSES:
        raise GovbotError(f"unknown status {status!r}; statuses are {', '.join(POST_STATUSES)}")
    query = select(Post).order_by(col(Post.updated_at).desc(), col(Post.id).desc()).limit(limit)
    if status is not None:
        query = query.where(Post.status == status)
    return list(session.exec(query))


def _publications(session: Session, post: Post) -> list[Publication]:
    return list(session.exec(select(Publication).where(Publication.post_id == post.id).order_by(Publication.id)))


def _take_pending(session: Session, pub: Publication, now: datetime, **values: Any) -> None:
    """Change a pending publication, unless the scheduler holds its lease right now (compare-and-set)."""
    result = session.execute(
        update(Publication)
        .where(Publication.id == pub.id, Publication.state == "pending",
               or_(col(Publication.lease_until).is_(None), col(Publication.lease_until) < now))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise InvalidState(f"publication {pub.id} is being published right now; try again in a minute")
    session.refresh(pub)


def _cancel_pending(session: Session, post: Post, actor: str, reason: str, now: datetime,
                    account_ids: set[int] | None = None) -> list[Publication]:
    cancelled = []
    for pub in _publications(session, post):
        if pub.state != "pending" or (account_ids is not None and pub.account_id not in account_ids):
            continue
        _take_pending(session, pub, now, state="cancelled")
        record(session=session, actor=actor, action="publication.cancelled", subject_type="publication",
               subject_id=pub.id, version=post.version, content_hash=pub.content_hash, post_id=post.id,
               account_id=pub.account_id, reason=reason)
        cancelled.append(pub)
    return cancelled


def _attempted(pub: Publication) -> bool:
    """Pending again after an attempt (a retry): the platform may already hold it, so only the
    scheduler, which reconciles with the platform first, may settle it."""
    return pub.state == "pending" and pub.first_attempt_at is not None


def _refuse_if_live(session: Session, post: Post, doing: str) -> None:
    pubs = _publications(session, post)
    live = [p for p in pubs if p.state in LIVE_STATES]
    if live or post.status == "published":
        states = ", ".join(f"publication {p.id} {p.state}" for p in live) or "published"
        raise InvalidState(f"post {post.id} cannot be {doing}: it is already out or going out ({states}); "
                           "write a new post instead")
    _refuse_if_attempted([p for p in pubs if _attempted(p)], doing)


def _refuse_if_attempted(pubs: list[Publication], doing: str) -> None:
    if pubs:
        p = pubs[0]
        raise InvalidState(f"post {p.post_id} cannot be {doing}: publication {p.id} was already attempted and is "
                           f"waiting for a retry (last error: {p.last_error or 'none'}); the platform may have it. "
                           "Wait until it is published or failed")


@dataclass(frozen=True)
class EditResult:
    changed: bool
    fields: list[str] = field(default_factory=list)
    voided_signoffs: list[int] = field(default_factory=list)
    cancelled_publications: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.changed


def edit_post(*, session: Session, post: Post, user: User, title: str | None = None, body: str | None = None,
              digest: str | None = None, weibo_text: str | None = None, cover: CoverUpload | None = None,
              remove_cover: bool = False) -> EditResult:
    """Change the content. Any real change bumps the version, voids every sign-off, cancels pending
    publications and returns the post to draft. A result that is false: nothing changed."""
    _acting(user)
    require_role(user, "editor")
    if cover is not None and remove_cover:
        raise GovbotError("give a new cover or remove the cover, not both")
    _refuse_if_live(session, post, "edited")
    changes: dict[str, Any] = {k: v for k, v in {"title": title, "body": body, "digest": digest,
                                                 "weibo_text": weibo_text}.items()
                               if v is not None and v != getattr(post, k)}
    old_cover = session.get(Media, post.cover_media_id) if post.cover_media_id is not None else None
    new_cover = old_cover
    if remove_cover:
        new_cover = None
    elif cover is not None and (old_cover is None or hashlib.sha256(cover[1]).hexdigest() != old_cover.sha256):
        new_cover = save_cover(session=session, filename=cover[0], data=cover[1], mime=cover[2])
    new_hash = content_hash(**{k: changes.get(k, getattr(post, k)) for k in EDITABLE_FIELDS},
                            cover_sha256=new_cover.sha256 if new_cover else None)
    if new_hash == post.content_hash:
        return EditResult(False)
    now = touch_post(session=session, post=post)
    previous = {"version": post.version, "content_hash": post.content_hash, "status": post.status}
    for k, v in changes.items():
        setattr(post, k, v)
    if new_cover is not old_cover:
        changes["cover"] = new_cover.filename if new_cover else None
        post.cover_media_id = new_cover.id if new_cover else None
    post.version += 1
    post.content_hash = new_hash
    voided = void_signoffs(session=session, post=post, now=now)
    cancelled = _cancel_pending(session, post, user.username, f"post edited to version {post.version}", now)
    post.status = "draft"
    post.scheduled_at = None
    session.add(post)
    session.flush()
    _audit(session, user, "post.edited", post, fields=sorted(changes), previous_version=previous["version"],
           previous_content_hash=previous["content_hash"], previous_status=previous["status"])
    if voided or cancelled:
        # The chain starts again: what a reviewer signed was another text.
        _audit(session, user, "post.chain_restarted", post, voided_signoffs=voided,
               cancelled_publications=[p.id for p in cancelled], reason="edited")
    return EditResult(True, sorted(changes), voided, [p.id for p in cancelled])


def default_platforms(*, session: Session, post: Post) -> list[str]:
    """Platforms a post is checked for before its accounts are chosen: every platform with an
    enabled account, Weibo only when the post has a Weibo text (the editor's sign it is meant for Weibo)."""
    platforms = set(session.exec(select(Account.platform).where(Account.enabled).distinct()))
    if not post.weibo_text.strip():
        platforms.discard("weibo")
    return sorted(platforms)


def check_existing_post(*, session: Session, config: Config, post: Post,
                        platforms: Iterable[str] | None = None) -> list[Problem]:
    """Run every check on a stored post (what `submit` would say), changing nothing."""
    targets = list(platforms) if platforms is not None else default_platforms(session=session, post=post)
    return check_post(title=post.title, body=post.body, digest=post.digest, weibo_text=post.weibo_text,
                      byline=post.byline,
                      cover=cover_info(session=session, media_id=post.cover_media_id), platforms=targets,
                      config=config, rules=rules_for(config))


def submit_post(*, session: Session, config: Config, post: Post, user: User,
                platforms: Sequence[str] | None = None) -> Post:
    """Send the post into the sign-off chain (送审) after the checks pass; raises CheckFailed otherwise."""
    _acting(user)
    require_role(user, "editor")
    if post.status not in ("draft", "rejected"):
        raise InvalidState(f"post {post.id} is {post.status}; only a draft or a rejected post can be submitted")
    for p in platforms or ():
        if p not in ("wechat", "weibo"):
            raise GovbotError(f"unknown platform {p!r}; platforms are wechat, weibo")
    targets = list(platforms) if platforms else default_platforms(session=session, post=post)
    problems = check_existing_post(session=session, config=config, post=post, platforms=targets)
    if problems:
        raise CheckFailed(problems)
    touch_post(session=session, post=post)
    post.status = "in_review"
    post.rejection_reason = None
    session.add(post)
    _audit(session, user, "post.submitted", post, platforms=targets)
    return post


def resolve_accounts(*, session: Session, names: Iterable[str | int]) -> list[Account]:
    """Accounts by name (or id), enabled, each once."""
    out: list[Account] = []
    for name in names:
        acc = session.get(Account, name) if isinstance(name, int) else session.exec(
            select(Account).where(Account.name == name)).first()
        if acc is None:
            known = ", ".join(session.exec(select(Account.name).order_by(Account.name)))
            raise NotFound(f"no account named {name!r}; accounts: {known or 'none'}")
        if not acc.enabled:
            raise InvalidState(f"account {acc.name} is disabled")
        if acc not in out:
            out.append(acc)
    if not out:
        raise GovbotError("name at least one account to publish to")
    return out


def schedule_post(*, session: Session, config: Config, post: Post, user: User, accounts: Iterable[str | int],
                  at: datetime | None = None) -> list[Publication]:
    """Publish a fully signed post on each account at `at` (naive: local time in config.timezone;
    None or past: now). One publication per account; scheduling again moves the time."""
    _acting(user)
    # Propaganda officers (editors) schedule what the chain approved; admins may too.
    require_role(user, "editor")
    if post.status not in SCHEDULABLE:
        raise InvalidState(f"post {post.id} is {post.status}; only a fully signed post can be scheduled")
    chain = current_chain(session=session, config=config, post=post)
    if not chain.complete:
        raise InvalidState(f"post {post.id} version {post.version} is not fully signed off "
                           f"(next stage: {chain.next_stage.name}); only a fully signed post can be scheduled")
    targets = resolve_accounts(session=session, names=accounts)
    problems = check_existing_post(session=session, config=config, post=post,
                                   platforms=sorted({a.platform for a in targets}))
    if problems:
        raise CheckFailed(problems)
    now = utcnow()
    due = now if at is None else to_utc(at, config.timezone)
    due = max(due, now)
    existing = {p.account_id: p for p in _publications(session, post)}
    touch_post(session=session, post=post)
    scheduled: list[Publication] = []
    for acc in targets:
        pub = existing.get(acc.id)
        if pub is None:
            pub = Publication(post_id=post.id, account_id=acc.id, state="pending", due_at=due, next_attempt_at=due,
                              content_hash=post.content_hash)
            action = "publication.scheduled"
        elif pub.state in LIVE_STATES:
            raise InvalidState(f"post {post.id} is already {pub.state} on {acc.name} (publication {pub.id})")
        elif pub.state == "pending":
            _take_pending(session, pub, now, due_at=due, next_attempt_at=due)
            action = "publication.rescheduled"
        else:
            if pub.content_hash != post.content_hash:
                # Platform ids of an attempt on older content must not be resumed with this one.
                pub.step = ""
                pub.remote_media_id = pub.remote_draft_id = pub.remote_publish_id = None
                pub.first_attempt_at = None
            # first_attempt_at is otherwise kept: the scheduler then asks the platform before publishing again.
            pub.state = "pending"
            pub.due_at = pub.next_attempt_at = due
            pub.attempts = 0
            pub.last_error = None
            pub.lease_owner = pub.lease_until = None
            pub.content_hash = post.content_hash
            action = "publication.rescheduled"
        session.add(pub)
        session.flush()
        record(session=session, actor=user.username, action=action, subject_type="publication", subject_id=pub.id,
               version=post.version, content_hash=post.content_hash, post_id=post.id, account=acc.name,
               due_at=due.isoformat())
        scheduled.append(pub)
    post.status = "scheduled"
    post.scheduled_at = _earliest_pending(session, post)
    session.add(post)
    _audit(session, user, "post.scheduled", post, accounts=[a.name for a in targets], due_at=due.isoformat())
    return scheduled


def _earliest_pending(session: Session, post: Post) -> datetime | None:
    session.flush()
    return session.exec(select(func.min(Publication.due_at)).where(
        Publication.post_id == post.id, Publication.state == "pending")).one()


def unschedule_post(*, session: Session, post: Post, user: User,
                    accounts: Iterable[str | int] | None = None) -> list[Publication]:
    """Cancel the post's pending publications (all, or on the accounts named). With none left
    pending the post is back to approved: it stays signed and can be scheduled again."""
    _acting(user)
    require_role(user, "editor")
    account_ids = {a.id for a in resolve_accounts(session=session, names=accounts)} if accounts else None
    pending = [p for p in _publications(session, post) if p.state == "pending"
               and (account_ids is None or p.account_id in account_ids)]
    if not pending:
        raise InvalidState(f"post {post.id} has no pending publication to cancel")
    _refuse_if_attempted([p for p in pending if _attempted(p)], "unscheduled")
    now = touch_post(session=session, post=post)
    cancelled = _cancel_pending(session, post, user.username, "unscheduled", now, account_ids)
    post.scheduled_at = _earliest_pending(session, post)
    if post.scheduled_at is None and post.status == "scheduled":
        post.status = "approved"
    session.add(post)
    _audit(session, user, "post.unscheduled", post, publications=[p.id for p in cancelled])
    return cancelled


def get_publication(*, session: Session, publication_id: int) -> Publication:
    pub = session.get(Publication, publication_id)
    if pub is None:
        raise NotFound(f"no publication with id {publication_id}")
    return pub


def list_publications(*, session: Session, state: str | None = None, post_id: int | None = None,
                      limit: int = 200) -> list[Publication]:
    if state is not None and state not in PUBLICATION_STATES:
        raise GovbotError(f"unknown state {state!r}; states are {', '.join(PUBLICATION_STATES)}")
    query = select(Publication).order_by(col(Publication.due_at).desc(), col(Publication.id).desc()).limit(limit)
    if state is not None:
        query = query.where(Publication.state == state)
    if post_id is not None:
        query = query.where(Publication.post_id == post_id)
    return list(session.exec(query))


# ---- views: one plain-data shape for the CLI and the JSON API ------------------------------------


def _t(dt: datetime | None, tz: str) -> str | None:
    return to_local(dt, tz).isoformat(timespec="seconds") if dt is not None else None


def _rows(session: Session, model: Any, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    return {row.id: row for row in session.exec(select(model).where(col(model.id).in_(ids)))}


def publication_view(*, session: Session, config: Config, publication: Publication,
                     post: Post | None = None, account: Account | None = None) -> dict[str, Any]:
    post = post or session.get(Post, publication.post_id)
    account = account or session.get(Account, publication.account_id)
    tz = config.timezone
    return {
        "id": publication.id,
        "post_id": publication.post_id,
        "post_title": post.title if post else None,
        "account": account.name if account else None,
        "platform": account.platform if account else None,
        "state": publication.state,
        "due_at": _t(publication.due_at, tz),
        "next_attempt_at": _t(publication.next_attempt_at, tz),
        "attempts": publication.attempts,
        "last_error": publication.last_error,
        "step": publication.step,
        "remote_id": publication.remote_id,
        "remote_url": publication.remote_url,
        "remote_media_id": publication.remote_media_id,
        "remote_draft_id": publication.remote_draft_id,
        "remote_publish_id": publication.remote_publish_id,
        "remote_msg_data_id": publication.remote_msg_data_id,
        "published_at": _t(publication.published_at, tz),
        "content_hash": publication.content_hash,
        # Scheduled content differs from the post's current content (it will not go out as is).
        "stale": bool(post and publication.content_hash != post.content_hash),
        "lease_owner": publication.lease_owner,
        "lease_until": _t(publication.lease_until, tz),
    }


def post_summary(*, post: Post, author: str | None, config: Config) -> dict[str, Any]:
    tz = config.timezone
    return {"id": post.id, "title": post.title, "status": post.status, "version": post.version,
            "content_hash": post.content_hash, "author": author, "updated_at": _t(post.updated_at, tz),
            "scheduled_at": _t(post.scheduled_at, tz), "rejection_reason": post.rejection_reason}


def list_post_views(*, session: Session, config: Config, status: str | None = None, limit: int = 100) -> list[dict]:
    posts = list_posts(session=session, status=status, limit=limit)
    authors = _rows(session, User, {p.author_id for p in posts})
    return [post_summary(post=p, author=authors[p.author_id].username if p.author_id in authors else None,
                         config=config) for p in posts]


def post_view(*, session: Session, config: Config, post: Post, history: bool = True) -> dict[str, Any]:
    """Everything about a post: content, the sign-off chain and its history, publications, audit trail."""
    tz = config.timezone
    signoffs = post_signoffs(session=session, post_id=post.id)
    pubs = _publications(session, post)
    users = _rows(session, User, {so.user_id for so in signoffs} | {post.author_id})
    accounts = _rows(session, Account, {p.account_id for p in pubs})
    chain = current_chain(session=session, config=config, post=post)
    cover = session.get(Media, post.cover_media_id) if post.cover_media_id is not None else None

    def who(user_id: int) -> dict[str, Any]:
        u = users.get(user_id)
        return {"username": u.username, "display_name": u.display_name} if u else {"username": None, "display_name": None}

    view = post_summary(post=post, author=users[post.author_id].username if post.author_id in users else None,
                        config=config)
    view.update({
        "body": post.body,
        "digest": post.digest,
        "weibo_text": post.weibo_text,
        "cover": {"id": cover.id, "filename": cover.filename, "mime": cover.mime, "size": len(cover.data),
                  "sha256": cover.sha256} if cover else None,
        "created_at": _t(post.created_at, tz),
        "chain": {
            "complete": chain.complete,
            "next_stage": ({"index": chain.next_stage.index, "name": chain.next_stage.name,
                            "role": chain.next_stage.role} if chain.next_stage else None),
            "stages": [{"index": s.index, "name": s.name, "role": s.role,
                        "signed_by": who(s.signoff.user_id) if s.signoff else None,
                        "signed_at": _t(s.signoff.created_at, tz) if s.signoff else None,
                        "signoff_id": s.signoff.id if s.signoff else None} for s in chain.stages],
        },
        "signoffs": [{"id": so.id, "stage_index": so.stage_index, "stage": so.stage_name, "role": so.role,
                      **who(so.user_id), "decision": so.decision, "reason": so.reason, "version": so.post_version,
                      "content_hash": so.content_hash, "at": _t(so.created_at, tz),
                      "voided_at": _t(so.voided_at, tz)} for so in signoffs],
        "publications": [publication_view(session=session, config=config, publication=p, post=post,
                                          account=accounts.get(p.account_id)) for p in pubs],
    })
    if history:
        events = session.exec(select(AuditEvent).where(AuditEvent.subject_type == "post", AuditEvent.subject_id == post.id)
                              .order_by(AuditEvent.at, AuditEvent.id))
        view["history"] = [{"at": _t(e.at, tz), "actor": e.actor, "action": e.action, "version": e.version,
                            "content_hash": e.content_hash, "detail": e.detail} for e in events]
    return view
