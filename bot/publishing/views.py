"""Posts as plain data (one shape for the CLI, the JSON API and the console): summaries, the full
view with the sign-off chain, publications and audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from bot.clock import to_local
from bot.config import Config
from bot.models import Account, AuditEvent, Media, Post, Publication, User
from bot.publishing.service import _publications, list_posts
from bot.publishing.signoff import current_chain, post_signoffs
from bot.publishing.targets import target_accounts


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
        # Interaction figures (互动数据) as the platform last reported them (stats.py), and why some are missing.
        "reads": publication.reads,
        "likes": publication.likes,
        "shares": publication.shares,
        "comments": publication.comments,
        "stats_at": _t(publication.stats_at, tz),
        "stats_unavailable": publication.stats_unavailable,
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
        "target_accounts": [a.name for a in target_accounts(session=session, post=post)],
        "planned_at": _t(post.planned_at, tz),
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
