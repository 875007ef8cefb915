"""JSON API for posts, the sign-off chain, scheduling, publications and accounts under /api.

Auth: `Authorization: Bearer <token>` (bot.users.issue_api_token, `govbot user token NAME`) or the
console's session. Every action runs in its own transaction that commits before the response, with
the calling user's roles and the same rules as the CLI and console. Domain errors become JSON
errors in bot.web.app (404, 403, 409); failed checks are 422 with `problems` (one line each) and
`problem_details` (code, field, offset, line, column, snippet, suggestion).

Times: `at` without a time zone is local time in the config's timezone; answers carry local times
with their UTC offset.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from bot.clock import to_local
from bot.context import Context
from bot.errors import GovbotError, NotFound
from bot.models import Account, Department, Media, User
from bot.publishing import service, views
from bot.publishing.gap import AccountGap, account_gaps
from bot.publishing.signoff import reject, sign
from bot.web.deps import current_user, get_ctx
from bot.web.schemas.common import ERROR_RESPONSES, Page, PageParams, page
from bot.web.schemas.posts import (
    AccountOut,
    CheckOut,
    EditOut,
    PostOut,
    PostSummaryOut,
    PublicationOut,
    RetryOut,
    ScheduleOut,
    UnscheduleOut,
)

router = APIRouter(prefix="/api", tags=["posts"], responses=ERROR_RESPONSES)
# Lists are read whole and cut into pages here; a bound keeps a runaway list from costing the server.
LIST_BOUND = 100_000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CoverIn(_Body):
    filename: str = Field(min_length=1, max_length=200)
    data_base64: str = Field(min_length=1)


class PostIn(_Body):
    title: str
    body: str
    digest: str = ""
    weibo_text: str = ""
    cover: CoverIn | None = None
    byline: str = ""  # WeChat 作者, at most 16 characters
    open_comment: bool = True  # WeChat 留言 open under the article


class PostEdit(_Body):
    title: str | None = None
    body: str | None = None
    digest: str | None = None
    weibo_text: str | None = None
    cover: CoverIn | None = None
    remove_cover: bool = False
    byline: str | None = None  # WeChat 作者
    open_comment: bool | None = None  # WeChat 留言 open under the article


class PlatformsIn(_Body):
    platforms: list[Literal["wechat", "weibo"]] | None = None


class SubmitIn(PlatformsIn):
    # The accounts (names) and local time the signers approve with the text (送审时选定).
    accounts: list[str] | None = None
    at: datetime | None = None


class SignIn(_Body):
    # The version the reviewer read: one of the two is required, so nobody signs an edit unseen.
    version: int | None = None
    content_hash: str | None = None


class RejectIn(SignIn):
    reason: str = Field(min_length=1)


class ScheduleIn(_Body):
    accounts: list[str | int] = Field(min_length=1)
    at: datetime | None = None
    now: bool = False


class UnscheduleIn(_Body):
    accounts: list[str | int] | None = None


def _decode_cover(cover: CoverIn | None) -> service.CoverUpload | None:
    if cover is None:
        return None
    try:
        data = base64.b64decode(cover.data_base64, validate=True)
    except (binascii.Error, ValueError):
        raise GovbotError("cover.bad_base64", name=cover.filename) from None
    return cover.filename, data, None


def _view(ctx: Context, post_id: int) -> dict[str, Any]:
    with ctx.session() as s:
        return views.post_view(session=s, config=ctx.config, post=service.get_post(session=s, post_id=post_id))


def _gap_json(g: AccountGap | None, tz: str) -> dict[str, Any] | None:
    if g is None:
        return None
    return {"level": g.level, "message": g.message, "days_since_last": g.days_since_last,
            "last_published_at": to_local(g.last_published_at, tz).isoformat(timespec="seconds") if g.last_published_at else None,
            "scheduled": [to_local(t, tz).isoformat(timespec="seconds") for t in g.scheduled],
            "longest_planned_gap_days": g.longest_planned_gap_days,
            "silent_limit_at": to_local(g.silent_limit_at, tz).isoformat(timespec="seconds") if g.silent_limit_at else None}


def _gaps(session: Session, ctx: Context) -> dict[int, AccountGap]:
    return {g.account_id: g for g in account_gaps(session=session, config=ctx.config)}


# ---- posts ------------------------------------------------------------------------------------


@router.get("/posts", response_model=Page[PostSummaryOut])
def list_posts(request: Request, status: str | None = None, params: PageParams = Depends(),
               ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> dict[str, Any]:
    """Posts, most recently changed first."""
    with ctx.session() as s:
        return page(request, params, views.list_post_views(session=s, config=ctx.config, status=status,
                                                           limit=LIST_BOUND))


@router.post("/posts", status_code=201, response_model=PostOut)
def create_post(body: PostIn, ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as s:
        post = service.create_post(session=s, author=user, title=body.title, body=body.body, digest=body.digest,
                                   weibo_text=body.weibo_text, cover=_decode_cover(body.cover),
                                   byline=body.byline, open_comment=body.open_comment)
    return _view(ctx, post.id)


@router.get("/posts/{post_id}", response_model=PostOut)
def show_post(post_id: int, ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> dict[str, Any]:
    return _view(ctx, post_id)


def _edit(ctx: Context, post_id: int, user: User, **changes: Any) -> dict[str, Any]:
    with ctx.session() as s:
        result = service.edit_post(session=s, post=service.get_post(session=s, post_id=post_id), user=user, **changes)
    return {"changed": result.changed, "fields": result.fields, "voided_signoffs": result.voided_signoffs,
            "cancelled_publications": result.cancelled_publications, "post": _view(ctx, post_id)}


@router.patch("/posts/{post_id}", response_model=EditOut)
def edit_post(post_id: int, body: PostEdit, ctx: Context = Depends(get_ctx),
              user: User = Depends(current_user)) -> dict[str, Any]:
    """Change fields (any change voids the sign-offs and returns the post to draft)."""
    return _edit(ctx, post_id, user, title=body.title, body=body.body, digest=body.digest, weibo_text=body.weibo_text,
                 cover=_decode_cover(body.cover), remove_cover=body.remove_cover, byline=body.byline,
                 open_comment=body.open_comment)


@router.put("/posts/{post_id}/cover", response_model=EditOut)
async def upload_cover(post_id: int, cover: UploadFile = File(...), ctx: Context = Depends(get_ctx),
                       user: User = Depends(current_user)) -> dict[str, Any]:
    """Replace the cover with a multipart upload (field `cover`); an edit like any other."""
    data = await cover.read()
    return _edit(ctx, post_id, user, cover=(cover.filename or "cover", data, cover.content_type))


@router.get("/posts/{post_id}/cover", response_class=Response,
            responses={200: {"content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The cover image"}})
def get_cover(post_id: int, ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> Response:
    with ctx.session() as s:
        post = service.get_post(session=s, post_id=post_id)
        media = s.get(Media, post.cover_media_id) if post.cover_media_id is not None else None
    if media is None:
        raise NotFound("post.no_cover", post_id=post_id)
    return Response(media.data, media_type=media.mime)


@router.post("/posts/{post_id}/check", response_model=CheckOut)
def check_post(post_id: int, body: PlatformsIn | None = None, ctx: Context = Depends(get_ctx),
               user: User = Depends(current_user)) -> dict[str, Any]:
    """The checks `submit` would run, without changing anything."""
    with ctx.session() as s:
        problems = service.check_existing_post(session=s, config=ctx.config,
                                               post=service.get_post(session=s, post_id=post_id),
                                               platforms=body.platforms if body else None)
    return {"ok": not problems, "problems": [p.as_dict() for p in problems]}


@router.post("/posts/{post_id}/submit", response_model=PostOut)
def submit_post(post_id: int, body: SubmitIn | None = None, ctx: Context = Depends(get_ctx),
                user: User = Depends(current_user)) -> Any:
    def run() -> dict[str, Any]:
        with ctx.session() as s:
            service.submit_post(session=s, config=ctx.config, post=service.get_post(session=s, post_id=post_id),
                                user=user, platforms=body.platforms if body else None,
                                accounts=body.accounts if body else None,
                                at=body.at if body else None)
        return _view(ctx, post_id)

    return run()


def _require_version(body: SignIn) -> None:
    if body.version is None and not body.content_hash:
        raise GovbotError("post.version_required")


@router.post("/posts/{post_id}/sign", response_model=PostOut)
def sign_post(post_id: int, body: SignIn, ctx: Context = Depends(get_ctx),
              user: User = Depends(current_user)) -> dict[str, Any]:
    """Approve the next stage on the version named (stale version: 409)."""
    _require_version(body)
    with ctx.session() as s:
        sign(session=s, config=ctx.config, post=service.get_post(session=s, post_id=post_id), user=user,
             version=body.version, content_hash=body.content_hash)
    return _view(ctx, post_id)


@router.post("/posts/{post_id}/reject", response_model=PostOut)
def reject_post(post_id: int, body: RejectIn, ctx: Context = Depends(get_ctx),
                user: User = Depends(current_user)) -> dict[str, Any]:
    _require_version(body)
    with ctx.session() as s:
        reject(session=s, config=ctx.config, post=service.get_post(session=s, post_id=post_id), user=user,
               reason=body.reason, version=body.version, content_hash=body.content_hash)
    return _view(ctx, post_id)


@router.post("/posts/{post_id}/schedule", response_model=ScheduleOut)
def schedule_post(post_id: int, body: ScheduleIn, ctx: Context = Depends(get_ctx),
                  user: User = Depends(current_user)) -> Any:
    """Publish a fully signed post on the accounts at `at` (or `now`); answers with the publications
    and each account's update-gap verdict."""
    if (body.at is None) == (not body.now):
        raise GovbotError("post.when_required")

    def run() -> dict[str, Any]:
        with ctx.session() as s:
            post = service.get_post(session=s, post_id=post_id)
            pubs = service.schedule_post(session=s, config=ctx.config, post=post, user=user, accounts=body.accounts,
                                         at=body.at)
            ids = [p.id for p in pubs]
        with ctx.session() as s:
            gaps = _gaps(s, ctx)
            shown = [views.publication_view(session=s, config=ctx.config,
                                              publication=service.get_publication(session=s, publication_id=i))
                     for i in ids]
            accounts = {a.name: a.id for a in s.exec(select(Account))}
        for v in shown:
            v["gap"] = _gap_json(gaps.get(accounts.get(v["account"])), ctx.tz)
        return {"post": _view(ctx, post_id), "publications": shown}

    return run()


