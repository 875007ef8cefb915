"""`govbot`: the command line for admins and scripts.

Every command exits non-zero with a one-line reason on failure. Command groups that belong to one
part of the product live beside it (bot/*/cli.py) and are registered at the bottom of this file.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click
from loguru import logger

from bot.config import Config, load_config
from bot.context import Context
from bot.errors import GovbotError


class CliState:
    """Lazily built config and context, so `govbot --help` never touches the database."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._config: Config | None = None
        self._ctx: Context | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def ctx(self) -> Context:
        if self._ctx is None:
            self._ctx = Context.open(self.config)
        return self._ctx


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable) -> Callable:
    """Turn domain errors into `error: ...` and exit code 1 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GovbotError as e:
            fail(e.message_zh)

    return wrapper


pass_state = click.make_pass_decorator(CliState)
# The acting user of a command that changes something: recorded in the audit trail.
as_option = click.option("--as", "as_user", required=True, metavar="USERNAME", help="Act as this user.")


@click.group()
@click.option("--config", "config_path", envvar="GOVBOT_CONFIG", type=click.Path(dir_okay=False),
              help="Config file (default: $GOVBOT_CONFIG, ./config.toml, or the embedded default).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(click_ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """govbot: publishing and moderation for government WeChat and Weibo accounts."""
    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if verbose else "WARNING")
    # An embedding program (or a test) may hand in its own state, as click's `obj=` allows.
    if not isinstance(click_ctx.obj, CliState):
        click_ctx.obj = CliState(config_path)


@main.command()
@pass_state
@handle_errors
def init(state: CliState) -> None:
    """Create or upgrade the database and bring departments, accounts and users in from the config."""
    from bot.seed import sync_from_config

    ctx = state.ctx
    with ctx.session() as session:
        sync_from_config(session=session, config=ctx.config)
    cfg = ctx.config
    click.echo(f"database ready: {cfg.database_url}")
    click.echo(f"{len(cfg.organisations)} organisations, {len(cfg.departments)} departments, "
               f"{len(cfg.accounts)} accounts, {len(cfg.users)} users from {cfg.source}")


@main.group(name="db")
def db_group() -> None:
    """Database migrations."""


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


@main.command("check-config")
@pass_state
@handle_errors
def check_config(state: CliState) -> None:
    """Validate the config file and say where it came from."""
    cfg = state.config
    mode = "real platforms" if cfg.uses_real_platforms else f"emulator at {cfg.emulator_url}"
    click.echo(f"config OK: {cfg.source} ({mode}, database {cfg.database_url})")


def _register_groups() -> None:
    from bot.oversight.cli import digest, report
    from bot.publishing.cli import post, publication
    from bot.tickets.cli import templates, tickets
    from bot.triage.cli import rules
    from bot.users_cli import accounts, user

    main.add_command(user)
    main.add_command(accounts)
    main.add_command(rules)
    main.add_command(tickets)
    main.add_command(templates)
    main.add_command(post)
    main.add_command(publication)
    main.add_command(digest)
    main.add_command(report)


_register_groups()


@main.command()
@click.option("--no-worker", is_flag=True, help="Serve web only; run workers separately (`govbot worker`).")
@pass_state
@handle_errors
def serve(state: CliState, no_worker: bool) -> None:
    """Run the service: web console, API, WeChat callback, worker, and (embedded default) the emulator."""
    from bot.service import serve as run

    logger.remove()
    logger.add(sys.stderr, level="INFO")
    run(state.ctx, worker=not no_worker)


@main.command()
@pass_state
@handle_errors
def worker(state: CliState) -> None:
    """Run a background worker only (several may share one database)."""
    from bot.service import run_worker

    logger.remove()
    logger.add(sys.stderr, level="INFO")
    run_worker(state.ctx)
