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
from bot.clock import to_utc, utcnow
from bot.config import Config
from bot.errors import CheckFailed, GovbotError, InvalidState, NotFound, PermissionDenied
from bot.labels import label
from bot.models import Account, Media, Post, Publication, User
from bot.permissions import allowed
from bot.publishing import notices
from bot.publishing.checks import (
    WECHAT_IMAGE_MAX_BYTES,
    check_post,
    cover_info,
    image_kind,
)
from bot.publishing.richtext import clean_body
from bot.publishing.signoff import contributors, current_chain, touch_post, void_signoffs
from bot.publishing.targets import (
    allowed_accounts,
    describe,
    has_snapshot,
    require_allowed,
    snapshot,
    target_accounts,
)
from bot.textcheck import Problem, rules_for
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
EDITABLE_FIELDS = ("title", "body", "digest", "weibo_text", "byline", "open_comment")
MIME = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "bmp": "image/bmp"}

# (filename, data, mime or None): the MIME type is taken from the file's bytes, not trusted from the client.
CoverUpload = tuple[str, bytes, str | None]


def content_hash(*, title: str, body: str, digest: str, weibo_text: str, cover_sha256: str | None,
                 targets: Sequence[int] | None = None, planned_at: datetime | None = None, byline: str = "",
                 open_comment: bool = True) -> str:
    """sha256 over exactly what gets published, where and when; a sign-off holds for this hash only.
    A post not yet submitted has no targets: its hash is over the content alone. The WeChat byline
    (作者) and the comment switch (留言) count only when set, so posts that never set them keep the
    hash they were signed with."""
    content: list = [title, body, digest, weibo_text, cover_sha256 or ""]
    if byline or not open_comment:
        content.append({"byline": byline, "open_comment": open_comment})
    if targets is not None:
        when = to_utc(planned_at, "UTC").isoformat(timespec="seconds") if planned_at else ""
        content += [sorted(targets), when]
    payload = json.dumps(content, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _post_hash(session: Session, post: Post) -> str:
    cover = session.get(Media, post.cover_media_id) if post.cover_media_id is not None else None
    return content_hash(title=post.title, body=post.body, digest=post.digest, weibo_text=post.weibo_text,
                        byline=post.byline, open_comment=post.open_comment,
                        cover_sha256=cover.sha256 if cover else None, targets=post.target_account_ids,
                        planned_at=post.planned_at)


def save_cover(*, session: Session, filename: str, data: bytes, mime: str | None = None) -> Media:
    """Store an uploaded cover image. Refuses what is not an image or is larger than any platform takes."""
    name = (filename or "cover").rsplit("/", 1)[-1][:200]
    if not data:
        raise GovbotError("cover.empty", name=name)
    if len(data) > WECHAT_IMAGE_MAX_BYTES:
        raise GovbotError("cover.too_big", name=name, size=len(data), limit=WECHAT_IMAGE_MAX_BYTES)
    kind = image_kind(data)
    if kind is None:
        raise GovbotError("cover.not_image", name=name)
    media = Media(filename=name, mime=MIME[kind], sha256=hashlib.sha256(data).hexdigest(), data=data)
    session.add(media)
    session.flush()
    return media


def _acting(user: User) -> None:
    if not user.active:
        raise PermissionDenied("user.disabled", user=user.username)


def _audit(session: Session, user: User | str, action: str, post: Post, **detail: Any) -> None:
    actor = user if isinstance(user, str) else user.username
    record(session=session, actor=actor, action=action, subject_type="post", subject_id=post.id,
           version=post.version, content_hash=post.content_hash, **detail)


def create_post(*, session: Session, author: User, title: str, body: str, digest: str = "", weibo_text: str = "",
                cover: CoverUpload | None = None, byline: str = "", open_comment: bool = True) -> Post:
    """A new draft by an editor (宣传干事). Checks run at submission, so a draft may be incomplete."""
    _acting(author)
    require_role(author, "editor")
    body = clean_body(body)
    media = save_cover(session=session, filename=cover[0], data=cover[1], mime=cover[2]) if cover else None
    now = utcnow()
    post = Post(title=title, body=body, digest=digest, weibo_text=weibo_text, author_id=author.id,
                byline=byline, open_comment=open_comment,
                cover_media_id=media.id if media else None, status="draft", version=1,
                content_hash=content_hash(title=title, body=body, digest=digest, weibo_text=weibo_text,
                                          byline=byline, open_comment=open_comment,
                                          cover_sha256=media.sha256 if media else None),
                created_at=now, updated_at=now)
    session.add(post)
    session.flush()
    _audit(session, author, "post.created", post, title=title, cover=media.filename if media else None)
    return post


def get_post(*, session: Session, post_id: int) -> Post:
    post = session.get(Post, post_id)
    if post is None:
        raise NotFound("post.not_found", post_id=post_id)
    return post


def list_posts(*, session: Session, status: str | None = None, limit: int = 100) -> list[Post]:
    if status is not None and status not in POST_STATUSES:
        raise GovbotError("post.unknown_status", status=status, known=", ".join(POST_STATUSES))
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
        raise InvalidState("post.publishing_now", publication_id=pub.id)
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
        raise InvalidState("post.already_out", post_id=post.id, doing=doing, doing_zh=label(doing, "verb"), states=states)
    _refuse_if_attempted([p for p in pubs if _attempted(p)], doing)


def _refuse_if_attempted(pubs: list[Publication], doing: str) -> None:
    if pubs:
        p = pubs[0]
        raise InvalidState("post.retry_pending", post_id=p.post_id, doing=doing, doing_zh=label(doing, "verb"),
                           publication_id=p.id, last_error=p.last_error or "none")


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
              remove_cover: bool = False, byline: str | None = None, open_comment: bool | None = None) -> EditResult:
    """Change the content. Any real change bumps the version, voids every sign-off, cancels pending
    publications and returns the post to draft. A result that is false: nothing changed."""
    _acting(user)
    require_role(user, "editor")
    if cover is not None and remove_cover:
        raise GovbotError("cover.both")
    _refuse_if_live(session, post, "edited")
    body = clean_body(body) if body is not None else None
    changes: dict[str, Any] = {k: v for k, v in {"title": title, "body": body, "digest": digest,
                                                 "weibo_text": weibo_text, "byline": byline,
                                                 "open_comment": open_comment}.items()
                               if v is not None and v != getattr(post, k)}
    old_cover = session.get(Media, post.cover_media_id) if post.cover_media_id is not None else None
    new_cover = old_cover
    if remove_cover:
        new_cover = None
    elif cover is not None and (old_cover is None or hashlib.sha256(cover[1]).hexdigest() != old_cover.sha256):
        new_cover = save_cover(session=session, filename=cover[0], data=cover[1], mime=cover[2])
    new_hash = content_hash(**{k: changes.get(k, getattr(post, k)) for k in EDITABLE_FIELDS},
                            cover_sha256=new_cover.sha256 if new_cover else None,
                            targets=post.target_account_ids, planned_at=post.planned_at)
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
                platforms: Sequence[str] | None = None, accounts: Iterable[str | int] | None = None,
                at: datetime | None = None, decide_time_later: bool = False) -> Post:
    """Send the post into the sign-off chain (送审) after the checks pass; raises CheckFailed otherwise.

    `accounts` and `at` (naive: local time) are what the signers approve with the text. Without
    `accounts`: the accounts the post was last submitted for, else every account the editor may
    choose on `platforms` (default: the post's platforms). Without `at`: the time it was last submitted
    for, or none with `decide_time_later` (the editor sets it after the last sign-off).
    """
    _acting(user)
    require_role(user, "editor")
    if post.status not in ("draft", "rejected"):
        raise InvalidState("post.not_submittable", post_id=post.id, status=post.status, status_zh=label(post.status, "post"))
    for p in platforms or ():
        if p not in ("wechat", "weibo"):
            raise GovbotError("post.unknown_platform", platform=p)
    if accounts is not None:
        chosen = resolve_accounts(session=session, names=accounts)
    elif post.target_account_ids:
        chosen = resolve_accounts(session=session, names=post.target_account_ids)
    else:
        wanted = set(platforms) if platforms else set(default_platforms(session=session, post=post))
        chosen = [a for a in allowed_accounts(session=session, config=config, user=user) if a.platform in wanted]
        if not chosen:
            raise GovbotError("post.no_own_accounts")
    require_allowed(session=session, config=config, user=user, accounts=chosen)
    planned = to_utc(at, config.timezone) if at is not None else None if decide_time_later else post.planned_at
    if at is not None and planned <= utcnow():
        raise GovbotError("post.time_past", at=f"{at:%Y-%m-%d %H:%M}")
    targets = sorted({a.platform for a in chosen})
    problems = check_existing_post(session=session, config=config, post=post, platforms=targets)
    if problems:
        raise CheckFailed(problems)
    _set_targets(session, post, user, [a.id for a in chosen], planned)
    touch_post(session=session, post=post)
    post.status = "in_review"
    post.rejection_reason = None
    session.add(post)
    snapshot(session=session, post=post)
    _audit(session, user, "post.submitted", post, platforms=targets,
           **describe(accounts=chosen, planned_at=planned, tz=config.timezone))
    first = current_chain(session=session, config=config, post=post).next_stage
    if first is not None:
        notices.waiting(session=session, config=config, post=post, stage=first.name, role=first.role,
                        exclude=contributors(session=session, post=post))
    return post


