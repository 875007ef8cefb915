"""Browser tests: a real `govbot serve` on loopback with the built-in emulator, driven by Chromium
(the Debian package at /usr/bin/chromium, through Playwright for Python; no browser is downloaded).

Fixtures: `live` (a fresh service per test: .url, .emulator_url, .ctx on the same SQLite file),
`page` (1366×768) and `phone` (390×844). One browser for the whole package keeps the suite fast.
"""

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

import httpx
import pytest
import tomli_w

from bot.config import REPO_ROOT, load_config
from bot.context import Context
from tests.conftest import EXAMPLE, deep_merge

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Live:
    url: str
    emulator_url: str
    ctx: Context
    config_path: Path


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"govbot serve exited: {log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError("govbot serve did not become healthy in 60 s")
        time.sleep(0.1)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """`govbot serve` on free loopback ports, a fresh SQLite file, the emulator without demo traffic,
    a private copy of the rules (pages may edit them) and the demo users of config.example.toml."""
    web, emu = free_port(), free_port()
    rules = tmp_path / "rules"
    shutil.copytree(REPO_ROOT / "rules", rules)
    data = deep_merge(EXAMPLE, {
        "database": {"url": f"sqlite:///{tmp_path / 'govbot.db'}"},
        "web": {"port": web},
        "emulator": {"port": emu, "state_file": str(tmp_path / "emulator.json"), "demo": False},
        "triage": {"rules_dir": str(rules)},
        "tickets": {"holidays_file": str(rules / "holidays.toml")},
    })
    config_path = tmp_path / "config.toml"
    config_path.write_bytes(tomli_w.dumps(data).encode())
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config_path), "serve"], cwd=REPO_ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{web}"
    ctx = None
    try:
        _wait_healthy(proc, url, log)
        ctx = Context.open(load_config(str(config_path)))
        yield Live(url=url, emulator_url=f"http://127.0.0.1:{emu}", ctx=ctx, config_path=config_path)
    finally:
        if ctx is not None:
            ctx.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="package")
def browser():
    """One Chromium for all browser tests. Closed when they are done: while Playwright's sync API is
    open it keeps an event loop running, and later tests that call asyncio.run() would fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser, width: int, height: int, **extra):
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN", accept_downloads=True,
                                  **extra)
    context.set_default_timeout(15_000)
    return context, context.new_page()


@pytest.fixture
def page(browser):
    context, p = _page(browser, 1366, 768)
    yield p
    context.close()


@pytest.fixture
def phone(browser):
    context, p = _page(browser, 390, 844, is_mobile=True, has_touch=True, device_scale_factor=2)
    yield p
    context.close()
