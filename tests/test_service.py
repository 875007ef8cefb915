"""Start-up: migrations applied or refused, and `govbot serve` on the embedded default end to end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import tomli_w

from bot import db
from bot.config import REPO_ROOT
from tests.conftest import EXAMPLE, deep_merge


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_outdated_database_is_refused_without_auto_migrate(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = db.make_engine(url)
    with pytest.raises(db.DatabaseNotReady) as e:
        db.ensure_schema(engine, url, auto_migrate=False)
    assert "govbot db upgrade" in str(e.value) and "none (empty)" in str(e.value)
    db.ensure_schema(engine, url, auto_migrate=True)
    assert db.current_revision(engine) == db.head_revision(url)
    db.ensure_schema(engine, url, auto_migrate=False)  # up to date: accepted
    engine.dispose()


def test_cli_reports_a_wrong_config_with_file_key_and_reason(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[web]\nport = "eighty"\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "bot", "--config", str(bad), "check-config"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"  问题：配置文件 {bad} 中“web.port”有误：")
    assert proc.stderr.splitlines()[-1] == "error: 发现 1 个问题、0 个提醒（见上）"


@pytest.mark.slow  # the real service in its own process
def test_serve_runs_end_to_end_on_the_emulator(tmp_path: Path):
    web, emu = free_port(), free_port()
    data = deep_merge(EXAMPLE, {
        "database": {"url": f"sqlite:///{tmp_path / 'govbot.db'}"},
        "web": {"port": web},
        "emulator": {"port": emu, "state_file": str(tmp_path / "emulator.json"), "demo": False},
        "triage": {"rules_dir": str(REPO_ROOT / "rules")},
        "tickets": {"holidays_file": str(REPO_ROOT / "rules" / "holidays.toml")},
    })
    config = tmp_path / "config.toml"
    config.write_bytes(tomli_w.dumps(data).encode())
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "serve"], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{web}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "service did not become healthy"
            time.sleep(0.2)
        # The emulator runs beside it with our accounts registered, and a pushed message reaches the callback.
        pushed = httpx.post(f"http://127.0.0.1:{emu}/_emulator/wechat/push",
                            json={"appid": "wxdemo0000000001", "msg_type": "text", "content": "社保卡怎么补办？"},
                            timeout=30).json()
        assert pushed["ok"], pushed
        assert "社保卡" in pushed["reply_xml"]  # answered at once from rules/faq.toml
        login = httpx.get(f"http://127.0.0.1:{web}/login", timeout=5)
        assert login.status_code == 200 and "登录" in login.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    for line in ("govbot console", "/healthz", "/_emulator/state"):
        assert line in out
    assert os.path.exists(tmp_path / "govbot.db")
