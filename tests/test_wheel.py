"""The built wheel works outside the checkout: installed into a fresh venv with the locked dependencies,
`govbot init`, `govbot rules test` and `govbot serve` run in an empty directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bot.config import REPO_ROOT
from tests.services import running, wait_healthy
from tests.test_service import free_port

pytestmark = pytest.mark.slow  # builds a wheel and a venv


def build_wheel(out: Path) -> Path:
    """The wheel, built by the project's backend (hatchling) as `pip wheel .` or `python -m build` would."""
    code = "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))"
    name = subprocess.run([sys.executable, "-c", code, str(out)], cwd=REPO_ROOT, check=True,
                          capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]
    return out / name


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no access to the checkout or the test venv) with the lock file and the wheel; its bin/."""
    venv = tmp_path_factory.mktemp("wheel") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # The test venv's pip installs into the new venv: no ensurepip, the warm cache, hashes checked.
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
           "--disable-pip-version-check"]
    subprocess.run([*pip, "--require-hashes", "-r", str(REPO_ROOT / "requirements.lock")], check=True, timeout=600)
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True, timeout=120)
    # Every dependency the wheel declares is in the lock (a new one not yet locked fails here: `make lock`).
    check = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "check"],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout
    return venv / "bin"


def env() -> dict[str, str]:
    """The environment without anything that would point the installed copy at the checkout or a config."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GOVBOT", "VIRTUAL_ENV"))}


def test_wheel_carries_rules_migrations_templates_and_static(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    for rule in (REPO_ROOT / "rules").iterdir():
        assert f"bot/_data/rules/{rule.name}" in names
    for migration in (REPO_ROOT / "migrations" / "versions").glob("*.py"):
        assert f"bot/_data/migrations/versions/{migration.name}" in names
    assert {"bot/_data/migrations/env.py", "bot/_data/migrations/alembic.ini", "bot/_data/migrations/script.py.mako",
            "bot/web/templates/base.html", "bot/oversight/templates/report.html"} <= names
    assert any(n.startswith("bot/web/static/") for n in names)


def test_init_rules_and_serve_in_an_empty_directory(installed: Path, tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()

    def govbot(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(installed / "govbot"), *args], cwd=site, env=env(), capture_output=True,
                              text=True, timeout=120)

    where = subprocess.run([str(installed / "python"), "-c", "import bot; print(bot.__file__)"], cwd=site,
                           env=env(), capture_output=True, text=True, check=True).stdout
    assert not where.startswith(str(REPO_ROOT)), where  # the installed copy, not the checkout

    init = govbot("init")
    assert init.returncode == 0, init.stderr
    assert (site / "data" / "govbot.db").is_file()

    rules = govbot("rules", "test", "路灯坏了")
    assert rules.returncode == 0, rules.stderr
    assert "城乡建设" in rules.stdout

    web, emulator = free_port(), free_port()
    # Only the ports differ from the embedded default (others may be using 8600/8601 on this machine).
    (site / "config.toml").write_text(f"[web]\nport = {web}\n\n[emulator]\nport = {emulator}\n", encoding="utf-8")
    with running([str(installed / "govbot"), "serve"], cwd=site, env=env(), log=tmp_path / "serve.log") as proc:
        wait_healthy(f"http://127.0.0.1:{web}/healthz", proc, tmp_path / "serve.log")
