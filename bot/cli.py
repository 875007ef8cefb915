"""`govbot`: the command line for admins and scripts.

Every failure ends in ONE line `error: …` (Chinese from the error catalogue, bot/errors.py) and a
non-zero exit: domain errors, bad files, an unreachable database, bugs (`-v` adds the traceback).
Command groups that belong to one part of the product live beside it (bot/*/cli.py); they are
registered in `LAZY_GROUPS` and imported only when used, so light commands start fast.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from loguru import logger

from bot import logs
from bot.errors import GovbotError, text_zh

if TYPE_CHECKING:
    from bot.config import Config
    from bot.context import Context


class CliState:
    """Lazily built config and context, so `govbot --help` never touches the database."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._config: Config | None = None
        self._ctx: Context | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from bot.config import load_config

            self._config = load_config(self.config_path)
        return self._config

    @property
    def ctx(self) -> Context:
        if self._ctx is None:
            from bot.context import Context

            self._ctx = Context.open(self.config)
        return self._ctx


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def describe_error(exc: BaseException, state: CliState | None = None) -> str:
    """One line in Chinese for any failure; never a secret, never a Python message of an unexpected error."""
    if isinstance(exc, GovbotError):
        return exc.message_zh
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        url = "（未知）"
        if state is not None and state._config is not None:
            from bot.db import _redact

            url = _redact(state._config.database_url)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        return text_zh("cli.database_unreachable", url=url, reason=reason)
    if isinstance(exc, UnicodeDecodeError):
        return text_zh("cli.not_text", encoding=exc.encoding, position=exc.start)
    if isinstance(exc, OSError):
        from bot.cli_io import os_reason

        return text_zh("cli.os_error", path=exc.filename or "", reason=os_reason(exc))
    return text_zh("cli.internal", kind=type(exc).__name__)