def _set_targets(session: Session, post: Post, user: User, account_ids: list[int],
                 planned: datetime | None) -> list[int] | None:
    """Store where and when; a change after this version was submitted is a new version whose
    sign-offs are void. Returns None when nothing changed, else the sign-offs voided."""
    ids = sorted(account_ids)
    before = (post.target_account_ids, post.planned_at)
    post.target_account_ids, post.planned_at = ids, planned
    new_hash = _post_hash(session, post)
    if new_hash == post.content_hash:
        return None
    voided: list[int] = []
    if has_snapshot(session=session, post=post):
        post.version += 1
        voided = void_signoffs(session=session, post=post, now=utcnow())
        _audit(session, user, "post.retargeted", post, previous_targets=before[0],
               previous_planned_at=before[1].isoformat() if before[1] else None, voided_signoffs=voided)
    post.content_hash = new_hash
    return voided


def retarget_post(*, session: Session, config: Config, post: Post, user: User, accounts: Iterable[str | int],
                  at: datetime | None) -> EditResult:
    """Change the accounts or the time of a submitted or signed post: like an edit, the sign-offs
    are void, pending publications cancelled, and the post is a draft to submit again."""
    _acting(user)
    require_role(user, "editor")
    _refuse_if_live(session, post, "retargeted")
    chosen = resolve_accounts(session=session, names=accounts)
    require_allowed(session=session, config=config, user=user, accounts=chosen)
    planned = to_utc(at, config.timezone) if at is not None else None
    if planned is not None and planned <= utcnow():
        raise GovbotError("post.time_past", at=f"{at:%Y-%m-%d %H:%M}")
    now = touch_post(session=session, post=post)
    if not has_snapshot(session=session, post=post):
        snapshot(session=session, post=post)
    voided = _set_targets(session, post, user, [a.id for a in chosen], planned)
    if voided is None:
        return EditResult(False)
    cancelled = _cancel_pending(session, post, user.username, f"targets changed in version {post.version}", now)
    post.status = "draft"
    post.scheduled_at = None
    session.add(post)
    session.flush()
    return EditResult(True, ["targets"], voided, [p.id for p in cancelled])


