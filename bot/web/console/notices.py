"""Notices (通知): what the console tells each user about posts (待审签、退回、已发布、发布失败)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from bot.models import Notification, User
from bot.web.console.common import console_user, ctx_of, redirect, render

router = APIRouter()


@router.get("/notices")
def notices_page(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    from bot.publishing.notices import console_notices

    with ctx_of(request).session() as s:
        rows = console_notices(session=s, username=user.username)
    return render(request, "notices.html", user, notices=rows)


@router.get("/notices/{notice_id}")
def notice_open(request: Request, notice_id: int, user: User = Depends(console_user)) -> Response:
    """Opening a notice marks it read and goes to what it is about."""
    from bot.publishing.notices import mark_read

    with ctx_of(request).session() as s:
        row = s.get(Notification, notice_id)
        if row is None or row.recipient != user.username or row.channel != "console":
            return redirect("/notices")
        mark_read(session=s, username=user.username, notice_id=notice_id)
        target = f"/posts/{row.post_id}" if row.post_id else f"/tickets/{row.ticket_id}" if row.ticket_id else "/notices"
    return redirect(target)


@router.post("/notices/read")
def notices_read(request: Request, user: User = Depends(console_user)) -> Response:
    from bot.publishing.notices import mark_read

    with ctx_of(request).session() as s:
        mark_read(session=s, username=user.username)
    return redirect("/notices")
