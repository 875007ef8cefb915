"""Deployment: compose.yaml and deploy/config.toml are valid, and the compose topology runs as processes
(PostgreSQL, `govbot serve --no-worker`, two `govbot worker` on one database)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session, select

from bot.config import REPO_ROOT, load_config
from bot.models import Publication
from tests.services import running, wait_healthy
from tests.test_scheduler_support import (
    Worker,
    accounts,
    copies,
    emulator_state,
    schedule,
    signed_post,
    wait_for,
    worker_config,
)
from tests.test_service import free_port

# What deploy/env.example asks for; compose.yaml and deploy/config.toml read them.
SECRETS = {"POSTGRES_PASSWORD": "pg-pass-7Hq", "GOVBOT_SECRET_KEY": "k3y-0123456789abcdef0123456789abcdef",
           "GOVBOT_PUBLIC_URL": "https://govbot.example.gov.cn", "GOVBOT_ADMIN_PASSWORD": "adm1n-pass",
           "WECHAT_APPID": "wx1234567890abcdef", "WECHAT_SECRET": "0123456789abcdef0123456789abcdef",
           "WECHAT_TOKEN": "tok3nValue", "WECHAT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}


def compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) or `docker-compose`; both validate a file without a daemon."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_file_validates():
    compose = compose_command()
    if compose is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed: compose.yaml not validated here "
                    "(the same topology is tested with processes below)")
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": "/tmp", **SECRETS}
    ok = subprocess.run([*compose, "-f", str(REPO_ROOT / "compose.yaml"), "config"], env=env, capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    for expected in ("db:", "web:", "worker-1:", "worker-2:", "- --no-worker", "- worker", "condition: service_healthy",
                     "/etc/govbot/rules:ro", "govbot-data:/var/lib/govbot/data",
                     f"postgresql+psycopg://govbot:{SECRETS['POSTGRES_PASSWORD']}@db:5432/govbot"):
        assert expected in ok.stdout, expected
    # Secrets only from the environment: a missing one stops `compose` naming it.
    missing = subprocess.run([*compose, "-f", str(REPO_ROOT / "compose.yaml"), "config"],
                             env={**env, "WECHAT_SECRET": ""}, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "WECHAT_SECRET" in missing.stderr


def test_deploy_config_reads_every_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GOVBOT_DATABASE_URL", "postgresql+psycopg://govbot:pw@db:5432/govbot")
    monkeypatch.setenv("GOVBOT_WEB_HOST", "0.0.0.0")
    config = load_config(REPO_ROOT / "deploy" / "config.toml")
    assert config.uses_real_platforms and config.database.auto_migrate
    assert config.database_url.startswith("postgresql+psycopg://") and config.web.host == "0.0.0.0"
    assert config.accounts[0].secret == SECRETS["WECHAT_SECRET"] and config.web.secret_key == SECRETS["GOVBOT_SECRET_KEY"]
    assert config.rules_dir == Path("/etc/govbot/rules") and config.web.trust_proxy_headers
    raw = (REPO_ROOT / "deploy" / "config.toml").read_text(encoding="utf-8")
    assert not any(value in raw for value in SECRETS.values())


def test_dockerfile_copies_what_exists_and_runs_as_a_user():
    lines = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    for line in lines:
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (REPO_ROOT / source).exists(), line
    assert any(line.startswith("USER govbot") for line in lines)
    assert any("--require-hashes -r /tmp/requirements.lock" in line for line in lines)
    assert any("/healthz" in line for line in lines)


@pytest.fixture
def empty_pg_database(pg_server: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (govbot migrates it on start); dropped afterwards."""
    name = f"govbot_topology_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_server.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
def test_web_and_two_workers_share_one_postgresql(tmp_path: Path, empty_pg_database: str):
    web, emu = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emu}"
    config_path, config = worker_config(tmp_path, emulator_url, {
        "database": {"url": empty_pg_database}, "web": {"port": web}, "emulator": {"port": emu},
        "scheduler": {"tick_seconds": 0.2}, "polling": {"interval_s": 600.0}})
    govbot = str(Path(sys.executable).with_name("govbot"))
    health = f"http://127.0.0.1:{web}/healthz"
    # The web process (with the emulator of the embedded default) migrates the empty database on start.
    with running([govbot, "--config", str(config_path), "serve", "--no-worker"], cwd=tmp_path,
                 log=tmp_path / "web.log") as web_proc:
        wait_healthy(health, web_proc, tmp_path / "web.log")
        workers = [Worker(config_path, tmp_path / f"worker{i}.log") for i in (1, 2)]
        try:
            for worker in workers:
                worker.wait_running()
            engine = create_engine(empty_pg_database)
            title = "关于冬季供暖保障工作的通告"
            with Session(engine) as s:
                accs = accounts(s)
                post = signed_post(s, config, title=title)
                ids = [schedule(s, post, accs["示例县发布"]).id, schedule(s, post, accs["示例县发布微博"]).id]
                weibo_text = post.weibo_text
                s.commit()

            def published() -> bool:
                with Session(engine) as s:
                    states = s.exec(select(Publication.state).where(Publication.id.in_(ids))).all()
                return states == ["published", "published"]

            wait_for(published, timeout=60, interval=0.2, what="the post on both accounts")
            engine.dispose()
            state = emulator_state(emulator_url)
            assert copies(state, title=title) == 1
            assert copies(state, weibo_text=weibo_text) == 1
            assert httpx.get(health, timeout=5).status_code == 200
        finally:
            codes = [w.stop() for w in workers]
        assert codes == [0, 0], [w.log()[-2000:] for w in workers]