def resolve_accounts(*, session: Session, names: Iterable[str | int]) -> list[Account]:
    """Accounts by name (or id), enabled, each once."""
    out: list[Account] = []
    for name in names:
        acc = session.get(Account, name) if isinstance(name, int) else session.exec(
            select(Account).where(Account.name == name)).first()
        if acc is None:
            known = ", ".join(session.exec(select(Account.name).order_by(Account.name)))
            raise NotFound("account.not_found", name=name, known=known or "none")
        if not acc.enabled:
            raise InvalidState("account.disabled", name=acc.name)
        if acc not in out:
            out.append(acc)
    if not out:
        raise GovbotError("post.no_accounts")
    return out


def _require_own_accounts(user: User, accounts: Iterable[Account]) -> None:
    """Editors publish on the accounts of their own department (bot.permissions); admins on any."""
    for acc in accounts:
        if not allowed(user, "posts.schedule", acc.department_id):
            raise PermissionDenied("post.other_department_account", user=user.username, account=acc.name)


def schedule_post(*, session: Session, config: Config, post: Post, user: User, accounts: Iterable[str | int],
                  at: datetime | None = None) -> list[Publication]:
    """Publish a fully signed post on each account at `at` (naive: local time in config.timezone;
    None or past: now). One publication per account; scheduling again moves the time."""
    _acting(user)
    # Propaganda officers (editors) schedule what the chain approved; admins may too.
    require_role(user, "editor")
    if post.status not in SCHEDULABLE:
        raise InvalidState("post.not_schedulable", post_id=post.id, status=post.status, status_zh=label(post.status, "post"))
    chain = current_chain(session=session, config=config, post=post)
    if not chain.complete:
        raise InvalidState("post.not_fully_signed", post_id=post.id, version=post.version, next_stage=chain.next_stage.name)
    accounts = list(accounts)
    targets = resolve_accounts(session=session, names=accounts) if accounts else \
        target_accounts(session=session, post=post)
    unsigned = [a.name for a in targets if a.id not in (post.target_account_ids or [])]
    if unsigned or not targets:
        raise PermissionDenied("post.unsigned_accounts", post_id=post.id, accounts="、".join(unsigned) or "（未选择账号）")
    require_allowed(session=session, config=config, user=user, accounts=targets)
    problems = check_existing_post(session=session, config=config, post=post,
                                   platforms=sorted({a.platform for a in targets}))
    if problems:
        raise CheckFailed(problems)
    now = utcnow()
    due = now if at is None else to_utc(at, config.timezone)
    # The signed time is the earliest it may go out; later (a delay, a retry) needs no new sign-off.
    due = max(due, now, post.planned_at or now)
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
            raise InvalidState("post.already_on_account", post_id=post.id, state=pub.state, state_zh=label(pub.state, "publication"),
                                   account=acc.name, publication_id=pub.id)
        elif pub.state == "pending":
            _take_pending(session, pub, now, due_at=due, next_attempt_at=due)
            action = "publication.rescheduled"
        else:
            if pub.content_hash != post.content_hash or pub.state == "failed":
                # Platform ids of an attempt on older content, or of a publish job that ended in failure,
                # must not be resumed: this is a new attempt.
                pub.step = ""
                pub.remote_media_id = pub.remote_draft_id = pub.remote_publish_id = None
            if pub.content_hash != post.content_hash:
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


