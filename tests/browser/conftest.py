"""Browser tests: a real `govbot serve` with the built-in emulator, driven by Playwright in Debian's
Chromium (never a downloaded browser). One browser for the package; each test gets a fresh service and
fresh pages: `page` a laptop (1366×768), `phone` a phone (390×844)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from bot.config import REPO_ROOT, load_config
from bot.context import Context
from tests.conftest import EXAMPLE, deep_merge

CHROMIUM = "/usr/bin/chromium"
# --lang: the browser's own widgets (date pickers) in Chinese, as on the offices' computers.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--lang=zh-CN"]
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


@dataclass
class Live:
    url: str
    emulator_url: str
    ctx: Context
    config_path: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live(tmp_path: Path, migrated_db: Path) -> Iterator[Live]:
    """`govbot serve` on free loopback ports: a fresh SQLite file (the migrated, seeded template: demo
    users of config.example.toml, password demo) and the emulator beside it."""
    web, emu = free_port(), free_port()
    data = deep_merge(EXAMPLE, {
        "database": {"url": f"sqlite:///{tmp_path / 'govbot.db'}"},
        "web": {"port": web},
        "emulator": {"port": emu, "state_file": str(tmp_path / "emulator.json"), "demo": False},
        "triage": {"rules_dir": str(REPO_ROOT / "rules")},
        "tickets": {"holidays_file": str(REPO_ROOT / "rules" / "holidays.toml")},
        "scheduler": {"tick_seconds": 0.2, "backoff_base_s": 0.2, "backoff_max_s": 1.0, "max_attempts": 2},
    })
    config_path = tmp_path / "config.toml"
    config_path.write_bytes(tomli_w.dumps(data).encode())
    shutil.copy(migrated_db, tmp_path / "govbot.db")
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config_path), "serve"], cwd=REPO_ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{web}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("govbot serve did not start:\n" + (tmp_path / "serve.log").read_text())
        time.sleep(0.1)
    ctx = Context.open(load_config(config_path))
    try:
        yield Live(url=url, emulator_url=f"http://127.0.0.1:{emu}", ctx=ctx, config_path=config_path)
    finally:
        ctx.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# One browser for all the browser tests, closed after them: Playwright's sync API keeps an event loop
# running in the main thread while it is open, which the other tests' asyncio.run() would trip over.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: source .ci/browser.sh (apt-get install chromium fonts-noto-cjk)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser: Any, viewport: dict, **extra: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai", **extra)
    context.set_default_timeout(15000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A laptop browser page (1366×768)."""
    yield from _page(browser, LAPTOP)


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A phone browser page (390×844, touch)."""
    yield from _page(browser, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
