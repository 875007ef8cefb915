"""Accounts (账号) and the rules tester (规则)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse
from loguru import logger
from sqlmodel import select

from bot.errors import GovbotError
from bot.models import Account, Department, User
from bot.publishing.gap import account_gaps
from bot.triage.corrections import corrected_messages
from bot.triage.disagreements import review_corrections
from bot.web.console.common import check_csrf, console_user, ctx_of, error_view, render

router = APIRouter()


@router.get("/accounts")
def accounts_page(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    ctx = ctx_of(request)
    with ctx.session() as s:
        gaps = {g.account_id: g for g in account_gaps(session=s, config=ctx.config)}
        depts = {d.id: d.name for d in s.exec(select(Department))}
        rows = list(s.exec(select(Account).order_by(Account.platform, Account.name)))
        inspection = inspection_by_account(s, ctx)
    return render(request, "accounts.html", user, accounts=rows, gaps=gaps, depts=depts, gap_cfg=ctx.config.gap,
                  inspection=inspection)


def inspection_by_account(session, ctx) -> dict[int, Any]:
    """迎检: each account's status against the checklist now; {} with the reason logged when the file is bad."""
    from bot.inspection.service import current_status
    from bot.oversight.reports import resolve_scope

    try:
        statuses = current_status(session=session, config=ctx.config, calendar=ctx.calendar,
                                  scope=resolve_scope(session=session))
    except GovbotError as exc:
        logger.warning("inspection status unavailable: {}", exc)
        return {}
    return {st.facts.account_id: st for st in statuses}


# ---------------------------------------------------------------- rules test (规则)

REVIEW_LIMIT = 1000  # latest corrected messages re-classified for the page: keeps it quick


def correction_review(ctx):
    """How the current rules fare on the responders' corrections (纠正分类), for the rules page."""
    with ctx.session() as s:
        samples = corrected_messages(session=s)[-REVIEW_LIMIT:]
    return review_corrections(samples, ctx.rules.current())


@router.get("/rules")
def rules_page(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    return render(request, "rules.html", user, text="", subject="", result=None,
                  review=correction_review(ctx_of(request)))


@router.post("/rules", dependencies=[Depends(check_csrf)])
def rules_test(request: Request, text: str = Form(""), subject: str = Form(""),
               user: User = Depends(console_user)) -> HTMLResponse:
    ctx = ctx_of(request)
    result = error = None
    try:
        store = ctx.rules
        classification = store.current().classify(text, subject or None)
        faq = store.current_faq().match(text, classification)
        department = ctx.config.triage.department_for(classification.topic)
        result = {"c": classification, "faq": faq, "department": department,
                  "default_desk": classification.topic not in ctx.config.triage.topic_departments,
                  "rules_error": store.last_error}
    except GovbotError as exc:
        error = error_view(exc)
    return render(request, "rules.html", user, text=text, subject=subject, result=result, error=error,
                  review=correction_review(ctx))