def retry_failed(*, session: Session, config: Config, post: Post, user: User,
                 at: datetime | None = None) -> list[Publication]:
    """Publish the same signed version again on the accounts where it failed or was missed (重新发布),
    now or at `at`. Nothing changed, so no new sign-off: the chain must still hold for this version."""
    failed = [p for p in _publications(session, post) if p.state in ("failed", "missed")]
    if not failed:
        raise InvalidState("post.nothing_to_retry", post_id=post.id)
    pubs = schedule_post(session=session, config=config, post=post, user=user,
                         accounts=[p.account_id for p in failed], at=at)
    _audit(session, user, "post.retried", post, publications=[p.id for p in pubs])
    return pubs


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
        raise InvalidState("post.nothing_to_cancel", post_id=post.id)
    _require_own_accounts(user, [session.get(Account, p.account_id) for p in pending])
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
        raise NotFound("publication.not_found", publication_id=publication_id)
    return pub


def list_publications(*, session: Session, state: str | None = None, post_id: int | None = None,
                      limit: int = 200) -> list[Publication]:
    if state is not None and state not in PUBLICATION_STATES:
        raise GovbotError("publication.unknown_state", state=state, known=", ".join(PUBLICATION_STATES))
    query = select(Publication).order_by(col(Publication.due_at).desc(), col(Publication.id).desc()).limit(limit)
    if state is not None:
        query = query.where(Publication.state == state)
    if post_id is not None:
        query = query.where(Publication.post_id == post_id)
    return list(session.exec(query))
