"""`govbot post ...` and `govbot publication ...`: drafts, the sign-off chain, scheduling, status.

Commands that change something act as a user named with --as (the admin's scripting interface);
the same rules apply as in the console: roles, no self-sign-off, one stage per person.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from bot.cli import CliState, as_option, describe_error, fail, handle_errors, pass_state
from bot.cli_io import echo_table, json_option
from bot.errors import CheckFailed, text_zh
from bot.models import Post
from bot.publishing import service, views
from bot.publishing.signoff import reject, sign
from bot.users import get_user

PLATFORM = click.Choice(["wechat", "weibo"])

def post_errors(fn: Callable) -> Callable:
    """Failed checks one per line; other domain errors as `error: ...` (exit 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CheckFailed as e:
            for p in e.problems:
                click.echo(f"  - {p.located_zh}", err=True)
            fail(text_zh("check.failed", count=len(e.problems)))

    return handle_errors(wrapper)


def _when(iso: str | None) -> str:
    """Local ISO time from a view -> '2026-11-21 18:00'."""
    return iso[:16].replace("T", " ") if iso else "-"


def _read_text(value: str | None, path: str | None, name: str) -> str | None:
    if value is not None and path is not None:
        fail(text_zh("cli.one_of", a=f"--{name}", b=f"--{name}-file"))
    if path is None:
        return value
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        fail(describe_error(e) if isinstance(e, OSError) else text_zh("cli.csv_encoding", path=path))


def _read_cover(path: str | None) -> service.CoverUpload | None:
    if path is None:
        return None
    try:
        return Path(path).name, Path(path).read_bytes(), None
    except OSError as e:
        fail(describe_error(e))


def _parse_at(value: str | None, now: bool) -> datetime | None:
    if value and now:
        fail(text_zh("cli.one_of", a="--at", b="--now"))
    if not value and not now:
        fail(text_zh("cli.when_required"))
    if now:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        fail(text_zh("datetime.invalid", value=value))


def _load(session, post_id: int) -> Post:
    return service.get_post(session=session, post_id=post_id)


@click.group()
def post() -> None:
    """Posts: draft, sign-off chain (三审), schedule."""


@post.command("create")
@as_option
@click.option("--title", required=True, help="Title (标题), up to the WeChat title limit.")
@click.option("--body", help="Body (HTML for WeChat articles).")
@click.option("--body-file", type=click.Path(dir_okay=False, allow_dash=True), help="Read the body from a file (- for stdin).")
@click.option("--digest", default="", help="WeChat digest (摘要), up to 128 characters.")
@click.option("--weibo-text", default="", help="Weibo text (≤140 characters as Weibo counts, with a link to the safe domain).")
@click.option("--cover", type=click.Path(exists=True, dir_okay=False), help="Cover image (JPEG, PNG, GIF or BMP).")
@click.option("--byline", default="", help="WeChat author (作者) shown under the title, up to 16 characters.")
@click.option("--no-comments", is_flag=True, help="Close WeChat comments (留言) under the article.")
@pass_state
@post_errors
def post_create(state: CliState, as_user: str, title: str, body: str | None, body_file: str | None, digest: str,
                weibo_text: str, cover: str | None, byline: str, no_comments: bool) -> None:
    """Write a new draft."""
    text = _read_text(body, body_file, "body")
    if text is None:
        fail(text_zh("cli.body_required"))
    with state.ctx.session() as session:
        p = service.create_post(session=session, author=get_user(session=session, username=as_user), title=title,
                                 body=text, digest=digest, weibo_text=weibo_text, cover=_read_cover(cover),
                                 byline=byline, open_comment=not no_comments)
    click.echo(f"created post {p.id} (draft, version {p.version}) by {as_user}")
    click.echo(f"next: govbot post submit {p.id} --as {as_user}")


@post.command("edit")
@click.argument("post_id", type=int)
@as_option
@click.option("--title", help="New title.")
@click.option("--body", help="New body (HTML for WeChat articles).")
@click.option("--body-file", type=click.Path(dir_okay=False, allow_dash=True), help="Read the new body from a file (- for stdin).")
@click.option("--digest", help="New WeChat digest (摘要).")
@click.option("--weibo-text", help="New Weibo text.")
@click.option("--cover", type=click.Path(exists=True, dir_okay=False), help="Replace the cover image.")
@click.option("--no-cover", is_flag=True, help="Remove the cover image.")
@click.option("--byline", help="New WeChat author (作者); '' removes it.")
@click.option("--comments/--no-comments", "open_comment", default=None, help="Open or close WeChat comments (留言).")
@pass_state
@post_errors
def post_edit(state: CliState, post_id: int, as_user: str, title: str | None, body: str | None, body_file: str | None,
              digest: str | None, weibo_text: str | None, cover: str | None, no_cover: bool, byline: str | None,
              open_comment: bool | None) -> None:
    """Change a post. Any change voids its sign-offs and returns it to draft."""
    text = _read_text(body, body_file, "body")
    with state.ctx.session() as session:
        p = _load(session, post_id)
        result = service.edit_post(session=session, post=p, user=get_user(session=session, username=as_user),
                                   title=title, body=text, digest=digest, weibo_text=weibo_text,
                                   cover=_read_cover(cover), remove_cover=no_cover, byline=byline,
                                   open_comment=open_comment)
    if not result:
        click.echo(f"post {post_id}: nothing changed (still version {p.version}, {p.status})")
        return
    click.echo(f"post {post_id} edited ({', '.join(result.fields)}): now version {p.version}, draft")
    if result.voided_signoffs:
        click.echo(f"  {len(result.voided_signoffs)} sign-off(s) voided: the chain starts again")
    if result.cancelled_publications:
        click.echo(f"  {len(result.cancelled_publications)} scheduled publication(s) cancelled")


@post.command("check")
@click.argument("post_id", type=int)
@click.option("--platform", "platforms", type=PLATFORM, multiple=True,
              help="Check for these platforms (default: every platform with an account; Weibo if the post has a Weibo text).")
@pass_state
@post_errors
def post_check(state: CliState, post_id: int, platforms: tuple[str, ...]) -> None:
    """Run the pre-publish checks without changing anything."""
    ctx = state.ctx
    with ctx.session() as session:
        problems = service.check_existing_post(session=session, config=ctx.config, post=_load(session, post_id),
                                               platforms=platforms or None)
    if problems:
        raise CheckFailed(problems)
    click.echo(f"post {post_id}: all checks passed")


@post.command("submit")
@click.argument("post_id", type=int)
@as_option
@click.option("--platform", "platforms", type=PLATFORM, multiple=True,
              help="Platforms to check for (default: every platform with an account; Weibo if the post has a Weibo text).")
@click.option("--account", "accounts", multiple=True,
              help="Account to publish on, signed with the text; repeat for several (default: the editor's accounts "
                   "on the platforms checked).")
@click.option("--at", "at", help="Local publication time signed with the text, e.g. '2026-11-21 18:00' "
                                 "(default: chosen after the last sign-off).")
@pass_state
@post_errors
def post_submit(state: CliState, post_id: int, as_user: str, platforms: tuple[str, ...], accounts: tuple[str, ...],
                at: str | None) -> None:
    """Run the checks and send the post into the sign-off chain (送审) with its accounts and time."""
    ctx = state.ctx
    when = _parse_at(at, False) if at else None
    with ctx.session() as session:
        p = service.submit_post(session=session, config=ctx.config, post=_load(session, post_id),
                                user=get_user(session=session, username=as_user), platforms=list(platforms) or None,
                                accounts=list(accounts) or None, at=when)
        targets = [a.name for a in service.target_accounts(session=session, post=p)]
    first = ctx.config.signoff.stages[0]
    click.echo(f"post {post_id} version {p.version} submitted for {', '.join(targets)}; checks passed. "
               f"next: {first.name} ({first.role})")


@post.command("sign")
@click.argument("post_id", type=int)
@as_option
@click.option("--version", type=int, help="The version you reviewed; refused if the post changed since.")
@pass_state
@post_errors
def post_sign(state: CliState, post_id: int, as_user: str, version: int | None) -> None:
    """Approve the next stage of the chain (签发)."""
    ctx = state.ctx
    with ctx.session() as session:
        p = _load(session, post_id)
        so = sign(session=session, config=ctx.config, post=p, user=get_user(session=session, username=as_user),
                  version=version)
    click.echo(f"post {post_id}: {so.stage_name} signed by {as_user} ({so.role}) on version {so.post_version} "
               f"[{so.content_hash[:12]}]")
    stages = ctx.config.signoff.stages
    if p.status == "approved":
        click.echo(f"post {post_id} approved: all {len(stages)} stages signed. "
                   f"next: govbot post schedule {post_id} --as EDITOR --account NAME --at 'YYYY-MM-DD HH:MM'")
    else:
        nxt = stages[so.stage_index + 1]
        click.echo(f"next: {nxt.name} ({nxt.role})")


@post.command("reject")
@click.argument("post_id", type=int)
@as_option
@click.option("--reason", required=True, help="What the editor must change.")
@pass_state
@post_errors
def post_reject(state: CliState, post_id: int, as_user: str, reason: str) -> None:
    """Send the post back to its editor with a reason (退回修改)."""
    ctx = state.ctx
    with ctx.session() as session:
        p = _load(session, post_id)
        so = reject(session=session, config=ctx.config, post=p, user=get_user(session=session, username=as_user),
                    reason=reason)
    click.echo(f"post {post_id} rejected at {so.stage_name} by {as_user}: {so.reason}")
    click.echo("the post is back with its editor; the sign-off chain starts again after the next submission")


@post.command("schedule")
@click.argument("post_id", type=int)
@as_option
@click.option("--account", "accounts", multiple=True,
              help="Account name; repeat for several (default: every account signed with the post).")
@click.option("--at", "at", help="Local time (config timezone), e.g. '2026-11-21 18:00'.")
@click.option("--now", is_flag=True, help="Publish as soon as possible.")
@pass_state
@post_errors
def post_schedule(state: CliState, post_id: int, as_user: str, accounts: tuple[str, ...], at: str | None,
                  now: bool) -> None:
    """Schedule a fully signed post on one or more accounts."""
    from bot.publishing.gap import account_gaps

    when = _parse_at(at, now)
    ctx = state.ctx
    with ctx.session() as session:
        p = _load(session, post_id)
        pubs = service.schedule_post(session=session, config=ctx.config, post=p,
                                     user=get_user(session=session, username=as_user), accounts=list(accounts), at=when)
        shown = [views.publication_view(session=session, config=ctx.config, publication=x, post=p) for x in pubs]
        session.flush()
        gaps = {g.account_name: g for g in account_gaps(session=session, config=ctx.config)}
    click.echo(f"post {post_id} scheduled on {len(shown)} account(s):")
    for v in shown:
        g = gaps.get(v["account"])
        verdict = f"  [{g.level}: {g.message}]" if g is not None and g.level != "ok" else ""
        click.echo(f"  publication {v['id']}: {v['account']} ({v['platform']}) at {_when(v['due_at'])}{verdict}")


@post.command("unschedule")
@click.argument("post_id", type=int)
@as_option
@click.option("--account", "accounts", multiple=True, help="Only on these accounts (default: all).")
@pass_state
@post_errors
def post_unschedule(state: CliState, post_id: int, as_user: str, accounts: tuple[str, ...]) -> None:
    """Cancel pending publications; the post stays signed and can be scheduled again."""
    with state.ctx.session() as session:
        p = _load(session, post_id)
        cancelled = service.unschedule_post(session=session, post=p, user=get_user(session=session, username=as_user),
                                            accounts=list(accounts) or None)
    click.echo(f"post {post_id}: {len(cancelled)} publication(s) cancelled; status {p.status}")


@post.command("list")
@click.option("--status", help="draft, in_review, rejected, approved, scheduled, published")
@click.option("--limit", default=50, show_default=True, help="At most this many posts.")
@json_option
@pass_state
@post_errors
def post_list(state: CliState, status: str | None, limit: int, as_json: bool) -> None:
    """List posts, most recently changed first."""
    ctx = state.ctx
    with ctx.session() as session:
        rows = views.list_post_views(session=session, config=ctx.config, status=status, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no posts")
        return
    echo_table([(r["id"], r["status"], r["version"], r["author"] or "-", _when(r["updated_at"]),
                 _when(r["scheduled_at"]), r["title"]) for r in rows],
               ("id", "status", "ver", "author", "updated", "scheduled", "title"), align=">>>")


def _echo_publication(v: dict, indent: str = "  ") -> None:
    click.echo(f"{indent}publication {v['id']}: {v['account']} ({v['platform']})  {v['state']}  due {_when(v['due_at'])}"
               f"  attempts {v['attempts']}" + ("  [content changed since scheduling]" if v["stale"] else ""))
    if v["state"] == "pending" and v["next_attempt_at"] != v["due_at"]:
        click.echo(f"{indent}  next attempt {_when(v['next_attempt_at'])}")
    if v["published_at"]:
        click.echo(f"{indent}  published {_when(v['published_at'])}")
    if v["last_error"]:
        click.echo(f"{indent}  last error: {v['last_error']}")
    remote = {k: v[k] for k in ("remote_id", "remote_msg_data_id", "remote_publish_id", "remote_draft_id",
                                "remote_media_id") if v[k]}
    if remote:
        click.echo(f"{indent}  remote: " + ", ".join(f"{k.removeprefix('remote_')}={x}" for k, x in remote.items()))
    if v["remote_url"]:
        click.echo(f"{indent}  url: {v['remote_url']}")


@post.command("show")
@click.argument("post_id", type=int)
@click.option("--full", is_flag=True, help="Print the whole body.")
@json_option
@pass_state
@post_errors
def post_show(state: CliState, post_id: int, full: bool, as_json: bool) -> None:
    """A post with its sign-off chain, publications and audit trail."""
    ctx = state.ctx
    with ctx.session() as session:
        v = views.post_view(session=session, config=ctx.config, post=_load(session, post_id))
    if as_json:
        click.echo(json.dumps(v, ensure_ascii=False, indent=2))
        return
    body = v["body"] if full or len(v["body"]) <= 300 else v["body"][:300] + f"… ({len(v['body'])} characters; --full)"
    click.echo(f"post {v['id']}: {v['title']}")
    click.echo(f"  status      {v['status']}   version {v['version']}   content {v['content_hash'][:12]}")
    click.echo(f"  author      {v['author']}   created {_when(v['created_at'])}   updated {_when(v['updated_at'])}")
    if v["rejection_reason"]:
        click.echo(f"  rejected    {v['rejection_reason']}")
    cover = v["cover"]
    click.echo(f"  cover       {cover['filename']} ({cover['mime']}, {cover['size']} bytes)" if cover else "  cover       none")
    click.echo(f"  digest      {v['digest'] or '-'}")
    click.echo(f"  weibo text  {v['weibo_text'] or '-'}")
    click.echo("  body        " + body.replace("\n", "\n              "))

    chain = v["chain"]
    status = "complete" if chain["complete"] else f"next: {chain['next_stage']['name']} ({chain['next_stage']['role']})"
    click.echo(f"sign-off chain for version {v['version']} ({status}):")
    for s in chain["stages"]:
        if s["signed_by"]:
            by = s["signed_by"]
            click.echo(f"  {s['index'] + 1}. {s['name']} {s['role']:<9} {by['username']} ({by['display_name']})  {_when(s['signed_at'])}")
        else:
            click.echo(f"  {s['index'] + 1}. {s['name']} {s['role']:<9} -")
    if v["signoffs"]:
        click.echo("sign-off history:")
        for so in v["signoffs"]:
            void = f"  [voided {_when(so['voided_at'])}]" if so["voided_at"] else ""
            reason = f"  “{so['reason']}”" if so["reason"] else ""
            click.echo(f"  {_when(so['at'])}  {so['stage']} {so['decision']:<7} {so['username']} ({so['role']})  "
                       f"v{so['version']} [{so['content_hash'][:12]}]{reason}{void}")
    click.echo("publications:" if v["publications"] else "publications: none")
    for pub in v["publications"]:
        _echo_publication(pub)
    click.echo("audit trail:")
    for e in v["history"]:
        click.echo(f"  {_when(e['at'])}  {e['actor']:<12} {e['action']:<22} v{e['version']}")


@click.group()
def publication() -> None:
    """Publications: one post on one account, as the scheduler publishes it."""


@publication.command("list")
@click.option("--state", "state_filter", help="pending, publishing, published, failed, missed, cancelled")
@click.option("--post", "post_id", type=int, help="Only this post's publications.")
@click.option("--limit", default=100, show_default=True, help="At most this many publications.")
@json_option
@pass_state
@post_errors
def publication_list(state: CliState, state_filter: str | None, post_id: int | None, limit: int,
                     as_json: bool) -> None:
    """List publications, latest due first."""
    ctx = state.ctx
    with ctx.session() as session:
        rows = [views.publication_view(session=session, config=ctx.config, publication=p)
                for p in service.list_publications(session=session, state=state_filter, post_id=post_id, limit=limit)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no publications")
        return
    echo_table([(v["id"], v["post_id"], v["state"], _when(v["due_at"]), f"{v['account']} ({v['platform']})",
                 v["attempts"], v["last_error"] or "") for v in rows],
               ("id", "post", "state", "due", "account", "attempts", "last error"), align=">><<<>")


@publication.command("show")
@click.argument("publication_id", type=int)
@json_option
@pass_state
@post_errors
def publication_show(state: CliState, publication_id: int, as_json: bool) -> None:
    """One publication's status, with the platform's error message if it failed."""
    ctx = state.ctx
    with ctx.session() as session:
        v = views.publication_view(session=session, config=ctx.config,
                                     publication=service.get_publication(session=session, publication_id=publication_id))
    if as_json:
        click.echo(json.dumps(v, ensure_ascii=False, indent=2))
        return
    click.echo(f"post {v['post_id']}: {v['post_title']}")
    _echo_publication(v, indent="")
