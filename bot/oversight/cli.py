"""`govbot digest` and `govbot report`: the daily digest and the inspection report from the command line."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import click

from bot.cli import CliState, fail, handle_errors, pass_state
from bot.cli_io import os_reason, progress
from bot.clock import to_local, utcnow
from bot.errors import GovbotError, text_zh


@click.command("digest")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Local day (YYYY-MM-DD); default today. A past day is rebuilt as of its digest time.")
@click.option("--organisation", help="Only this organisation (default: every configured one).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Also write digest-<organisation>-<day>.md and .html into this folder.")
@click.option("--send", is_flag=True,
              help="Store the day's digest and deliver it to each configured channel that has not had it yet.")
@pass_state
@handle_errors
def digest(state: CliState, day: datetime | None, organisation: str | None, out: Path | None, send: bool) -> None:
    """Print the digest of unanswered citizen messages (Markdown), per organisation."""
    from bot.oversight.digest import (
        collect_digest,
        organisation_scopes,
        produce_digest,
        render_html,
        render_markdown,
    )

    ctx = state.ctx
    the_day = day.date() if day else to_local(utcnow(), ctx.tz).date()
    with ctx.session() as session:
        scopes = organisation_scopes(session=session, config=ctx.config, name=organisation)
    failures = []
    for scope in scopes:
        if send:
            outcome = produce_digest(ctx, scope=scope, day=the_day, send=True)
            if outcome is None:
                fail(text_zh("cli.digest_busy", scope=scope.name, day=the_day))
            md, html = outcome.markdown, outcome.html
            for channel, record in sorted(outcome.deliveries.items()):
                click.echo(f"{scope.name} {the_day} {channel}: {record.get('state')} after {record.get('attempts')} "
                           f"attempt(s){': ' + record['error'] if record.get('error') else ''}", err=True)
            if outcome.run_id is None:
                click.echo(f"{scope.name}: no organisation configured, so nothing is stored or sent", err=True)
            elif not scope.channels:
                click.echo(f"{scope.name}: no digest_channels configured; stored, nothing sent", err=True)
            failures += [f"{scope.name} {ch}" for ch in outcome.failed_now]
        else:
            with ctx.session() as session:
                d = collect_digest(session=session, config=ctx.config, calendar=ctx.calendar, scope=scope,
                                   day=the_day)
            md, html = render_markdown(d), render_html(d)
        click.echo(md)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            stem = out / f"digest-{_safe(scope.name)}-{the_day.isoformat()}"
            stem.with_suffix(".md").write_text(md, encoding="utf-8")
            stem.with_suffix(".html").write_text(html, encoding="utf-8")
            click.echo(f"wrote {stem}.md and {stem}.html", err=True)
    if failures:
        fail(text_zh("cli.delivery_failed", failures="、".join(failures)))


@click.command("report")
@click.option("--month", help="Calendar month YYYY-MM (local time), e.g. 2026-11.")
@click.option("--start", "--from", "first", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="First day (instead of --month); the API's `start`. --from is the old spelling.")
@click.option("--end", "--to", "end", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Day after the last day (with --start); the API's `end`. --to is the old spelling.")
@click.option("--account", help="One account, by name.")
@click.option("--department", help="The accounts a department runs.")
@click.option("--organisation", help="The accounts of an organisation's departments.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the HTML and CSV files (default: <data_dir>/reports).")
@click.option("--no-charts", is_flag=True, help="HTML without charts (faster).")
@pass_state
@handle_errors
def report(state: CliState, month: str | None, first: datetime | None, end: datetime | None, account: str | None,
           department: str | None, organisation: str | None, out: Path | None, no_charts: bool) -> None:
    """The inspection report (月度检查记录表): prints the summary, writes HTML with charts and CSV."""
    from bot.oversight.charts import report_html
    from bot.oversight.reports import (
        compute_report,
        conclusions,
        day_period,
        month_period,
        pct,
        resolve_scope,
        to_csv,
    )

    ctx = state.ctx
    if month and not (first or end):
        start, stop = month_period(month, ctx.tz)
        label = month
    elif first and end and not month:
        start, stop = day_period(first.date(), end.date(), ctx.tz)
        label = f"{first.date().isoformat()}_{end.date().isoformat()}"
    else:
        raise GovbotError("period.required")
    folder = out or ctx.config.path(ctx.config.data_dir) / "reports"
    # Three steps of a report over a long period: the figures, the CSV, the HTML with its charts.
    with progress([], length=3, label="report") as bar:
        with ctx.session() as session:
            scope = resolve_scope(session=session, account=account, department=department, organisation=organisation)
            r = compute_report(session=session, config=ctx.config, calendar=ctx.calendar, scope=scope, start=start,
                               end=stop)
        bar.update(1)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            stem = folder / (f"inspection-{label}" if scope.kind == "all" else f"inspection-{label}-{_safe(scope.name)}")
            Path(f"{stem}.csv").write_text(to_csv(r), encoding="utf-8-sig")
            bar.update(1)
            Path(f"{stem}.html").write_text(report_html(r, charts=not no_charts), encoding="utf-8")
            bar.update(1)
        except OSError as e:
            raise GovbotError("cli.file_unwritable", path=str(e.filename or folder), reason=os_reason(e)) from None
    click.echo(f"{r.scope.title} {r.period_label}（截至 {r.as_of:%Y-%m-%d %H:%M}）")
    click.echo("\t".join(("账号", "平台", "发布", "距今天数", "最长未更新", "超限", "留言", "回复率", "按时回复", "按时办结",
                          "中位(小时)", "积压")))
    for row in [*r.rows, None]:
        name, platform, f = (row.name, row.platform, row.figures) if row else ("合计", "", r.total)
        click.echo("\t".join((name, platform, str(f.posts), _num(f.days_since_last_post), _num(f.longest_silence_days),
                              "是" if f.over_limit else "否", str(f.received), pct(f.reply_rate),
                              pct(f.first_response_on_time_rate), pct(f.resolution_on_time_rate),
                              _num(f.response_hours_median), str(f.backlog))))
    for line in conclusions(r):
        click.echo(line)
    click.echo(f"wrote {stem}.html and {stem}.csv", err=True)


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "scope"