def handle_errors(fn: Callable) -> Callable:
    """Domain errors as `error: …` and exit code 1 (the root group catches everything else the same way)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GovbotError as e:
            fail(e.message_zh)

    return wrapper


# Command groups by name: (module:attribute, one-line help for `govbot --help`). A test checks the
# help here is the group's own, so it cannot drift.
LAZY_GROUPS: dict[str, tuple[str, str]] = {
    "user": ("bot.users_cli:user", "Users and roles (editor, reviewer, approver, responder, admin)."),
    "accounts": ("bot.users_cli:accounts", "Official accounts (from the config's [[accounts]])."),
    "rules": ("bot.triage.cli:rules", "Triage rules: classify messages by intent and topic."),
    "tickets": ("bot.tickets.cli:tickets", "Citizen tickets (工单): list, show, answer, reassign, close, notes, retry failed replies."),
    "templates": ("bot.tickets.cli:templates", "Reply templates (答复模板) per department."),
    "post": ("bot.publishing.cli:post", "Posts: draft, sign-off chain (三审), schedule."),
    "publication": ("bot.publishing.cli:publication", "Publications: one post on one account, as the scheduler publishes it."),
    "digest": ("bot.oversight.cli:digest", "Print the digest of unanswered citizen messages (Markdown), per organisation."),
    "report": ("bot.oversight.cli:report", "The inspection report (月度检查记录表): prints the summary, writes HTML with charts and CSV."),
    "inspection": ("bot.inspection.cli:inspection", "Inspection readiness (迎检): the national checklist per account, 自查报告, 年度报表, 整改台账."),
}


class GovbotGroup(click.Group):
    """The root: groups imported on first use, and every failure as one `error:` line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_GROUPS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_GROUPS and name not in self.commands:
            module, attr = LAZY_GROUPS[name][0].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                cmd = self.commands[name]
                if not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(formatter.width - 6 - len(name))))
            else:
                rows.append((name, LAZY_GROUPS[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise
        except Exception as e:  # noqa: BLE001 - the one place every failure becomes `error: …`
            logger.opt(exception=e).debug("command failed")
            state = ctx.obj if isinstance(ctx.obj, CliState) else None
            raise click.ClickException(describe_error(e, state)) from e

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as e:
            if e.ctx is not None:
                click.echo(e.ctx.get_usage(), err=True)
            fail(e.format_message(), e.exit_code)
        except click.ClickException as e:
            fail(e.format_message(), e.exit_code)
        except (click.Abort, KeyboardInterrupt):
            fail(text_zh("cli.interrupted"), 130)
        except BrokenPipeError:
            # `govbot tickets list | head`: the reader left; nothing more to say.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except Exception as e:  # noqa: BLE001 - failures outside a command (parsing, completion)
            fail(describe_error(e))
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


pass_state = click.make_pass_decorator(CliState)
# The acting user of a command that changes something: recorded in the audit trail.
as_option = click.option("--as", "as_user", required=True, metavar="USERNAME", help="Act as this user.")


@click.group(cls=GovbotGroup)
@click.option("--config", "config_path", envvar="GOVBOT_CONFIG", type=click.Path(dir_okay=False),
              help="Config file (default: $GOVBOT_CONFIG, ./config.toml, or the embedded default).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages (and the traceback of a failure).")
@click.version_option(package_name="govbot", prog_name="govbot", message="%(prog)s %(version)s",
                      help="Show the version and exit.")
@click.pass_context
def main(click_ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """govbot: publishing and moderation for government WeChat and Weibo accounts."""
    logs.setup("DEBUG" if verbose else "WARNING")
    # An embedding program (or a test) may hand in its own state, as click's `obj=` allows.
    if not isinstance(click_ctx.obj, CliState):
        click_ctx.obj = CliState(config_path)


@main.command()
@pass_state
@handle_errors
def init(state: CliState) -> None:
    """Create or upgrade the database and bring departments, accounts and users in from the config."""
    from bot.seed import sync_from_config
    from bot.web.security import ensure_secret_key, secret_key_path

    ctx = state.ctx
    with ctx.session() as session:
        sync_from_config(session=session, config=ctx.config)
    cfg = ctx.config
    ensure_secret_key(cfg)
    click.echo(f"database ready: {logs.safe_url(cfg.database_url)}")
    if not cfg.web.secret_key:
        click.echo(f"web secret key: {secret_key_path(cfg)}")
    click.echo(f"{len(cfg.organisations)} organisations, {len(cfg.departments)} departments, "
               f"{len(cfg.accounts)} accounts, {len(cfg.users)} users from {cfg.source}")


@main.group(name="db")
def db_group() -> None:
    """Database migrations and copies."""


@db_group.command("upgrade")
@pass_state
@handle_errors
def db_upgrade(state: CliState) -> None:
    """Apply all migrations (alembic upgrade head)."""
    from bot import db

    db.upgrade(state.config.database_url)
    click.echo(f"database at {db.head_revision(state.config.database_url)}")


@db_group.command("current")
@pass_state
@handle_errors
def db_current(state: CliState) -> None:
    """Show the database's migration revision and the code's."""
    from bot import db

    engine = db.make_engine(state.config.database_url)
    click.echo(f"database: {db.current_revision(engine) or 'empty'}  code: {db.head_revision(state.config.database_url)}")


@db_group.command("copy")
@click.option("--to", "target_url", required=True, metavar="URL",
              help="Empty target database, e.g. postgresql+psycopg://govbot:PASS@db/govbot (migrated first).")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1), help="Rows per insert.")
@pass_state
@handle_errors
def db_copy(state: CliState, target_url: str, batch_size: int) -> None:
    """Copy every table of the configured database into an empty one (e.g. SQLite to PostgreSQL).

    Stop the service first, so that nothing is written during the copy."""
    from bot import db
    from bot.dbcopy import copy_rows, plan_copy

    plan = plan_copy(state.config.database_url, target_url)
    with click.progressbar(length=plan.total, label="copying rows", file=sys.stderr) as bar:
        copy_rows(plan, batch_size=batch_size, progress=bar.update)
    click.echo(f"copied {plan.total} rows in {len(plan.rows)} tables to {db._redact(target_url)}")


@main.command("check-config")
@pass_state
def check_config(state: CliState) -> None:
    """Check the config file, rules and holiday files, data directory, database and accounts; list every problem."""
    from bot.config_check import check_installation, summary

    config, findings = check_installation(state.config_path)
    for f in findings:
        click.echo(f"  {'问题' if f.level == 'error' else '提醒'}：{f.message}", err=True)
    errors = sum(f.level == "error" for f in findings)
    if errors:
        fail(text_zh("setup.problems", errors=errors, warnings=len(findings) - errors))
    click.echo(summary(config))


@main.command()
@click.option("--no-worker", is_flag=True, help="Serve web only; run workers separately (`govbot worker`).")
@pass_state
@handle_errors
def serve(state: CliState, no_worker: bool) -> None:
    """Run the service: web console, API, WeChat callback, worker, and (embedded default) the emulator."""
    from bot.service import serve as run

    logs.setup("INFO")
    run(state.ctx, worker=not no_worker)


@main.command()
@pass_state
@handle_errors
def worker(state: CliState) -> None:
    """Run a background worker only (several may share one database)."""
    from bot.service import run_worker

    logs.setup("INFO")
    run_worker(state.ctx)
