"""Inspection readiness (迎检) for the transparency office: each account against the national checklist,
the rectification list (整改台账) completed here, and the 自查报告 / 年度报表 downloads."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import select

from bot.errors import GovbotError
from bot.models import Account, Department, User
from bot.web.console.common import (
    console_user,
    ctx_of,
    error_view,
    flash,
    redirect,
    render,
    today_local,
)
from bot.web.console.oversight import recent_months
from bot.web.downloads import CSV, DOCX, attachment

router = APIRouter()


def _scope(session, department: str):
    from bot.oversight.reports import resolve_scope

    return resolve_scope(session=session, department=department or None)


@router.get("/inspection")
def inspection_page(request: Request, department: str = "", user: User = Depends(console_user)) -> HTMLResponse:
    from bot.inspection.service import can_rectify, current_status, list_rectifications, load

    ctx = ctx_of(request)
    statuses, rects, error = [], [], None
    with ctx.session() as s:
        depts = [d.name for d in s.exec(select(Department).order_by(Department.name))]
        accounts = {a.id: a for a in s.exec(select(Account))}
        try:
            scope = _scope(s, department)
            checklist = load(ctx.config)
            statuses = current_status(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope)
            rects = list_rectifications(session=s, account_ids=scope.account_ids)
        except GovbotError as exc:
            checklist, error = None, error_view(exc)
    today = today_local(request)
    index = today.year * 4 + (today.month - 1) // 3  # quarters counted from year 0: the last 8, newest first
    quarters = [f"{(index - i) // 4}Q{(index - i) % 4 + 1}" for i in range(8)]
    editable = {r.id for r in rects if r.account_id in accounts and can_rectify(user, accounts[r.account_id])}
    return render(request, "inspection.html", user, statuses=statuses, checklist=checklist, rects=rects,
                  accounts=accounts, editable=editable, depts=depts, department=department, error=error,
                  month=today.strftime("%Y-%m"), months=recent_months(today, ""), quarters=quarters,
                  years=[str(today.year - i) for i in range(5)], today=today,
                  window=ctx.config.inspection.window_days, q=quote(department))


@router.post("/inspection/rectifications/{rectification_id}")
def rectify(request: Request, rectification_id: int, measure: str = Form(""), fixed_on: str = Form(""),
            department: str = Form(""), user: User = Depends(console_user)) -> Response:
    from bot.inspection.service import complete_rectification

    try:
        day = date.fromisoformat(fixed_on) if fixed_on.strip() else None
    except ValueError:
        day = None
        flash(request, "完成日期格式不正确（应为 年-月-日）", "error")
        return redirect(f"/inspection?department={quote(department)}#r{rectification_id}")
    try:
        with ctx_of(request).session() as s:
            complete_rectification(session=s, rectification_id=rectification_id, user=user, measure=measure,
                                   fixed_on=day)
            s.commit()
    except GovbotError as exc:
        view = error_view(exc)
        flash(request, f"{view['title']}：{view['detail']}", "error")
    else:
        flash(request, "整改情况已保存。" if day else "整改措施已保存，完成后请填写完成日期。")
    return redirect(f"/inspection?department={quote(department)}#r{rectification_id}")


@router.get("/inspection/report.{fmt}")
def selfcheck_download(request: Request, fmt: str, month: str = "", quarter: str = "", year: str = "",
                       department: str = "", user: User = Depends(console_user)) -> Response:
    from bot.inspection.documents import selfcheck_docx, selfcheck_html, title_of
    from bot.inspection.periods import period_of
    from bot.inspection.selfcheck import build_selfcheck

    ctx = ctx_of(request)
    if fmt not in ("docx", "html"):
        return render(request, "notfound.html", user, status_code=404,
                      error={"title": "未找到", "detail": "只提供 Word（docx）和网页（html）两种格式", "problems": []})
    try:
        start, end, _ = period_of(ctx.tz, month=month or None, quarter=quarter or None, year=year or None)
        with ctx.session() as s:
            sc = build_selfcheck(session=s, config=ctx.config, calendar=ctx.calendar, scope=_scope(s, department),
                                 start=start, end=end)
    except GovbotError as exc:
        return render(request, "notfound.html", user, status_code=422, error=error_view(exc))
    if fmt == "html":
        return HTMLResponse(selfcheck_html(sc))
    return attachment(selfcheck_docx(sc), f"{title_of(sc)}.docx", DOCX)


@router.get("/inspection/annual.{fmt}")
def annual_download(request: Request, fmt: str, year: str = "", department: str = "",
                    user: User = Depends(console_user)) -> Response:
    from bot.inspection.documents import annual_docx
    from bot.inspection.selfcheck import annual_csv, annual_rows, public_reply_counts, year_period
    from bot.oversight.reports import compute_report

    ctx = ctx_of(request)
    if fmt not in ("docx", "csv"):
        return render(request, "notfound.html", user, status_code=404,
                      error={"title": "未找到", "detail": "只提供 Word（docx）和表格（csv）两种格式", "problems": []})
    try:
        start, end = year_period(year, ctx.tz)
        with ctx.session() as s:
            scope = _scope(s, department)
            r = compute_report(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, start=start, end=end)
            rows = annual_rows(r, public_reply_counts(session=s, report_rows=r.rows, start=start, end=end))
    except GovbotError as exc:
        return render(request, "notfound.html", user, status_code=422, error=error_view(exc))
    name = f"年度报表-{scope.name}-{year}.{fmt}"
    if fmt == "docx":
        return attachment(annual_docx(rows, year=year, scope_name=scope.name), name, DOCX)
    return attachment(annual_csv(rows).encode("utf-8-sig"), name, CSV)
