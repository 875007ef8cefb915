"""The sign-off chain (三审: 初审 -> 复审 -> 终审): who may sign which stage of which version.

Stages come from `config.signoff.stages`. A sign-off holds for exactly one version of the content
(version and content hash); any edit voids every sign-off and the chain starts again. Rules:
- each stage needs its role; admin does not stand in for a stage role
- nobody signs a post they wrote or edited (no self-review, 自审)
- nobody signs two stages of one version: three stages, three people
- a rejection returns the post to its editor with the reason, and the chain starts again
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.audit import record
from bot.clock import utcnow
from bot.config import Config, SignoffStage
from bot.errors import GovbotError, InvalidState, PermissionDenied
from bot.labels import label
from bot.models import AuditEvent, Post, SignOff, User
from bot.publishing import notices
from bot.publishing.targets import describe, target_accounts

# Audit actions whose actor shaped the content: they may not sign it.
AUTHORING_ACTIONS = ("post.created", "post.edited")


@dataclass(frozen=True)
class StageState:
    index: int
    name: str
    role: str
    signoff: SignOff | None  # the valid approval of this stage on the current version


@dataclass(frozen=True)
class ChainState:
    stages: tuple[StageState, ...]

    @property
    def complete(self) -> bool:
        return all(s.signoff is not None for s in self.stages)

    @property
    def next_stage(self) -> StageState | None:
        return next((s for s in self.stages if s.signoff is None), None)

    @property
    def signer_ids(self) -> set[int]:
        return {s.signoff.user_id for s in self.stages if s.signoff is not None}


def chain_state(*, stages: Sequence[SignoffStage], post: Post, signoffs: Iterable[SignOff]) -> ChainState:
    """Pure: which stages hold a valid approval of the post's current content.

    Valid: not voided, an approval, on this version and content hash, of the stage configured at
    that position (a reconfigured chain does not inherit old sign-offs). A stage counts only when
    every earlier stage is signed.
    """
    by_stage: dict[int, SignOff] = {}
    for so in signoffs:
        if (so.voided_at is None and so.decision == "approve" and so.content_hash == post.content_hash
                and so.post_version == post.version and 0 <= so.stage_index < len(stages)
                and stages[so.stage_index].name == so.stage_name and stages[so.stage_index].role == so.role):
            by_stage.setdefault(so.stage_index, so)
    out: list[StageState] = []
    gap = False
    for i, st in enumerate(stages):
        so = None if gap else by_stage.get(i)
        gap = gap or so is None
        out.append(StageState(i, st.name, st.role, so))
    return ChainState(tuple(out))


def post_signoffs(*, session: Session, post_id: int) -> list[SignOff]:
    """Every sign-off of the post, voided ones included, oldest first."""
    return list(session.exec(select(SignOff).where(SignOff.post_id == post_id).order_by(SignOff.created_at, SignOff.id)))


def current_chain(*, session: Session, config: Config, post: Post) -> ChainState:
    return chain_state(stages=config.signoff.stages, post=post, signoffs=post_signoffs(session=session, post_id=post.id))


def contributors(*, session: Session, post: Post) -> set[str]:
    """Usernames of everyone who wrote or edited the post, from the audit trail."""
    names = set(session.exec(
        select(AuditEvent.actor).where(AuditEvent.subject_type == "post", AuditEvent.subject_id == post.id,
                                       col(AuditEvent.action).in_(AUTHORING_ACTIONS))
    ))
    author = session.get(User, post.author_id)
    if author is not None:
        names.add(author.username)
    return names


def touch_post(*, session: Session, post: Post) -> datetime:
    """Compare-and-set on updated_at: of two people acting on one post at once, only one goes on."""
    now = utcnow()
    result = session.execute(
        update(Post).where(Post.id == post.id, Post.updated_at == post.updated_at).values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise InvalidState("signoff.concurrent", post_id=post.id)
    post.updated_at = now
    return now


def void_signoffs(*, session: Session, post: Post, now: datetime) -> list[int]:
    """Void every standing sign-off of the post (they stay as history); returns their ids."""
    active = list(session.exec(select(SignOff).where(SignOff.post_id == post.id, col(SignOff.voided_at).is_(None))))
    for so in active:
        so.voided_at = now
        session.add(so)
    return [so.id for so in active]


def _require_active(user: User) -> None:
    if not user.active:
        raise PermissionDenied("user.disabled", user=user.username)


def _require_current(post: Post, version: int | None, content_hash: str | None) -> None:
    """The signer states which version they read; a post edited meanwhile is not signed unseen."""
    if (version is not None and version != post.version) or (content_hash and content_hash != post.content_hash):
        seen = f"version {version}" if version is not None else f"content {content_hash[:12]}"
        seen_zh = f"第 {version} 版" if version is not None else f"内容 {content_hash[:12]}"
        raise InvalidState("signoff.stale", seen=seen, seen_zh=seen_zh, post_id=post.id, version=post.version,
                           content_hash=post.content_hash[:12])


def _require_in_review(post: Post, action: str) -> None:
    if post.status != "in_review":
        raise InvalidState("signoff.not_in_review", post_id=post.id, status=post.status, status_zh=label(post.status, "post"),
                           action=action, action_zh=label(action, "verb"))


def _require_not_contributor(session: Session, post: Post, user: User) -> None:
    if user.username in contributors(session=session, post=post):
        raise PermissionDenied("post.self_review", user=user.username, post_id=post.id)


def sign(*, session: Session, config: Config, post: Post, user: User, version: int | None = None,
         content_hash: str | None = None) -> SignOff:
    """Approve the next stage of the chain as `user`. After the last stage the post is approved."""
    _require_active(user)
    _require_in_review(post, "signed")
    _require_current(post, version, content_hash)
    chain = current_chain(session=session, config=config, post=post)
    stage = chain.next_stage
    if stage is None:
        raise InvalidState("signoff.complete", post_id=post.id, version=post.version)
    if not user.has_role(stage.role):
        raise PermissionDenied("signoff.wrong_role", stage=stage.name, role=stage.role, role_zh=label(stage.role, "role"),
                               user=user.username, roles=user.roles or "no roles",
                               roles_zh="、".join(label(r, "role") for r in sorted(user.role_set())) or "无")
    _require_not_contributor(session, post, user)
    if user.id in chain.signer_ids:
        signed = next(s.name for s in chain.stages if s.signoff is not None and s.signoff.user_id == user.id)
        raise PermissionDenied("signoff.second_stage", user=user.username, signed=signed, post_id=post.id, stage=stage.name)
    now = touch_post(session=session, post=post)
    so = SignOff(post_id=post.id, stage_index=stage.index, stage_name=stage.name, user_id=user.id, role=stage.role,
                 decision="approve", post_version=post.version, content_hash=post.content_hash, created_at=now)
    session.add(so)
    session.flush()
    record(session=session, actor=user.username, action="post.signed", subject_type="post", subject_id=post.id,
           version=post.version, content_hash=post.content_hash, stage=stage.name, stage_index=stage.index,
           role=stage.role, signoff_id=so.id,
           **describe(accounts=target_accounts(session=session, post=post), planned_at=post.planned_at,
                      tz=config.timezone))
    if stage.index == len(chain.stages) - 1:
        post.status = "approved"
        record(session=session, actor=user.username, action="post.approved", subject_type="post", subject_id=post.id,
               version=post.version, content_hash=post.content_hash, stages=[s.name for s in chain.stages])
    else:
        following = chain.stages[stage.index + 1]
        signed = {u for u in session.exec(select(User.username).where(col(User.id).in_(chain.signer_ids | {user.id})))}
        notices.waiting(session=session, config=config, post=post, stage=following.name, role=following.role,
                        exclude=contributors(session=session, post=post) | signed)
    session.add(post)
    return so


def reject(*, session: Session, config: Config, post: Post, user: User, reason: str, version: int | None = None,
           content_hash: str | None = None) -> SignOff:
    """Send the post back to its editor with the reason (退回修改); the chain starts again."""
    reason = (reason or "").strip()
    if not reason:
        raise GovbotError("signoff.reason_required")
    _require_active(user)
    _require_in_review(post, "rejected")
    _require_current(post, version, content_hash)
    stages = config.signoff.stages
    chain = current_chain(session=session, config=config, post=post)
    stage = chain.next_stage or chain.stages[-1]
    # Anyone who reviews in this chain may send a post back, at whatever stage it stands.
    if user.has_role(stage.role):
        role = stage.role
    else:
        role = next((s.role for s in stages if user.has_role(s.role)), None)
        if role is None:
            raise PermissionDenied("signoff.cannot_reject", user=user.username, roles=", ".join(sorted({s.role for s in stages})),
                                   roles_zh="、".join(label(r, "role") for r in sorted({s.role for s in stages})))
    _require_not_contributor(session, post, user)
    now = touch_post(session=session, post=post)
    voided = void_signoffs(session=session, post=post, now=now)
    so = SignOff(post_id=post.id, stage_index=stage.index, stage_name=stage.name, user_id=user.id, role=role,
                 decision="reject", reason=reason, post_version=post.version, content_hash=post.content_hash,
                 created_at=now)
    session.add(so)
    post.status = "rejected"
    post.rejection_reason = reason
    session.add(post)
    session.flush()
    record(session=session, actor=user.username, action="post.rejected", subject_type="post", subject_id=post.id,
           version=post.version, content_hash=post.content_hash, stage=stage.name, stage_index=stage.index, role=role,
           reason=reason, signoff_id=so.id, voided_signoffs=voided,
           **describe(accounts=target_accounts(session=session, post=post), planned_at=post.planned_at,
                      tz=config.timezone))
    author = session.get(User, post.author_id)
    notices.notify(session=session, config=config, kind="post_rejected", post=post,
                   people=[author] if author else [], reason=reason)
    return so
