"""The dashboard (首页): what needs doing first, for whoever logs in."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlmodel import select

from bot.clock import utcnow
from bot.models import Account, Message, Notification, Post, Publication, Ticket, User
from bot.publishing.gap import account_gaps
from bot.web.console.common import console_user, ctx_of, render
from bot.web.console.posts import posts_to_sign
from bot.web.console.tickets import due_info

router = APIRouter()


@router.get("/")
def dashboard(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    from bot.tickets.service import can_handle, list_tickets

    ctx = ctx_of(request)
    now = utcnow()
    my_tickets: list[Ticket] = []
    with ctx.session() as s:
        gaps = account_gaps(session=s, config=ctx.config)
        if user.department_id is not None and can_handle(user, user.department_id):
            # Overdue and due within a day: what needs doing first.
            my_tickets = [t for t in list_tickets(session=s, department_id=user.department_id, now=now, limit=200)
                          if due_info(t, now)["cls"]]
        msgs = {m.id: m for m in s.exec(select(Message).where(Message.id.in_([t.message_id for t in my_tickets])))}
        failed = list(s.exec(select(Publication).where(Publication.state.in_(("failed", "missed")))
                             .order_by(Publication.due_at.desc()).limit(20)))
        posts = {p.id: p for p in s.exec(select(Post).where(Post.id.in_([f.post_id for f in failed])))}
        accs = {a.id: a.name for a in s.exec(select(Account))}
        signer = any(user.has_role(st.role) for st in ctx.config.signoff.stages)
        extra = {"to_sign": posts_to_sign(s, ctx.config, user)} if signer else {}
        # 我的提醒: the warnings and escalations e-mailed to this user (the WeCom group's are for everyone).
        # Post notices have their own list (通知); here the ticket warnings and escalations only.
        notices = list(s.exec(select(Notification).where(Notification.recipient == user.username,
                                                         Notification.ticket_id.is_not(None))
                              .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(10)))
    return render(request, "dashboard.html", user, gaps=gaps, gap_cfg=ctx.config.gap, my_tickets=my_tickets,
                  msgs=msgs, due={t.id: due_info(t, now) for t in my_tickets}, failed=failed, posts=posts, accs=accs,
                  notices=notices, **extra)
