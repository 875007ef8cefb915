"""`govbot inspection`: status against the checklist, the 自查报告, the 年度报表 and the rectification list."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import click

from bot.cli import CliState, as_option, fail, handle_errors, pass_state

scope_options = [
    click.option("--account", help="One account, by name."),
    click.option("--department", help="The accounts a department runs."),
    click.option("--organisation", help="The accounts of an organisation's departments."),
]


def with_scope(fn):
    for option in reversed(scope_options):
        fn = option(fn)
    return fn


def _period(ctx, month, quarter, year, first, end) -> tuple[datetime, datetime, str]:
    from bot.inspection.periods import period_of

    return period_of(ctx.tz, month=month, quarter=quarter, year=year, first=first.date() if first else None,
                     end=end.date() if end else None)


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "scope"


@click.group(name="inspection")
def inspection() -> None:
    """Inspection readiness (迎检): the national checklist per account, 自查报告, 年度报表, 整改台账."""


@inspection.command("status")
@with_scope
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
@handle_errors
def status(state: CliState, account: str | None, department: str | None, organisation: str | None,
           as_json: bool) -> None:
    """Each account against every indicator over the last inspection.window_days days, as of now."""
    from bot.inspection.selfcheck import status_rows
    from bot.inspection.service import current_status
    from bot.oversight.reports import resolve_scope

    ctx = state.ctx
    with ctx.session() as s:
        scope = resolve_scope(session=s, account=account, department=department, organisation=organisation)
        sts = current_status(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope)
    if as_json:
        click.echo(json.dumps(status_rows(sts), ensure_ascii=False, indent=2))
        return
    for st in sts:
        click.echo(f"{st.facts.name}（{st.facts.department or '未分配部门'}）：{st.overall_zh}")
        for r in st.results:
            if r.status in ("fail", "risk"):
                click.echo(f"  {r.status_zh}｜{r.indicator.name}{'（单项否决）' if r.indicator.veto else ''}：{r.summary}")
                for e in r.evidence:
                    click.echo(f"      {e.text}")


@inspection.command("report")
@click.option("--month", help="Calendar month YYYY-MM.")
@click.option("--quarter", help="Quarter, e.g. 2026Q4.")
@click.option("--year", help="Year, e.g. 2026.")
@click.option("--from", "first", type=click.DateTime(formats=["%Y-%m-%d"]), help="First day (with --to).")
@click.option("--to", "end", type=click.DateTime(formats=["%Y-%m-%d"]), help="Day after the last day (with --from).")
@with_scope
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the DOCX and HTML files (default: <data_dir>/reports).")
@pass_state
@handle_errors
def report(state: CliState, month, quarter, year, first, end, account, department, organisation,
           out: Path | None) -> None:
    """Write the 自查报告 draft (DOCX and HTML) for a period and scope; prints its findings."""
    from bot.inspection.documents import selfcheck_docx, selfcheck_html
    from bot.inspection.selfcheck import build_selfcheck
    from bot.oversight.reports import resolve_scope

    ctx = state.ctx
    start, stop, label = _period(ctx, month, quarter, year, first, end)
    with ctx.session() as s:
        scope = resolve_scope(session=s, account=account, department=department, organisation=organisation)
        sc = build_selfcheck(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, start=start, end=stop)
    for line in sc.findings_text():
        click.echo(line)
    folder = out or ctx.config.path(ctx.config.data_dir) / "reports"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"selfcheck-{label}-{_safe(scope.name)}"
        Path(f"{stem}.docx").write_bytes(selfcheck_docx(sc))
        Path(f"{stem}.html").write_text(selfcheck_html(sc), encoding="utf-8")
    except OSError as exc:
        fail(f"无法写入 {folder}：{exc.strerror}")
    click.echo(f"wrote {stem}.docx and {stem}.html", err=True)


@inspection.command("annual")
@click.option("--year", required=True, help="Year, e.g. 2026.")
@with_scope
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the CSV and DOCX files (default: <data_dir>/reports).")
@pass_state
@handle_errors
def annual(state: CliState, year: str, account, department, organisation, out: Path | None) -> None:
    """Write the new-media part of the 年度报表 (CSV and DOCX), one row per account."""
    from bot.inspection.documents import annual_docx
    from bot.inspection.selfcheck import annual_csv, annual_rows, public_reply_counts, year_period
    from bot.oversight.reports import compute_report, resolve_scope

    ctx = state.ctx
    start, stop = year_period(year, ctx.tz)
    with ctx.session() as s:
        scope = resolve_scope(session=s, account=account, department=department, organisation=organisation)
        r = compute_report(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, start=start, end=stop)
        rows = annual_rows(r, public_reply_counts(session=s, report_rows=r.rows, start=start, end=stop))
    text = annual_csv(rows)
    click.echo(text, nl=False)
    folder = out or ctx.config.path(ctx.config.data_dir) / "reports"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"annual-{year}-{_safe(scope.name)}"
        Path(f"{stem}.csv").write_text(text, encoding="utf-8-sig")
        Path(f"{stem}.docx").write_bytes(annual_docx(rows, year=year, scope_name=scope.name))
    except OSError as exc:
        fail(f"无法写入 {folder}：{exc.strerror}")
    click.echo(f"wrote {stem}.csv and {stem}.docx", err=True)


@inspection.command("rectifications")
@with_scope
@click.option("--open", "only_open", is_flag=True, help="Only those not completed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
@handle_errors
def rectifications(state: CliState, account, department, organisation, only_open: bool, as_json: bool) -> None:
    """The rectification list (整改台账): problems found, and what was done about them."""
    from sqlmodel import select

    from bot.inspection.service import list_rectifications
    from bot.models import Account
    from bot.oversight.reports import resolve_scope

    ctx = state.ctx
    with ctx.session() as s:
        scope = resolve_scope(session=s, account=account, department=department, organisation=organisation)
        rows = list_rectifications(session=s, account_ids=scope.account_ids)
        names = dict(s.exec(select(Account.id, Account.name)).all())
    rows = [r for r in rows if not (only_open and r.fixed_on)]
    if as_json:
        click.echo(json.dumps([{"id": r.id, "account": names.get(r.account_id), "indicator": r.indicator,
                                "problem": r.problem, "found_on": r.found_on.isoformat(), "measure": r.measure,
                                "fixed_on": r.fixed_on.isoformat() if r.fixed_on else None, "fixed_by": r.fixed_by}
                               for r in rows], ensure_ascii=False, indent=2))
        return
    for r in rows:
        done = f"{r.fixed_on} 已整改（{r.fixed_by}）：{r.measure}" if r.fixed_on else "整改中" + (f"：{r.measure}" if r.measure else "")
        click.echo(f"#{r.id} {r.found_on} {names.get(r.account_id)}｜{r.problem}｜{done}")


@inspection.command("rectify")
@click.argument("rectification_id", type=int)
@click.option("--measure", required=True, help="What was done (整改措施).")
@click.option("--fixed-on", type=click.DateTime(formats=["%Y-%m-%d"]), help="Day it was fixed (omit: still in progress).")
@as_option
@pass_state
@handle_errors
def rectify(state: CliState, rectification_id: int, measure: str, fixed_on: datetime | None, as_user: str) -> None:
    """Record the rectification of one problem (整改措施, completion day)."""
    from bot.inspection.service import complete_rectification
    from bot.users import get_user

    ctx = state.ctx
    with ctx.session() as s:
        user = get_user(session=s, username=as_user)
        row = complete_rectification(session=s, rectification_id=rectification_id, user=user, measure=measure,
                                     fixed_on=fixed_on.date() if fixed_on else None)
        s.commit()
        click.echo(f"#{row.id} {'已整改' if row.fixed_on else '整改中'}")
