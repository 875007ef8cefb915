"""The publishing calendar (发布日历): month and week views of scheduled and published posts per account
and department, each account's days since its last post, and the days it would cross 10 and 14 days."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func
from sqlmodel import col, select

from bot.clock import to_utc
from bot.models import Account, Department, Post, Publication, User
from bot.web.console.common import WEEKDAYS_ZH, as_int, console_user, ctx_of, parse_date, render, today_local

router = APIRouter()


@router.get("/calendar")
def calendar_page(request: Request, view: str = "month", date: str = "", department: str = "", account: str = "",
                  user: User = Depends(console_user)) -> HTMLResponse:
    from bot.publishing.gap import account_gaps
    from bot.publishing.planner import Entry, crossing_marks, days, entry_day, shift

    ctx = ctx_of(request)
    view = "week" if view == "week" else "month"
    today = today_local(request)
    anchor = parse_date(date, today)
    shown = days(anchor, view)
    start = to_utc(datetime.combine(shown[0], time()), ctx.tz)
    end = to_utc(datetime.combine(shown[-1] + timedelta(days=1), time()), ctx.tz)
    dept_id, account_id = as_int(department), as_int(account)
    with ctx.session() as s:
        accounts = list(s.exec(select(Account).where(Account.enabled).order_by(Account.platform, Account.name)))
        departments = list(s.exec(select(Department).where(col(Department.id).in_({a.department_id for a in accounts}))
                                  .order_by(Department.name)))
        chosen = [a for a in accounts if (dept_id is None or a.department_id == dept_id)
                  and (account_id is None or a.id == account_id)]
        ids = {a.id for a in chosen}
        names = {a.id: a.name for a in chosen}
        when = func.coalesce(Publication.published_at, Publication.due_at)
        rows = s.exec(select(Publication, Post.title).join(Post, Post.id == Publication.post_id)
                      .where(col(Publication.account_id).in_(ids), Publication.state != "cancelled",
                             when >= start, when < end).order_by(when)).all()
        gaps = [g for g in account_gaps(session=s, config=ctx.config) if g.account_id in ids]
    entries: dict = {}
    for pub, title in rows:
        day, hhmm = entry_day(pub.due_at, pub.published_at, ctx.tz)
        entries.setdefault(day, []).append(Entry(day, hhmm, pub.post_id, title, names[pub.account_id], pub.state))
    marks: dict = {}
    for m in crossing_marks(gaps, warn_days=ctx.config.gap.warn_days, limit_days=ctx.config.gap.limit_days, tz=ctx.tz):
        marks.setdefault(m.day, []).append(m)
    return render(request, "calendar.html", user, view=view, anchor=anchor, shown=shown, today=today,
                  entries=entries, marks=marks, gaps=gaps, gap_cfg=ctx.config.gap, accounts=accounts,
                  departments=departments, department=dept_id, account=account_id, weekdays=WEEKDAYS_ZH,
                  prev=shift(anchor, view, -1), next=shift(anchor, view, 1))
