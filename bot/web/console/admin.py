"""Accounts (账号) with their connection test, and the triage rules (规则): try a message, edit a rules
file with validation, try the edited rules before saving, save and reload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from loguru import logger
from sqlmodel import select

from bot.connectors.quota import SHOWN_BUDGETS, budget_overview
from bot.errors import GovbotError
from bot.models import Account, Department, User
from bot.publishing.gap import account_gaps
from bot.resources import rule_file
from bot.resources import rules_dir as shipped_rules_dir
from bot.triage.corrections import corrected_messages
from bot.triage.disagreements import review_corrections
from bot.triage.rules import RuleError
from bot.users import require_role
from bot.web.console.common import console_user, ctx_of, error_view, flash, redirect, render
from bot.web.console.explain import explain

router = APIRouter()


@router.get("/accounts")
def accounts_page(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    ctx = ctx_of(request)
    with ctx.session() as s:
        gaps = {g.account_id: g for g in account_gaps(session=s, config=ctx.config)}
        depts = {d.id: d.name for d in s.exec(select(Department))}
        rows = list(s.exec(select(Account).order_by(Account.platform, Account.name)))
        inspection = inspection_by_account(s, ctx)
        # 调用额度: what is left of each platform API's budget in this window, and what waits for it.
        budgets = {a.id: [b for b in budget_overview(s, a.id, config=ctx.config)
                          if b.used or b.closed or b.waiting or b.api in SHOWN_BUDGETS] for a in rows}
    return render(request, "accounts.html", user, accounts=rows, gaps=gaps, depts=depts, gap_cfg=ctx.config.gap,
                  inspection=inspection, budgets=budgets)


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


@router.post("/accounts/{account_id}/test")
def account_test(request: Request, account_id: int, user: User = Depends(console_user)) -> Response:
    """连接测试 (admins): one authenticated call to the platform with the account's credentials."""
    from bot.connectors.check import check_connection

    ctx = ctx_of(request)
    with ctx.session() as s:
        account = s.get(Account, account_id)
    if account is None:
        flash(request, "没有这个账号。", "error")
        return redirect("/accounts")
    result = check_connection(ctx, account)
    flash(request, f"{account.name}：{result.message}", "ok" if result.ok else "error")
    return redirect("/accounts")


# ---------------------------------------------------------------- rules (规则)


def rule_error_view(exc: RuleError) -> dict:
    where = "、".join(x for x in (Path(exc.file).name, exc.rule or "") if x)
    return {"title": "规则文件有错误，未保存", "detail": f"{where}：{exc.reason}", "problems": []}


def _rules_page(request: Request, user: User, *, status_code: int = 200, **extra) -> HTMLResponse:
    from bot.triage.editing import EDITABLE

    ctx = ctx_of(request)
    name = extra.pop("file", "") or "intent.toml"
    name = name if name in EDITABLE else "intent.toml"
    content = extra.pop("content", None)
    if content is None:
        content = rule_file(ctx.config.rules_dir, name).read_text(encoding="utf-8")
    values = {"text": "", "result": None, "trial": None, "error": None, "checked": False,
              "review": correction_review(ctx)}
    return render(request, "rules.html", user, status_code=status_code, files=EDITABLE, file=name, content=content,
                  rules_error=ctx.rules.last_error, **(values | extra))


def _result(ctx, classification, faq) -> dict:
    return {"c": classification, "faq": faq, "department": ctx.config.triage.department_for(classification.topic),
            "explanation": explain(intent=classification.intent, topic=classification.topic,
                                   confidence=classification.confidence, rules=classification.rules_summary(),
                                   spam=classification.spam)}

REVIEW_LIMIT = 1000  # latest corrected messages re-classified for the page: keeps it quick


def correction_review(ctx):
    """How the current rules fare on the responders' corrections (纠正分类), for the rules page."""
    with ctx.session() as s:
        samples = corrected_messages(session=s)[-REVIEW_LIMIT:]
    return review_corrections(samples, ctx.rules.current())


@router.get("/rules")
def rules_page(request: Request, file: str = "", user: User = Depends(console_user)) -> HTMLResponse:
    return _rules_page(request, user, file=file)


@router.post("/rules")
def rules_test(request: Request, text: str = Form(""), file: str = Form(""),
               user: User = Depends(console_user)) -> HTMLResponse:
    """Try a message against the rules in use."""
    ctx = ctx_of(request)
    classification = ctx.rules.current().classify(text)
    result = _result(ctx, classification, ctx.rules.current_faq().match(text, classification))
    return _rules_page(request, user, file=file, text=text, result=result)


@router.post("/rules/edit")
def rules_edit(request: Request, file: str = Form(""), content: str = Form(""), text: str = Form(""),
               action: str = Form("check"), user: User = Depends(console_user)) -> Response:
    """检查 / 试用 / 保存 an edited rules file; saving is for admins and only when the file is valid."""
    from bot.triage.editing import check_rule_text, save_rule_text, try_rule_text

    ctx = ctx_of(request)
    # Edits go to the site's rules directory (triage.rules_dir); without one, to the shipped rules (a checkout).
    rules_dir = ctx.config.rules_dir or shipped_rules_dir()
    content = content.replace("\r\n", "\n")
    keep = {"file": file, "content": content, "text": text}
    try:
        if action == "save":
            require_role(user, "admin")
            save_rule_text(rules_dir, file, content)
            ctx.rules.reload_if_changed()  # now, so the page and the next message use the new rules
            from bot import audit

            with ctx.session() as s:
                audit.record(session=s, actor=user.username, action="rules.edited", subject_type="rules",
                             subject_id=None, file=file)
            flash(request, "规则已保存并重新加载，新收到的留言将按新规则分类。")
            return redirect(f"/rules?file={file}")
        if action == "try" and text.strip():
            trial = try_rule_text(rules_dir, file, content, text)
            return _rules_page(request, user, trial=_result(ctx, trial.classification, trial.faq), checked=True, **keep)
        check_rule_text(rules_dir, file, content)
        return _rules_page(request, user, checked=True, **keep)
    except RuleError as exc:
        return _rules_page(request, user, status_code=422, error=rule_error_view(exc), **keep)
    except GovbotError as exc:
        return _rules_page(request, user, status_code=403, error=error_view(exc), **keep)
