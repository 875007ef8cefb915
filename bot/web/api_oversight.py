"""JSON API of the oversight figures: the daily digest and the inspection report (any logged-in user)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from bot.clock import to_local, utcnow
from bot.context import Context
from bot.errors import GovbotError
from bot.models import User
from bot.web.deps import current_user, get_ctx
from bot.web.schemas.common import ERROR_RESPONSES, other_formats
from bot.web.schemas.oversight import DigestOut, ReportOut

router = APIRouter(prefix="/api", tags=["oversight"], responses=ERROR_RESPONSES)


def _day(text: str | None, ctx: Context) -> date:
    if not text:
        return to_local(utcnow(), ctx.tz).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise GovbotError("date.invalid", value=text) from None


@router.get("/digest", response_model=DigestOut, responses=other_formats("text/markdown", "text/html"))
def get_digest(
    date: str | None = Query(None, description="Local day YYYY-MM-DD (default today)"),
    organisation: str | None = Query(None, description="Organisation name (default: the first configured)"),
    format: Literal["json", "markdown", "html"] = "json",
    ctx: Context = Depends(get_ctx),
    user: User = Depends(current_user),
) -> Any:
    """The digest of unanswered messages for one organisation and day, with its stored delivery state."""
    from bot.oversight.digest import (
        collect_digest,
        organisation_scopes,
        render_html,
        render_markdown,
        stored_run,
    )

    day = _day(date, ctx)
    with ctx.session() as session:
        scope = organisation_scopes(session=session, config=ctx.config, name=organisation)[0]
        digest = collect_digest(session=session, config=ctx.config, calendar=ctx.calendar, scope=scope, day=day)
        run = stored_run(session=session, scope=scope, day=day) if scope.organisation_id is not None else None
    if format == "markdown":
        return PlainTextResponse(render_markdown(digest), media_type="text/markdown; charset=utf-8")
    if format == "html":
        return HTMLResponse(render_html(digest))
    body = digest.to_dict()
    body["stored"] = None if run is None else {"run_id": run.id, "created_at": run.created_at.isoformat(),
                                               "deliveries": run.deliveries}
    return body


@router.get("/reports", response_model=ReportOut, responses=other_formats("text/csv", "text/html"))
def get_report(
    month: str | None = Query(None, description="YYYY-MM (local time)"),
    start: str | None = Query(None, description="First local day YYYY-MM-DD (instead of month)"),
    end: str | None = Query(None, description="Day after the last, YYYY-MM-DD"),
    account: str | None = None,
    department: str | None = None,
    organisation: str | None = None,
    format: Literal["json", "csv", "html"] = "json",
    ctx: Context = Depends(get_ctx),
    user: User = Depends(current_user),
) -> Any:
    """Inspection figures per account and in total for a month (or [start, end)), as JSON, CSV or HTML."""
    from bot.oversight.reports import compute_report, day_period, month_period, resolve_scope, to_csv

    if month and not (start or end):
        first, stop = month_period(month, ctx.tz)
    elif start and end and not month:
        first, stop = day_period(_day(start, ctx), _day(end, ctx), ctx.tz)
    else:
        raise GovbotError("period.required")
    with ctx.session() as session:
        scope = resolve_scope(session=session, account=account, department=department, organisation=organisation)
        report = compute_report(session=session, config=ctx.config, calendar=ctx.calendar, scope=scope,
                                start=first, end=stop)
    if format == "csv":
        return Response(to_csv(report).encode("utf-8-sig"), media_type="text/csv; charset=utf-8")
    if format == "html":
        from bot.oversight.charts import report_html

        return HTMLResponse(report_html(report))
    return report.to_dict()
