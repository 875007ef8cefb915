"""Accounts (账号) with their connection test, and the triage rules (规则): try a message, edit a rules
file with validation, try the edited rules before saving, save and reload."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import select

from bot.errors import GovbotError
from bot.models import Account, Department, User
from bot.publishing.gap import account_gaps
from bot.triage.rules import RuleError
from bot.users import require_role
from bot.web.console.common import check_csrf, console_user, ctx_of, error_view, flash, redirect, render
from bot.web.console.explain import explain

router = APIRouter()


@router.get("/accounts")
def accounts_page(request: Request, user: User = Depends(console_user)) -> HTMLResponse:
    ctx = ctx_of(request)
    with ctx.session() as s:
        gaps = {g.account_id: g for g in account_gaps(session=s, config=ctx.config)}
        depts = {d.id: d.name for d in s.exec(select(Department))}
        rows = list(s.exec(select(Account).order_by(Account.platform, Account.name)))
    return render(request, "accounts.html", user, accounts=rows, gaps=gaps, depts=depts, gap_cfg=ctx.config.gap)


@router.post("/accounts/{account_id}/test", dependencies=[Depends(check_csrf)])
def account_test(request: Request, account_id: int, user: User = Depends(console_user)) -> Response:
    """连接测试 (admins): one authenticated call to the platform with the account's credentials."""
    from bot.connectors.check import check_connection

    ctx = ctx_of(request)
    try:
        require_role(user, "admin")
    except GovbotError as exc:
        flash(request, error_view(exc)["title"], "error")
        return redirect("/accounts")
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
    from bot.triage.editing import EDITABLE, read_rule_file

    ctx = ctx_of(request)
    name = extra.pop("file", "") or "intent.toml"
    name = name if name in EDITABLE else "intent.toml"
    content = extra.pop("content", None)
    if content is None:
        content = read_rule_file(Path(ctx.config.triage.rules_dir), name)
    values = {"text": "", "result": None, "trial": None, "error": None, "checked": False}
    return render(request, "rules.html", user, status_code=status_code, files=EDITABLE, file=name, content=content,
                  rules_error=ctx.rules.last_error, **(values | extra))


def _result(ctx, classification, faq) -> dict:
    return {"c": classification, "faq": faq, "department": ctx.config.triage.department_for(classification.topic),
            "explanation": explain(intent=classification.intent, topic=classification.topic,
                                   confidence=classification.confidence, rules=classification.rules_summary(),
                                   spam=classification.spam)}


@router.get("/rules")
def rules_page(request: Request, file: str = "", user: User = Depends(console_user)) -> HTMLResponse:
    return _rules_page(request, user, file=file)


@router.post("/rules", dependencies=[Depends(check_csrf)])
def rules_test(request: Request, text: str = Form(""), file: str = Form(""),
               user: User = Depends(console_user)) -> HTMLResponse:
    """Try a message against the rules in use."""
    ctx = ctx_of(request)
    classification = ctx.rules.current().classify(text)
    result = _result(ctx, classification, ctx.rules.current_faq().match(text, classification))
    return _rules_page(request, user, file=file, text=text, result=result)


@router.post("/rules/edit", dependencies=[Depends(check_csrf)])
def rules_edit(request: Request, file: str = Form(""), content: str = Form(""), text: str = Form(""),
               action: str = Form("check"), user: User = Depends(console_user)) -> Response:
    """检查 / 试用 / 保存 an edited rules file; saving is for admins and only when the file is valid."""
    from bot.triage.editing import check_rule_text, save_rule_text, try_rule_text

    ctx = ctx_of(request)
    rules_dir = Path(ctx.config.triage.rules_dir)
    content = content.replace("\r\n", "\n")
    keep = {"file": file, "content": content, "text": text}
    try:
        if action == "save":
            require_role(user, "admin")
            save_rule_text(rules_dir, file, content)
            ctx.rules.current()  # reload now, so the page and the next message use the new rules
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
