"""Shared fixtures: real SQLite files in temp dirs, the real emulator on loopback."""

from __future__ import annotations

import copy
import shutil
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import db
from bot.config import REPO_ROOT, Config, parse_config
from bot.context import Context
from bot.seed import sync_from_config

EXAMPLE = tomllib.loads((REPO_ROOT / "config.example.toml").read_text(encoding="utf-8"))


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database file migrated to head; each test copies it (migrating per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "govbot.db"
    db.upgrade(f"sqlite:///{path}")
    # Seeding once here hashes the example users' passwords once, not in every test.
    config = parse_config(deep_merge(EXAMPLE, {"database": {"url": f"sqlite:///{path}"}}), file=str(path.parent / "c.toml"))
    engine = db.make_engine(config.database_url)
    with db.session_scope(engine) as session:
        sync_from_config(session=session, config=config)
    engine.dispose()
    return path


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """The example config with the database in tmp_path, merged with `overrides` (a TOML-shaped dict)."""

    def make(overrides: dict[str, Any] | None = None, *, emulator_url: str | None = None) -> Config:
        data = deep_merge(EXAMPLE, {"database": {"url": f"sqlite:///{tmp_path / 'govbot.db'}"},
                                    "emulator": {"demo": False, "state_file": str(tmp_path / "emulator.json")},
                                    "triage": {"rules_dir": str(REPO_ROOT / "rules")},
                                    "tickets": {"holidays_file": str(REPO_ROOT / "rules" / "holidays.toml")}})
        if emulator_url:
            data = deep_merge(data, {"platforms": {"wechat": {"api_base": f"{emulator_url}/wechat/cgi-bin/"},
                                                   "weibo": {"api_base": f"{emulator_url}/weibo/2/"}}})
        return parse_config(deep_merge(data, overrides or {}), file=str(tmp_path / "config.toml"))

    return make


@pytest.fixture
def open_ctx(tmp_path: Path, migrated_db: Path) -> Iterator[Callable[[Config], Context]]:
    """Open a Context on a fresh copy of the migrated database, seeded from the config."""
    opened: list[Context] = []

    def open_(config: Config) -> Context:
        target = Path(config.database_url.removeprefix("sqlite:///"))
        if not target.exists():
            shutil.copy(migrated_db, target)
        ctx = Context.open(config)
        with ctx.session() as session:
            sync_from_config(session=session, config=config)
        opened.append(ctx)
        return ctx

    yield open_
    for ctx in opened:
        ctx.close()


@pytest.fixture
def ctx(make_config: Callable[..., Config], open_ctx: Callable[[Config], Context]) -> Context:
    """A context on a fresh SQLite file with the example's departments, accounts and users."""
    return open_ctx(make_config())


@pytest.fixture
def emulator() -> Iterator[str]:
    """The platform emulator on a free loopback port; yields its base URL."""
    from bot.emulator.testing import run_emulator

    with run_emulator() as url:
        yield url


@pytest.fixture
def ectx(make_config: Callable[..., Config], open_ctx: Callable[[Config], Context], emulator: str) -> Context:
    """A context whose connectors talk to a live emulator, with the example accounts registered there."""
    from bot.service import register_emulator_accounts

    ctx = open_ctx(make_config(emulator_url=emulator))
    register_emulator_accounts(ctx, emulator_url=emulator)
    return ctx