@router.post("/posts/{post_id}/unschedule", response_model=UnscheduleOut)
def unschedule_post(post_id: int, body: UnscheduleIn | None = None, ctx: Context = Depends(get_ctx),
                    user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as s:
        cancelled = service.unschedule_post(session=s, post=service.get_post(session=s, post_id=post_id), user=user,
                                            accounts=body.accounts if body else None)
        ids = [p.id for p in cancelled]
    return {"cancelled_publications": ids, "post": _view(ctx, post_id)}


class RetryIn(_Body):
    # Local time; none: now. The same signed version goes out again on the failed accounts only.
    at: datetime | None = None


@router.post("/posts/{post_id}/retry", response_model=RetryOut)
def retry_post(post_id: int, body: RetryIn | None = None, ctx: Context = Depends(get_ctx),
               user: User = Depends(current_user)) -> Any:
    """Publish again, on the accounts where it failed or was missed, without new sign-offs (重新发布)."""
    def run() -> dict[str, Any]:
        with ctx.session() as s:
            pubs = service.retry_failed(session=s, config=ctx.config, post=service.get_post(session=s, post_id=post_id),
                                        user=user, at=body.at if body else None)
            ids = [p.id for p in pubs]
        return {"publications": ids, "post": _view(ctx, post_id)}

    return run()


# ---- publications and accounts ------------------------------------------------------------------


@router.get("/publications", response_model=Page[PublicationOut])
def list_publications(request: Request, state: str | None = None, post_id: int | None = None,
                      params: PageParams = Depends(), ctx: Context = Depends(get_ctx),
                      user: User = Depends(current_user)) -> dict[str, Any]:
    """Publications, latest due first."""
    with ctx.session() as s:
        pubs = service.list_publications(session=s, state=state, post_id=post_id, limit=LIST_BOUND)
        chosen = pubs[params.offset:params.offset + params.limit]
        return page(request, params, [views.publication_view(session=s, config=ctx.config, publication=p)
                                      for p in chosen], total=len(pubs))


@router.get("/publications/{publication_id}", response_model=PublicationOut)
def show_publication(publication_id: int, ctx: Context = Depends(get_ctx),
                     user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as s:
        return views.publication_view(session=s, config=ctx.config,
                                        publication=service.get_publication(session=s, publication_id=publication_id))


@router.get("/accounts", response_model=Page[AccountOut])
def list_accounts(request: Request, params: PageParams = Depends(), ctx: Context = Depends(get_ctx),
                  user: User = Depends(current_user)) -> dict[str, Any]:
    """Every account with its update-gap verdict (更新间隔: warn at gap.warn_days, fail at gap.limit_days)."""
    with ctx.session() as s:
        gaps = _gaps(s, ctx)
        depts = {d.id: d.name for d in s.exec(select(Department))}
        accounts = list(s.exec(select(Account).order_by(Account.name)))
    return page(request, params, [{"id": a.id, "name": a.name, "platform": a.platform,
                                   "department": depts.get(a.department_id), "enabled": a.enabled,
                                   "remote_id": a.remote_id, "gap": _gap_json(gaps.get(a.id), ctx.tz)}
                                  for a in accounts])
