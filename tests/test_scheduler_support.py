"""Rows for the scheduler tests: fully signed posts and due publications, created directly.

Also used by the worker processes' tests (SIGKILL, PostgreSQL): helpers take a plain Session.
"""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import tomli_w
from sqlmodel import Session, select

from bot.clock import utcnow
from bot.config import REPO_ROOT, Config, load_config
from bot.models import Account, Media, Post, Publication, SignOff, User
from bot.publishing.scheduler import ACTIVE


def png(width: int = 2, height: int = 2) -> bytes:
    """A small valid PNG (grey square)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def accounts(session: Session) -> dict[str, Account]:
    return {a.name: a for a in session.exec(select(Account).order_by(Account.id))}


def signed_post(session: Session, config: Config, *, title: str, body: str | None = None,
                weibo_text: str | None = None, status: str = "scheduled") -> Post:
    """A post with a cover and every configured sign-off stage approved on its current version."""
    users = {u.username: u for u in session.exec(select(User))}
    data = png()
    cover = Media(filename="cover.png", mime="image/png", sha256=hashlib.sha256(data).hexdigest(), data=data)
    session.add(cover)
    session.flush()
    body = body if body is not None else f"<p>{title}：正文内容。</p>"
    weibo_text = weibo_text if weibo_text is not None else f"{title} https://{config.platforms.weibo.safe_domain}/n/1"
    digest = hashlib.sha256(f"{title}|{body}|{weibo_text}".encode()).hexdigest()
    # Signed for every account: tests schedule on any of them.
    post = Post(title=title, body=body, weibo_text=weibo_text, cover_media_id=cover.id,
                author_id=users["xuanchuan"].id, status=status, content_hash=digest,
                target_account_ids=sorted(a.id for a in accounts(session).values()))
    session.add(post)
    session.flush()
    # Anyone holding the stage's role other than the author signs it.
    used = {users["xuanchuan"].id}
    for i, stage in enumerate(config.signoff.stages):
        signer = next(u for u in users.values() if stage.role in u.role_set() and u.id not in used)
        used.add(signer.id)
        session.add(SignOff(post_id=post.id, stage_index=i, stage_name=stage.name, user_id=signer.id,
                            role=stage.role, decision="approve", post_version=post.version, content_hash=digest))
    return post


def schedule(session: Session, post: Post, account: Account, due_at: datetime | None = None) -> Publication:
    due_at = due_at or utcnow()
    pub = Publication(post_id=post.id, account_id=account.id, due_at=due_at, next_attempt_at=due_at,
                      content_hash=post.content_hash)
    session.add(pub)
    session.flush()
    return pub


def wait_for(predicate: Callable[[], bool], *, timeout: float = 20.0, interval: float = 0.05,
             what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def settled(session_factory: Callable[[], Session], ids: list[int]) -> bool:
    with session_factory() as session:
        states = session.exec(select(Publication.state).where(Publication.id.in_(ids))).all()
        return len(states) == len(ids) and not any(s in ACTIVE for s in states)


def emulator_state(url: str) -> dict:
    return httpx.get(f"{url}/_emulator/state", timeout=10).json()


def copies(state: dict, *, title: str | None = None, weibo_text: str | None = None) -> int:
    """How many times the emulator holds a post: WeChat articles by title, Weibo statuses by text."""
    if title is not None:
        return sum(1 for a in state["wechat"]["articles"].values()
                   for item in a["news_item"] if item["title"] == title)
    return sum(1 for s in state["weibo"]["statuses"].values() if s["original_text"] == weibo_text)


def arm(url: str, platform: str, path: str, kind: str, **extra) -> None:
    httpx.post(f"{url}/_emulator/faults", json={"platform": platform, "path": path, "kind": kind, **extra},
               timeout=5).raise_for_status()


def ago(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


# ---- worker processes (`govbot worker`) ---------------------------------------------------------


def worker_config(tmp_path: Path, emulator_url: str, overrides: dict[str, Any] | None = None) -> tuple[Path, Config]:
    """A TOML config file like the `make_config` fixture's, for worker processes; returns it parsed too."""
    from tests.conftest import EXAMPLE, deep_merge

    data = deep_merge(EXAMPLE, {
        "database": {"url": f"sqlite:///{tmp_path / 'govbot.db'}"},
        "emulator": {"demo": False, "state_file": str(tmp_path / "emulator.json")},
        "triage": {"rules_dir": str(REPO_ROOT / "rules")},
        "tickets": {"holidays_file": str(REPO_ROOT / "rules" / "holidays.toml")},
        "platforms": {"wechat": {"api_base": f"{emulator_url}/wechat/cgi-bin/"},
                      "weibo": {"api_base": f"{emulator_url}/weibo/2/"}},
    })
    path = tmp_path / "config.toml"
    path.write_bytes(tomli_w.dumps(deep_merge(data, overrides or {})).encode("utf-8"))
    return path, load_config(path)


class Worker:
    """A real `govbot --config FILE -v worker` process, its log in a file."""

    def __init__(self, config_path: Path, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        govbot = Path(sys.executable).with_name("govbot")
        self.proc = subprocess.Popen([str(govbot), "--config", str(config_path), "-v", "worker"],
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=str(config_path.parent))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_running(self, timeout: float = 60.0) -> None:
        def running() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            return "running" in self.log()

        wait_for(running, timeout=timeout, interval=0.1, what=f"worker {self.pid} to start")

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode
