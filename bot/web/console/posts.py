"""Posts (稿件): the list, the editor (new and edit), the cover and the images of the body.

The post page with its sign-off and publishing actions is in post_page.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlmodel import select

from bot.errors import GovbotError, NotFound
from bot.models import Account, Media, Post, Publication, User
from bot.web.console.common import (
    STATIC_DIR,
    as_int,
    console_user,
    ctx_of,
    error_view,
    flash,
    problem_view,
    redirect,
    render,
    run_action,
)

router = APIRouter()
ARTICLE_IMAGE_MAX_BYTES = 1024 * 1024

POST_TABS = (("", "全部"), ("mine", "待我审签"), ("draft", "草稿"), ("in_review", "审核中"), ("rejected", "已退回"),
             ("approved", "已审定"), ("scheduled", "已排期"), ("published", "已发布"), ("failed", "发布失败"))


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
            if status == "failed":  # 发布失败: wholly or on some accounts
                rows = sorted(rows + list_posts(session=s, status="partially_failed", limit=200),
                              key=lambda p: p.updated_at, reverse=True)
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


def preview_names(session: Any, config: Any, user: User, post: Post | None) -> tuple[str, str]:
    """The account names the preview shows: the post's first WeChat and Weibo targets, else the user's."""
    from bot.publishing.targets import allowed_accounts, target_accounts

    accounts = target_accounts(session=session, post=post) if post is not None else []
    if not accounts:
        accounts = allowed_accounts(session=session, config=config, user=user)
    wechat = next((a.name for a in accounts if a.platform == "wechat"), "公众号")
    weibo = next((a.name for a in accounts if a.platform == "weibo"), "政务微博")
    return wechat, weibo


def post_form_page(request: Request, user: User, *, post: Post | None, form: dict, error: dict | None = None,
                   status_code: int = 200) -> HTMLResponse:
    field_problems: dict[str, list[dict]] = {}
    for p in (error or {}).get("problems", []):
        field_problems.setdefault(p["field"], []).append(p)
    ctx = ctx_of(request)
    with ctx.session() as s:
        wechat_name, weibo_name = preview_names(s, ctx.config, user, post)
    return render(request, "post_form.html", user, status_code=status_code, post=post, form=form, error=error,
                  field_problems=field_problems, wechat_name=wechat_name, weibo_name=weibo_name,
                  weibo_max=ctx.config.platforms.weibo.max_chars)


@router.get("/posts/new")
def post_new_form(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    return post_form_page(request, user, post=None, form={})


@router.post("/posts/new")
def post_create(request: Request, title: str = Form(""), body: str = Form(""), digest: str = Form(""),
                weibo_text: str = Form(""), byline: str = Form(""), open_comment: str = Form(""),
                cover: UploadFile | None = File(None), user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import create_post

    form = {"title": title, "body": body, "digest": digest, "weibo_text": weibo_text, "byline": byline.strip(),
            "open_comment": bool(open_comment)}
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
    form = {"title": post.title, "body": post.body, "digest": post.digest, "weibo_text": post.weibo_text,
            "byline": post.byline, "open_comment": post.open_comment}
    return post_form_page(request, user, post=post, form=form)


@router.post("/posts/{post_id}/edit")
def post_edit(request: Request, post_id: int, title: str = Form(""), body: str = Form(""), digest: str = Form(""),
              weibo_text: str = Form(""), byline: str = Form(""), open_comment: str = Form(""),
              cover: UploadFile | None = File(None), remove_cover: str = Form(""),
              user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import edit_post, get_post

    # The form always has the comment box: absent means unticked.
    form = {"title": title, "body": body, "digest": digest, "weibo_text": weibo_text, "byline": byline.strip(),
            "open_comment": bool(open_comment)}

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


@router.post("/posts/check")
def post_live_check(request: Request, title: str = Form(""), body: str = Form(""), digest: str = Form(""),
                    weibo_text: str = Form(""), byline: str = Form(""), post_id: str = Form(""),
                    user: User = Depends(console_user)) -> JSONResponse:
    """The pre-publish checks on what is in the editor now, for the live preview (the cover is checked at 送审)."""
    from bot.publishing.checks import check_post
    from bot.publishing.richtext import clean_body
    from bot.publishing.targets import allowed_accounts, target_accounts
    from bot.textcheck import rules_for

    ctx = ctx_of(request)
    with ctx.session() as s:
        post = s.get(Post, as_int(post_id)) if as_int(post_id) else None
        accounts = (target_accounts(session=s, post=post) if post is not None else []) or \
            allowed_accounts(session=s, config=ctx.config, user=user)
        platforms = {a.platform for a in accounts}
    if not weibo_text.strip():
        platforms.discard("weibo")
    problems = check_post(title=title, body=clean_body(body), digest=digest, weibo_text=weibo_text, cover=None,
                          platforms=sorted(platforms), config=ctx.config, rules=rules_for(ctx.config),
                          byline=byline.strip())
    return JSONResponse({"problems": [problem_view(p) for p in problems if p.where != "cover"]})


@router.get("/static/vendor/{package}/{name}")
def vendored(package: str, name: str) -> Response:
    """Third-party browser files shipped in the package (the editor): offices are often offline, no CDN."""
    root = (STATIC_DIR / "vendor").resolve()
    path = (root / package / name).resolve()
    if path.parent.parent != root or not path.is_file():
        raise HTTPException(404)
    return FileResponse(path, headers={"Cache-Control": "max-age=86400"})


@router.post("/posts/media")
def post_media_upload(request: Request, image: UploadFile = File(...), user: User = Depends(console_user)) -> Response:
    """An image of the body, uploaded from the editor; answers its URL."""
    from bot.publishing.checks import image_kind
    from bot.publishing.service import save_cover

    def act(s: Any) -> int:
        data = image.file.read()
        # What WeChat takes inside an article (media/uploadimg): JPEG or PNG up to 1 MB.
        if image_kind(data) not in ("jpeg", "png") or len(data) > ARTICLE_IMAGE_MAX_BYTES:
            raise GovbotError("post.body_image_invalid")
        return save_cover(session=s, filename=image.filename or "image", data=data, mime=image.content_type).id

    media_id, error = run_action(request, act)
    if error:
        return JSONResponse({"detail": f"{error['title']}：{error['detail']}"}, status_code=422)
    return JSONResponse({"url": f"/media/{media_id}"})


@router.get("/media/{media_id}")
def media_file(request: Request, media_id: int, user: User = Depends(console_user)) -> Response:
    with ctx_of(request).session() as s:
        media = s.get(Media, media_id)
    if media is None:
        raise HTTPException(404)
    return Response(media.data, media_type=media.mime, headers={"Cache-Control": "private, max-age=86400"})


@router.get("/posts/{post_id}/cover")
def post_cover(request: Request, post_id: int, user: User = Depends(console_user)) -> Response:
    with ctx_of(request).session() as s:
        post = s.get(Post, post_id)
        media = s.get(Media, post.cover_media_id) if post and post.cover_media_id else None
    if media is None:
        raise HTTPException(404)
    return Response(media.data, media_type=media.mime, headers={"Cache-Control": "private, max-age=300"})


