"""Shared fixtures: real SQLite files in temp dirs, the real emulator on loopback."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def _start_postgres(tmp: Path) -> tuple[str, Callable[[], None]]:
    """A throwaway PostgreSQL cluster on loopback (the same steps as .ci/postgres.sh)."""
    import os
    import socket
    import subprocess

    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert bins, "PostgreSQL is not installed (apt-get install postgresql), and GOVBOT_TEST_PG_URL is not set"
    bindir = bins[-1].parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run_as: list[str] = []
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(tmp, "postgres")
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(tmp / "data"), "-U", "govbot", "--auth=trust",
                    "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(tmp / "data"), "-l", str(tmp / "log"), "-w", "-o",
                    f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(tmp / "data"), "-m", "fast", "stop"],
                       capture_output=True)

    return f"postgresql+psycopg://govbot@127.0.0.1:{port}/postgres", stop


@contextmanager
def postgres_server(given: str | None = None) -> Iterator[str]:
    """The server at `given`, or a throwaway one started here, stopped and removed afterwards (tests and benches)."""
    if given:
        yield given
        return
    tmp = Path(tempfile.mkdtemp(prefix="govbot-pg-"))
    url, stop = _start_postgres(tmp)
    try:
        yield url
    finally:
        stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server: $GOVBOT_TEST_PG_URL (CI starts one) or a throwaway one started here."""
    with postgres_server(os.environ.get("GOVBOT_TEST_PG_URL")) as url:
        yield url


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """A fresh PostgreSQL database migrated to head; dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"govbot_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_server.rsplit("/", 1)[0] + "/" + name
    try:
        db.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every PostgreSQL test counts as slow (it needs a server): `make test` leaves them out on the extra Pythons."""
    for item in items:
        params = getattr(item, "callspec", None)
        if "pg_server" in item.fixturenames or (params and "postgresql" in params.params.values()):
            item.add_marker(pytest.mark.slow)
