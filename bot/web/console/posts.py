"""Posts (稿件): drafts, the sign-off chain and scheduling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlmodel import select

from bot.clock import utcnow
from bot.errors import NotFound
from bot.models import Account, AuditEvent, Media, Post, Publication, User
from bot.web.console.common import (
    as_int,
    check_csrf,
    console_user,
    ctx_of,
    error_view,
    flash,
    local_dt,
    parse_local_datetime,
    problem_view,
    redirect,
    render,
    run_action,
)

router = APIRouter()

POST_TABS = (("", "全部"), ("mine", "待我审签"), ("draft", "草稿"), ("in_review", "审核中"), ("rejected", "已退回"),
             ("approved", "已审定"), ("scheduled", "已排期"), ("published", "已发布"))


def can_sign_next(session: Any, config: Any, post: Post, user: User) -> dict | None:
    """The stage `user` may sign on this post now, or None (wrong role, own draft, already signed a stage)."""
    from bot.publishing.signoff import contributors, current_chain

    if post.status != "in_review":
        return None
    chain = current_chain(session=session, config=config, post=post)
    stage = chain.next_stage
    if stage is None or not user.has_role(stage.role) or user.id in chain.signer_ids:
        return None
    if user.username in contributors(session=session, post=post):
        return None
    return {"index": stage.index, "name": stage.name, "role": stage.role}


def posts_to_sign(session: Any, config: Any, user: User) -> list[dict]:
    """Posts in review whose next stage this user may sign (待我审签)."""
    from bot.publishing.service import list_posts

    out = []
    for post in list_posts(session=session, status="in_review", limit=200):
        stage = can_sign_next(session, config, post, user)
        if stage is not None:
            author = session.get(User, post.author_id)
            out.append({"post": post, "stage": stage["name"], "author": author.display_name if author else ""})
    return out


@router.get("/posts")
def posts_page(request: Request, status: str = "", user: User = Depends(console_user)) -> HTMLResponse:
    from bot.publishing.service import POST_STATUSES, list_posts

    ctx = ctx_of(request)
    with ctx.session() as s:
        if status == "mine":
            rows = [item["post"] for item in posts_to_sign(s, ctx.config, user)]
        else:
            rows = list_posts(session=s, status=status if status in POST_STATUSES else None, limit=200)
        authors = {u.id: u for u in s.exec(select(User).where(User.id.in_({p.author_id for p in rows})))}
        pubs: dict[int, list[Publication]] = {}
        for pub in s.exec(select(Publication).where(Publication.post_id.in_([p.id for p in rows]))):
            pubs.setdefault(pub.post_id, []).append(pub)
        accs = {a.id: a.name for a in s.exec(select(Account))}
    return render(request, "posts.html", user, posts=rows, authors=authors, pubs=pubs, accs=accs, status=status,
                  tabs=POST_TABS)


def _cover_upload(cover: UploadFile | None) -> tuple[str, bytes, str | None] | None:
    if cover is None or not cover.filename:
        return None
    return cover.filename, cover.file.read(), cover.content_type


def post_form_page(request: Request, user: User, *, post: Post | None, form: dict, error: dict | None = None,
                   status_code: int = 200) -> HTMLResponse:
    field_problems: dict[str, list[dict]] = {}
    for p in (error or {}).get("problems", []):
        field_problems.setdefault(p["field"], []).append(p)
    return render(request, "post_form.html", user, status_code=status_code, post=post, form=form, error=error,
                  field_problems=field_problems)


@router.get("/posts/new")
def post_new_form(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    return post_form_page(request, user, post=None, form={})


@router.post("/posts/new", dependencies=[Depends(check_csrf)])
def post_create(request: Request, title: str = Form(""), body: str = Form(""), digest: str = Form(""),
                weibo_text: str = Form(""), cover: UploadFile | None = File(None),
                user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import create_post

    form = {"title": title, "body": body, "digest": digest, "weibo_text": weibo_text}
    post, error = run_action(request, lambda s: create_post(session=s, author=user, cover=_cover_upload(cover), **form))
    if error:
        return post_form_page(request, user, post=None, form=form, error=error, status_code=422)
    flash(request, "草稿已保存。检查无误后可“送审”。")
    return redirect(f"/posts/{post.id}")


@router.get("/posts/{post_id}/edit")
def post_edit_form(request: Request, post_id: int, user: User = Depends(console_user)) -> HTMLResponse:
    from bot.publishing.service import get_post

    try:
        with ctx_of(request).session() as s:
            post = get_post(session=s, post_id=post_id)
    except NotFound as exc:
        return render(request, "notfound.html", user, status_code=404, error=error_view(exc))
    form = {"title": post.title, "body": post.body, "digest": post.digest, "weibo_text": post.weibo_text}
    return post_form_page(request, user, post=post, form=form)


@router.post("/posts/{post_id}/edit", dependencies=[Depends(check_csrf)])
def post_edit(request: Request, post_id: int, title: str = Form(""), body: str = Form(""), digest: str = Form(""),
              weibo_text: str = Form(""), cover: UploadFile | None = File(None), remove_cover: str = Form(""),
              user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import edit_post, get_post

    form = {"title": title, "body": body, "digest": digest, "weibo_text": weibo_text}

    def act(s: Any) -> bool:
        post = get_post(session=s, post_id=post_id)
        return edit_post(session=s, post=post, user=user, cover=_cover_upload(cover),
                         remove_cover=bool(remove_cover), **form)

    changed, error = run_action(request, act)
    if error:
        with ctx_of(request).session() as s:
            post = s.get(Post, post_id)
        return post_form_page(request, user, post=post, form=form, error=error, status_code=422)
    flash(request, "已保存为新版本，原有审签已作废，需重新送审。" if changed else "内容没有变化。",
          "warn" if changed else "ok")
    return redirect(f"/posts/{post_id}")


@router.get("/posts/{post_id}/cover")
def post_cover(request: Request, post_id: int, user: User = Depends(console_user)) -> Response:
    with ctx_of(request).session() as s:
        post = s.get(Post, post_id)
        media = s.get(Media, post.cover_media_id) if post and post.cover_media_id else None
    if media is None:
        raise HTTPException(404)
    return Response(media.data, media_type=media.mime, headers={"Cache-Control": "private, max-age=300"})


def post_page(request: Request, user: User, post_id: int, *, error: dict | None = None, form: dict | None = None,
              status_code: int = 200) -> HTMLResponse:
    from bot.publishing.service import check_existing_post, default_platforms, get_post, post_view

    ctx = ctx_of(request)
    with ctx.session() as s:
        post = get_post(session=s, post_id=post_id)
        view = post_view(session=s, config=ctx.config, post=post)
        sign_stage = can_sign_next(s, ctx.config, post, user)
        live_problems = [problem_view(p) for p in check_existing_post(session=s, config=ctx.config, post=post)] \
            if post.status in ("draft", "rejected", "in_review", "approved", "scheduled") else []
        enabled = [a for a in s.exec(select(Account).where(Account.enabled).order_by(Account.platform, Account.name))]
        users = {u.username: u for u in s.exec(select(User))}
        submitted = s.exec(select(AuditEvent).where(AuditEvent.subject_type == "post", AuditEvent.subject_id == post.id,
                                                    AuditEvent.action == "post.submitted")
                           .order_by(AuditEvent.id.desc())).first()
        platforms = set((submitted.detail.get("platforms") if submitted else None)
                        or default_platforms(session=s, post=post))
    # Accounts ticked by default: those already scheduled, else those of the platforms it is checked for.
    scheduled_names = {p["account"] for p in view["publications"] if p["state"] != "cancelled"}
    default_accounts = {a.id for a in enabled if a.name in scheduled_names} or \
        {a.id for a in enabled if a.platform in platforms}
    problems = list((error or {}).get("problems") or live_problems)
    field_problems: dict[str, list[dict]] = {}
    for p in problems:
        field_problems.setdefault(p["field"], []).append(p)
    form = form or {}
    if "accounts" not in form:
        form["accounts"] = {str(i) for i in default_accounts}
    return render(request, "post.html", user, status_code=status_code, post=post, v=view, sign_stage=sign_stage,
                  problems=problems, field_problems=field_problems, accounts=enabled, users=users,
                  error=error, form=form, is_editor=user.has_role("editor") or user.has_role("admin"),
                  min_local=local_dt({"tz": ctx.tz}, utcnow(), "%Y-%m-%dT%H:%M"))


@router.get("/posts/{post_id}")
def post_detail(request: Request, post_id: int, user: User = Depends(console_user)) -> HTMLResponse:
    try:
        return post_page(request, user, post_id)
    except NotFound as exc:
        return render(request, "notfound.html", user, status_code=404, error=error_view(exc))


def post_action(request: Request, user: User, post_id: int, action: Callable[[Any, Post], Any], ok: str,
                form: dict | None = None) -> Response:
    from bot.publishing.service import get_post

    _, error = run_action(request, lambda s: action(s, get_post(session=s, post_id=post_id)))
    if error:
        return post_page(request, user, post_id, error=error, form=form, status_code=422)
    flash(request, ok)
    return redirect(f"/posts/{post_id}")


def _platforms_of(request: Request, account_ids: list[str]) -> list[str] | None:
    ids = {as_int(i) for i in account_ids} - {None}
    if not ids:
        return None
    with ctx_of(request).session() as s:
        return sorted({a.platform for a in s.exec(select(Account).where(Account.id.in_(ids)))})


@router.post("/posts/{post_id}/submit", dependencies=[Depends(check_csrf)])
def post_submit(request: Request, post_id: int, accounts: list[str] = Form(default_factory=list),
                user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import submit_post

    platforms = _platforms_of(request, accounts)
    config = ctx_of(request).config
    return post_action(request, user, post_id,
                       lambda s, post: submit_post(session=s, config=config, post=post, user=user, platforms=platforms),
                       "已送审，等待审签。", {"accounts": set(accounts)})


@router.post("/posts/{post_id}/sign", dependencies=[Depends(check_csrf)])
def post_sign(request: Request, post_id: int, version: str = Form(""), content_hash: str = Form(""),
              user: User = Depends(console_user)) -> Response:
    from bot.publishing.signoff import sign

    config = ctx_of(request).config

    def act(s: Any, post: Post) -> Any:
        # The version the signer read: a post edited meanwhile is refused, not signed unseen.
        return sign(session=s, config=config, post=post, user=user, version=as_int(version),
                    content_hash=content_hash or None)

    return post_action(request, user, post_id, act, "已签署通过。")


@router.post("/posts/{post_id}/reject", dependencies=[Depends(check_csrf)])
def post_reject(request: Request, post_id: int, reason: str = Form(""), version: str = Form(""),
                content_hash: str = Form(""), user: User = Depends(console_user)) -> Response:
    from bot.publishing.signoff import reject

    config = ctx_of(request).config

    def act(s: Any, post: Post) -> Any:
        return reject(session=s, config=config, post=post, user=user, reason=reason, version=as_int(version),
                      content_hash=content_hash or None)

    return post_action(request, user, post_id, act, "已退回编辑修改。", {"reason": reason})


@router.post("/posts/{post_id}/schedule", dependencies=[Depends(check_csrf)])
def post_schedule(request: Request, post_id: int, at: str = Form(""), accounts: list[str] = Form(default_factory=list),
                  user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import schedule_post

    config = ctx_of(request).config

    def act(s: Any, post: Post) -> Any:
        when = parse_local_datetime(at) if at.strip() else None
        return schedule_post(session=s, config=config, post=post, user=user,
                             accounts=[int(a) for a in accounts if a.isdigit()], at=when)

    return post_action(request, user, post_id, act, "已排期，到时自动发布。" if at.strip() else "已安排立即发布。",
                       {"at": at, "accounts": set(accounts)})


@router.post("/posts/{post_id}/unschedule", dependencies=[Depends(check_csrf)])
def post_unschedule(request: Request, post_id: int, user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import unschedule_post

    return post_action(request, user, post_id, lambda s, post: unschedule_post(session=s, post=post, user=user),
                       "已撤销排期。")
