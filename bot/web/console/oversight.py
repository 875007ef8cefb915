"""The daily digest (日报) and the monthly report (报表)."""

from __future__ import annotations

import base64
from typing import Any
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
    parse_date,
    redirect,
    render,
    today_local,
)
from bot.web.downloads import CSV, DOCX, attachment

router = APIRouter()


def digest_scope(session: Any, config: Any, org: str) -> tuple[Any, list[Any]]:
    """The organisation asked for (default: the first) and all of them, for the picker."""
    from bot.oversight.digest import organisation_scopes

    scopes = organisation_scopes(session=session, config=config)
    chosen = next((sc for sc in scopes if sc.name == org), scopes[0])
    return chosen, scopes


@router.get("/digest")
def digest_page(request: Request, day: str = "", org: str = "", user: User = Depends(console_user)) -> HTMLResponse:
    from bot.oversight.digest import collect_digest, render_html, stored_run

    ctx = ctx_of(request)
    today = today_local(request)
    the_day = parse_date(day, today)
    digest = run = error = html = None
    scopes: list[Any] = []
    try:
        with ctx.session() as s:
            scope, scopes = digest_scope(s, ctx.config, org)
            digest = collect_digest(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, day=the_day)
            run = stored_run(session=s, scope=scope, day=the_day) if scope.organisation_id is not None else None
        html = render_html(digest)
    except GovbotError as exc:
        error = error_view(exc)
    return render(request, "digest.html", user, digest=digest, run=run, day=the_day, today=today, scopes=scopes,
                  org=digest.organisation if digest else org, error=error, digest_html=html)


@router.get("/digest/html")
def digest_html(request: Request, day: str = "", org: str = "", user: User = Depends(console_user)) -> HTMLResponse:
    """The digest exactly as it is mailed, for the page to embed."""
    from bot.oversight.digest import collect_digest, render_html

    ctx = ctx_of(request)
    try:
        with ctx.session() as s:
            scope, _ = digest_scope(s, ctx.config, org)
            digest = collect_digest(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope,
                                    day=parse_date(day, today_local(request)))
    except GovbotError as exc:
        return HTMLResponse(f"<p>{error_view(exc)['detail']}</p>", status_code=422)
    return HTMLResponse(render_html(digest))


@router.post("/digest/send")
def digest_send(request: Request, org: str = Form(""), user: User = Depends(console_user)) -> Response:
    """Write today's digest and deliver it to the channels that have not had it yet (admins)."""
    from bot.oversight.digest import produce_digest

    ctx = ctx_of(request)
    try:
        with ctx.session() as s:
            scope, _ = digest_scope(s, ctx.config, org)
        outcome = produce_digest(ctx, scope=scope, day=today_local(request))
    except GovbotError as exc:
        flash(request, f"{error_view(exc)['title']}：{exc.message_zh}", "error")
        return redirect(f"/digest?org={quote(org)}")
    if outcome is None:
        flash(request, "另一个进程正在生成今天的日报，请稍后刷新。", "warn")
    elif outcome.failed_now:
        flash(request, "日报已生成；发送失败的渠道：" + "、".join(outcome.failed_now) + "（系统会自动重试）", "error")
    elif outcome.sent_now:
        flash(request, "日报已生成并发送：" + "、".join(outcome.sent_now))
    else:
        flash(request, "日报已生成。" + ("各渠道今天已发送过。" if scope.channels else "未配置发送渠道。"))
    return redirect(f"/digest?org={quote(scope.name)}")


# ---------------------------------------------------------------- monthly report (报表)

SCOPE_KINDS = {"all": "全部账号", "organisation": "单位", "department": "部门", "account": "账号"}


def report_for(request: Request, month: str, kind: str, name: str) -> Any:
    """The report of the month for the scope picked (one of organisation, department, account; or all)."""
    from bot.oversight.reports import compute_report, month_period, resolve_scope

    ctx = ctx_of(request)
    start, end = month_period(month, ctx.tz)
    with ctx.session() as s:
        scope = resolve_scope(session=s, **({kind: name} if kind in SCOPE_KINDS and kind != "all" and name else {}))
        return compute_report(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, start=start, end=end)


def recent_months(today: Any, chosen: str, count: int = 24) -> list[str]:
    """The months a report can be asked for, newest first (YYYY-MM), with the chosen one kept."""
    months, year, month = [], today.year, today.month
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months if chosen in months or not chosen else [chosen, *months]


def report_query(month: str, kind: str, name: str) -> str:
    return f"month={quote(month)}&kind={quote(kind)}&name={quote(name)}"


@router.get("/reports")
def reports_page(request: Request, month: str = "", kind: str = "all", name: str = "",
                 user: User = Depends(console_user)) -> HTMLResponse:
    from bot.oversight.charts import report_charts
    from bot.oversight.reports import CSV_HEADER, conclusions, csv_rows

    ctx = ctx_of(request)
    month = month or today_local(request).strftime("%Y-%m")
    kind = kind if kind in SCOPE_KINDS else "all"
    report = error = None
    try:
        report = report_for(request, month, kind, name)
    except GovbotError as exc:
        error = error_view(exc)
    with ctx.session() as s:
        choices = {"organisation": [o.name for o in ctx.config.organisations],
                   "department": [d.name for d in s.exec(select(Department).order_by(Department.name))],
                   "account": [a.name for a in s.exec(select(Account).order_by(Account.name))]}
    charts = [(title, "data:image/png;base64," + base64.b64encode(png).decode())
              for title, png in (report_charts(report) if report else [])]
    return render(request, "reports.html", user, report=report, error=error, month=month, kind=kind, name=name,
                  charts=charts, months=recent_months(today_local(request), month),
                  kinds=SCOPE_KINDS, choices=choices, header=CSV_HEADER,
                  rows=csv_rows(report) if report else [], conclusions=conclusions(report) if report else [],
                  query=report_query(month, kind, name))


@router.get("/reports/csv")
def report_csv(request: Request, month: str = "", kind: str = "all", name: str = "",
               user: User = Depends(console_user)) -> Response:
    from bot.oversight.reports import to_csv

    try:
        report = report_for(request, month, kind, name)
    except GovbotError as exc:
        return render(request, "notfound.html", user, status_code=422, error=error_view(exc))
    # utf-8-sig: Excel reads the Chinese only with the byte-order mark.
    return attachment(to_csv(report).encode("utf-8-sig"), f"月度检查记录表-{report.scope.name}-{month}.csv", CSV)


@router.get("/reports/docx")
def report_docx(request: Request, month: str = "", kind: str = "all", name: str = "",
                user: User = Depends(console_user)) -> Response:
    """The printable 月度检查记录表 as a Word document."""
    from bot.oversight.record_docx import record_docx

    try:
        report = report_for(request, month, kind, name)
    except GovbotError as exc:
        return render(request, "notfound.html", user, status_code=422, error=error_view(exc))
    return attachment(record_docx(report), f"月度检查记录表-{report.scope.name}-{month}.docx", DOCX)
