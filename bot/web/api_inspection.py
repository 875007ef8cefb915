"""JSON API of inspection readiness (迎检): status per account, the 自查报告, the 年度报表, the 整改台账."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlmodel import select

from bot.context import Context
from bot.errors import NotFound
from bot.models import Account, User
from bot.web.deps import current_user, get_ctx
from bot.web.downloads import CSV, DOCX, attachment
from bot.web.schemas.common import ERROR_RESPONSES, Page, PageParams, other_formats, page
from bot.web.schemas.inspection import AccountStatusOut, AnnualOut, RectificationOut, SelfCheckOut

router = APIRouter(prefix="/api/inspection", tags=["inspection"], responses=ERROR_RESPONSES)


def _scope(session, account: str | None, department: str | None, organisation: str | None):
    from bot.oversight.reports import resolve_scope

    return resolve_scope(session=session, account=account, department=department, organisation=organisation)


@router.get("/status", response_model=Page[AccountStatusOut])
def get_status(request: Request, account: str | None = None, department: str | None = None,
               organisation: str | None = None, params: PageParams = Depends(), ctx: Context = Depends(get_ctx),
               user: User = Depends(current_user)) -> dict[str, Any]:
    """Each account against every indicator over the last inspection.window_days days, with the evidence."""
    from bot.inspection.selfcheck import status_rows
    from bot.inspection.service import current_status

    with ctx.session() as s:
        scope = _scope(s, account, department, organisation)
        rows = status_rows(current_status(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope))
    return page(request, params, rows)


@router.get("/report", response_model=SelfCheckOut, responses=other_formats("text/html", DOCX))
def get_report(
    month: str | None = Query(None, description="YYYY-MM"), quarter: str | None = Query(None, description="2026Q4"),
    year: str | None = Query(None, description="YYYY"), start: date | None = None, end: date | None = None,
    account: str | None = None, department: str | None = None, organisation: str | None = None,
    format: Literal["json", "html", "docx"] = "json",
    ctx: Context = Depends(get_ctx), user: User = Depends(current_user),
) -> Any:
    """The 自查报告 draft for a period and scope: JSON, HTML, or a DOCX download."""
    from bot.inspection.documents import selfcheck_docx, selfcheck_html, title_of
    from bot.inspection.periods import period_of
    from bot.inspection.selfcheck import build_selfcheck, status_rows

    first, stop, _label = period_of(ctx.tz, month=month, quarter=quarter, year=year, first=start, end=end)
    with ctx.session() as s:
        scope = _scope(s, account, department, organisation)
        sc = build_selfcheck(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, start=first, end=stop)
    if format == "html":
        return HTMLResponse(selfcheck_html(sc))
    if format == "docx":
        return attachment(selfcheck_docx(sc), f"{title_of(sc)}.docx", DOCX)
    return {"title": title_of(sc), "overview": dict(sc.overview()), "findings": sc.findings_text(),
            "accounts": status_rows(sc.statuses),
            "rectifications": [_rect(r, name) for r, name in sc.rectifications],
            "merge": [m.__dict__ for m in sc.merge], "report": sc.report.to_dict()}


@router.get("/annual", response_model=AnnualOut, responses=other_formats("text/csv", DOCX))
def get_annual(year: str, account: str | None = None, department: str | None = None, organisation: str | None = None,
               format: Literal["json", "csv", "docx"] = "json",
               ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> Any:
    """The new-media part of the 年度报表, one row per account."""
    from bot.inspection.documents import annual_docx
    from bot.inspection.selfcheck import (
        ANNUAL_HEADER,
        annual_csv,
        annual_rows,
        public_reply_counts,
        year_period,
    )
    from bot.oversight.reports import compute_report

    first, stop = year_period(year, ctx.tz)
    with ctx.session() as s:
        scope = _scope(s, account, department, organisation)
        r = compute_report(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, start=first, end=stop)
        rows = annual_rows(r, public_reply_counts(session=s, report_rows=r.rows, start=first, end=stop))
    if format == "csv":
        return attachment(annual_csv(rows).encode("utf-8-sig"), f"年度报表-{scope.name}-{year}.csv", CSV)
    if format == "docx":
        return attachment(annual_docx(rows, year=year, scope_name=scope.name), f"年度报表-{scope.name}-{year}.docx",
                          DOCX)
    return {"year": year, "scope": scope.name, "header": list(ANNUAL_HEADER), "rows": rows}


def _rect(r, name: str) -> dict[str, Any]:
    return {"id": r.id, "account": name, "indicator": r.indicator, "problem": r.problem,
            "found_on": r.found_on.isoformat(), "measure": r.measure,
            "fixed_on": r.fixed_on.isoformat() if r.fixed_on else None, "fixed_by": r.fixed_by}


@router.get("/rectifications", response_model=Page[RectificationOut])
def get_rectifications(request: Request, account: str | None = None, department: str | None = None,
                       organisation: str | None = None, params: PageParams = Depends(),
                       ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> dict[str, Any]:
    """The rectification list (整改台账)."""
    from bot.inspection.service import list_rectifications

    with ctx.session() as s:
        scope = _scope(s, account, department, organisation)
        names = dict(s.exec(select(Account.id, Account.name)).all())
        rows = [_rect(r, names.get(r.account_id, "")) for r in
                list_rectifications(session=s, account_ids=scope.account_ids)]
    return page(request, params, rows)


class RectifyIn(BaseModel):
    measure: str = Field(min_length=1, max_length=2000, description="整改措施")
    fixed_on: date | None = Field(None, description="Day it was fixed; null while in progress")


@router.post("/rectifications/{rectification_id}", response_model=RectificationOut)
def post_rectification(rectification_id: int, body: RectifyIn, ctx: Context = Depends(get_ctx),
                       user: User = Depends(current_user)) -> dict[str, Any]:
    """Record what was done about one problem (admins; editors and the lead of the account's department)."""
    from bot.inspection.service import complete_rectification

    if not 0 < rectification_id < 2**31:
        raise NotFound("rectification.not_found", rectification_id=rectification_id)
    with ctx.session() as s:
        row = complete_rectification(session=s, rectification_id=rectification_id, user=user, measure=body.measure,
                                     fixed_on=body.fixed_on)
        s.commit()
        name = s.get(Account, row.account_id).name
        return _rect(row, name)
