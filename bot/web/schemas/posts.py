"""Response models of /api/posts, /api/publications and /api/accounts."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bot.web.schemas.common import Out


class PostSummaryOut(Out):
    id: int
    title: str
    status: str
    version: int
    content_hash: str
    author: str | None
    updated_at: str | None
    scheduled_at: str | None


class PublicationOut(Out):
    id: int
    post_id: int
    post_title: str | None
    account: str | None
    platform: str | None
    state: str
    due_at: str | None
    attempts: int
    last_error: str | None
    published_at: str | None
    stale: bool
    reads: int | None
    likes: int | None
    shares: int | None
    comments: int | None
    stats_at: str | None = Field(description="when the platform last reported the figures")
    stats_unavailable: str | None = Field(description="why the platform reports no reads or shares for this post")


class PostOut(PostSummaryOut):
    body: str
    digest: str
    weibo_text: str
    cover: dict[str, Any] | None
    chain: dict[str, Any]
    signoffs: list[dict[str, Any]]
    publications: list[PublicationOut]


class EditOut(Out):
    changed: bool
    fields: list[str]
    voided_signoffs: list[int]
    cancelled_publications: list[int]
    post: PostOut


class ProblemOut(Out):
    code: str
    message: str
    message_zh: str
    where: str
    line: int | None = None
    column: int | None = None
    snippet: str = ""
    suggestion: str | None = None


class CheckOut(Out):
    ok: bool
    problems: list[ProblemOut]


class GapOut(Out):
    level: str
    message: str
    days_since_last: float | None


class ScheduledPublicationOut(PublicationOut):
    gap: GapOut | None = None


class ScheduleOut(Out):
    post: PostOut
    publications: list[ScheduledPublicationOut]


class RetryOut(Out):
    publications: list[int]  # the new publications
    post: PostOut


class UnscheduleOut(Out):
    cancelled_publications: list[int]
    post: PostOut


class AccountOut(Out):
    id: int
    name: str
    platform: str
    department: str | None
    enabled: bool
    gap: GapOut | None
