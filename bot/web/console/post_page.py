"""The post page (稿件详情与审签): the preview as citizens will see it with the checks pinned to it,
the accounts and time being signed, what changed since the last signature, the sign-off chain, and
publishing: schedule, unschedule, retry what failed. Every action is one service call."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlmodel import select

from bot.clock import to_local, utcnow
from bot.errors import GovbotError, NotFound
from bot.models import Account, Post, User
from bot.web.console.common import (
    as_int,
    console_user,
    ctx_of,
    error_view,
    flash,
    problem_view,
    redirect,
    render,
    run_action,
    templates,
)
from bot.web.console.posts import can_sign_next, preview_names

router = APIRouter()
RETRYABLE = ("failed", "missed")


def weibo_html(text: str) -> Markup:
    """Weibo text as the card shows it: escaped, links as 网页链接."""
    escaped = html.escape(text or "")
    return Markup(re.sub(r"https?://[\x21-\x7e]+", '<span class="wb-link">网页链接</span>', escaped))


templates.env.filters["weibo_html"] = weibo_html


def _default_form(s: Any, ctx: Any, user: User, post: Post, allowed: list[Account]) -> dict[str, Any]:
    from bot.publishing.service import default_platforms

    if post.target_account_ids:
        ids = set(post.target_account_ids)
    else:
        platforms = set(default_platforms(session=s, post=post))
        ids = {a.id for a in allowed if a.platform in platforms}
    planned = to_local(post.planned_at, ctx.tz).strftime("%Y-%m-%d %H:%M") if post.planned_at else ""
    return {"accounts": {str(i) for i in ids}, "at": planned,
            "when": "later" if post.target_account_ids and not post.planned_at else "at"}


def post_page(request: Request, user: User, post_id: int, *, error: dict | None = None, form: dict | None = None,
              status_code: int = 200) -> HTMLResponse:
    from bot.publishing.reasons import explain
    from bot.publishing.service import check_existing_post, get_post
    from bot.publishing.targets import allowed_accounts, since_last_signed, target_accounts
    from bot.publishing.views import post_view

    ctx = ctx_of(request)
    now = utcnow()
    with ctx.session() as s:
        post = get_post(session=s, post_id=post_id)
        view = post_view(session=s, config=ctx.config, post=post)
        sign_stage = can_sign_next(s, ctx.config, post, user)
        targets = target_accounts(session=s, post=post)
        platforms = sorted({a.platform for a in targets}) or None
        live_problems = [problem_view(p) for p in check_existing_post(session=s, config=ctx.config, post=post,
                                                                      platforms=platforms)] \
            if post.status in ("draft", "rejected", "in_review", "approved", "scheduled") else []
        allowed = allowed_accounts(session=s, config=ctx.config, user=user)
        users = {u.username: u for u in s.exec(select(User))}
        diff_version, diff = since_last_signed(session=s, post=post, tz=ctx.tz)
        wechat_name, weibo_name = preview_names(s, ctx.config, user, post)
        base_form = _default_form(s, ctx, user, post, allowed)
    problems = list((error or {}).get("problems") or live_problems)
    form = {**base_form, **(form or {})}
    failed = [{**p, "reason": explain(p["last_error"] or "")} for p in view["publications"] if p["state"] in RETRYABLE]
    planned_local = to_local(post.planned_at, ctx.tz).strftime("%Y-%m-%d %H:%M") if post.planned_at else ""
    shown_at = post.planned_at or post.scheduled_at
    when_text = f"{to_local(shown_at, ctx.tz).month}月{to_local(shown_at, ctx.tz).day}日" if shown_at else "今天"
    return render(request, "post.html", user, status_code=status_code, post=post, v=view, sign_stage=sign_stage,
                  problems=problems, users=users, error=error, form=form, targets=targets, allowed=allowed,
                  is_editor=user.has_role("editor") or user.has_role("admin"), diff_version=diff_version, diff=diff,
                  failed=failed, planned_local=planned_local, planned_future=bool(post.planned_at and post.planned_at > now),
                  now_local=to_local(now, ctx.tz).strftime("%Y-%m-%d %H:%M"),
                  min_local=to_local(now + timedelta(days=1), ctx.tz).strftime("%Y-%m-%d 09:00"),
                  wechat_name=wechat_name, weibo_name=weibo_name, when_text=when_text,
                  show_weibo=any(a.platform == "weibo" for a in targets) if targets else bool(post.weibo_text.strip()))


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


_TIME = re.compile(r"^\s*(\d{4})\s*[-/年.]\s*(\d{1,2})\s*[-/月.]\s*(\d{1,2})\s*日?\s*[T ]?\s*(\d{1,2})\s*[:：时]\s*(\d{1,2})\s*分?\s*$")


def _when(when: str, at: str) -> Any:
    """The time chosen in a form: a local time, or None for the choices without one. Typed as officers
    type it: 2026-12-03 09:00, 2026/12/3 9:00, 2026年12月3日 9时00分, a full-width colon."""
    if when == "at":
        if not at.strip():
            raise GovbotError("post.time_required")
        m = _TIME.match(at)
        if m is None:
            raise GovbotError("post.time_invalid", value=at.strip())
        try:
            return datetime(*(int(x) for x in m.groups()))
        except ValueError:
            raise GovbotError("post.time_impossible", value=at.strip()) from None
    if when not in ("later", "now", "signed"):
        raise GovbotError("post.when_choose")
    return None


def _ids(accounts: list[str]) -> list[int]:
    return [i for i in (as_int(a) for a in accounts) if i is not None]


@router.post("/posts/{post_id}/submit")
def post_submit(request: Request, post_id: int, accounts: list[str] = Form(default_factory=list),
                when: str = Form(""), at: str = Form(""), user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import submit_post

    config = ctx_of(request).config

    def act(s: Any, post: Post) -> Any:
        if not accounts:
            raise GovbotError("post.no_accounts")
        return submit_post(session=s, config=config, post=post, user=user, accounts=_ids(accounts),
                           at=_when(when, at), decide_time_later=when == "later")

    return post_action(request, user, post_id, act, "已送审，等待审签。",
                       {"accounts": set(accounts), "when": when, "at": at})


@router.post("/posts/{post_id}/retarget")
def post_retarget(request: Request, post_id: int, accounts: list[str] = Form(default_factory=list),
                  when: str = Form(""), at: str = Form(""), user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import retarget_post

    config = ctx_of(request).config
    changed: list[bool] = []

    def act(s: Any, post: Post) -> Any:
        if not accounts:
            raise GovbotError("post.no_accounts")
        result = retarget_post(session=s, config=config, post=post, user=user, accounts=_ids(accounts),
                               at=_when(when, at))
        changed.append(result.changed)
        return result

    response = post_action(request, user, post_id, act, "已修改发布账号和时间：原有审签已作废，请重新送审。",
                           {"accounts": set(accounts), "when": when, "at": at})
    if changed and not changed[0]:
        request.session["flash"] = [["ok", "发布账号和时间没有变化。"]]
    return response


@router.post("/posts/{post_id}/sign")
def post_sign(request: Request, post_id: int, version: str = Form(""), content_hash: str = Form(""),
              user: User = Depends(console_user)) -> Response:
    from bot.publishing.signoff import sign

    config = ctx_of(request).config

    def act(s: Any, post: Post) -> Any:
        # The version the signer read: a post edited meanwhile is refused, not signed unseen.
        return sign(session=s, config=config, post=post, user=user, version=as_int(version),
                    content_hash=content_hash or None)

    return post_action(request, user, post_id, act, "已签署通过。")


@router.post("/posts/{post_id}/reject")
def post_reject(request: Request, post_id: int, reason: str = Form(""), version: str = Form(""),
                content_hash: str = Form(""), user: User = Depends(console_user)) -> Response:
    from bot.publishing.signoff import reject

    config = ctx_of(request).config

    def act(s: Any, post: Post) -> Any:
        return reject(session=s, config=config, post=post, user=user, reason=reason, version=as_int(version),
                      content_hash=content_hash or None)

    return post_action(request, user, post_id, act, "已退回编辑修改。", {"reason": reason})


@router.post("/posts/{post_id}/schedule")
def post_schedule(request: Request, post_id: int, when: str = Form(""), at: str = Form(""),
                  user: User = Depends(console_user)) -> Response:
    """Schedule on the signed accounts: at the signed time, a later one, or (chosen explicitly) now."""
    from bot.publishing.service import schedule_post

    config = ctx_of(request).config

    def act(s: Any, post: Post) -> Any:
        if when not in ("signed", "at", "now"):
            raise GovbotError("post.schedule_when")
        return schedule_post(session=s, config=config, post=post, user=user, accounts=[], at=_when(when, at))

    ok = "已安排立即发布。" if when == "now" else "已排期，到时自动发布。"
    return post_action(request, user, post_id, act, ok, {"when": when, "at": at})


@router.post("/posts/{post_id}/unschedule")
def post_unschedule(request: Request, post_id: int, user: User = Depends(console_user)) -> Response:
    from bot.publishing.service import unschedule_post

    return post_action(request, user, post_id, lambda s, post: unschedule_post(session=s, post=post, user=user),
                       "已撤销排期。")


@router.post("/posts/{post_id}/retry")
def post_retry(request: Request, post_id: int, when: str = Form(""), at: str = Form(""),
               user: User = Depends(console_user)) -> Response:
    """The same signed version again, on the accounts where it failed or was missed: no new sign-off."""
    from bot.publishing.service import retry_failed

    config = ctx_of(request).config

    def act(s: Any, post: Post) -> Any:
        if when not in ("now", "at"):
            raise GovbotError("post.retry_when")
        return retry_failed(session=s, config=config, post=post, user=user, at=_when(when, at))

    return post_action(request, user, post_id, act,
                       "已安排重新发布。" if when == "now" else "已改期，到时自动发布。", {"when": when, "at": at})
