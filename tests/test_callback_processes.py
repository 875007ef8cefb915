"""Several web processes on one database: WeChat's retries of a message, arriving at different
processes at the same moment, are stored once and answered alike (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import tomli_w
from sqlalchemy import func, select

from bot.config import REPO_ROOT, load_config
from bot.context import Context
from bot.inbound.processing import process_pending
from bot.models import InboundDelivery, Message, Reply
from bot.seed import sync_from_config
from tests.conftest import EXAMPLE, deep_merge
from tests.test_callback import PLAIN, signed
from tests.test_callback_durability import QUESTION, text_xml

WORKERS = 2
MESSAGES = 12
COPIES = 3  # each message delivered this many times at once, on separate connections


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _deliver_all(bases: list[str]) -> tuple[dict[int, set[bytes]], set[str]]:
    """Every message COPIES times at once, the copies spread over the servers; (answers, processes)."""
    answers: dict[int, set[bytes]] = {}
    workers: set[str] = set()

    async def one(base: str, msg_id: int, content: str) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            r = await client.post(f"/wechat/callback/{PLAIN['appid']}", params=signed(PLAIN["token"]),
                                  content=text_xml(msg_id, content))
            assert r.status_code == 200, r.text
            answers.setdefault(msg_id, set()).add(r.content)
            workers.add((await client.get("/healthz")).json()["worker"])

    await asyncio.gather(*(one(bases[copy % len(bases)], i, QUESTION if i % 3 == 0 else f"第{i}条：路灯坏了没人修")
                           for i in range(1, MESSAGES + 1) for copy in range(COPIES)))
    return answers, workers


def _serve(data: dict, tmp_path: Path, name: str, port: int, workers: int) -> subprocess.Popen:
    config_file = tmp_path / f"{name}.toml"
    config_file.write_text(tomli_w.dumps(deep_merge(data, {"web": {"port": port, "workers": workers}})),
                           encoding="utf-8")
    return subprocess.Popen([sys.executable, "-c", "from bot.config import load_config; from bot.context import "
                             f"Context; from bot.service import run_web; run_web(Context.open(load_config({str(config_file)!r})))"],
                            cwd=str(Path(REPO_ROOT)))


def _wait_ready(base: str, processes: int, server: subprocess.Popen) -> None:
    """Until `processes` different web processes have answered /healthz (it answers once the first is up)."""
    deadline, ready = time.monotonic() + 90, set()
    while len(ready) < processes:
        try:
            r = httpx.get(f"{base}/healthz", timeout=1)
            if r.status_code == 200:
                ready.add(r.json()["worker"])
        except httpx.HTTPError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, "the web processes did not start"
        time.sleep(0.05)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_redeliveries_across_web_processes_are_stored_once(backend, tmp_path, migrated_db, request):
    """`web.workers = 2` behind one port, and a third process on another port (as behind a load balancer):
    the copies of each message go to both ports, so at least two processes race on every message."""
    if backend == "sqlite":
        shutil.copy(migrated_db, tmp_path / "govbot.db")
        url = f"sqlite:///{tmp_path / 'govbot.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    data = deep_merge(EXAMPLE, {
        "database": {"url": url},
        "callback": {"spool_dir": str(tmp_path / "spool")},
        "emulator": {"demo": False, "state_file": str(tmp_path / "emulator.json")},
        "triage": {"rules_dir": str(REPO_ROOT / "rules")},
        "tickets": {"holidays_file": str(REPO_ROOT / "rules" / "holidays.toml")},
    })
    (tmp_path / "seed.toml").write_text(tomli_w.dumps(data), encoding="utf-8")
    ctx = Context.open(load_config(tmp_path / "seed.toml"))
    with ctx.session() as session:
        sync_from_config(session=session, config=ctx.config)
    ports = [_free_port(), _free_port()]
    servers = [_serve(data, tmp_path, "pair", ports[0], WORKERS), _serve(data, tmp_path, "single", ports[1], 1)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        _wait_ready(bases[0], WORKERS, servers[0])
        _wait_ready(bases[1], 1, servers[1])
        answers, workers = asyncio.run(_deliver_all(bases))
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(20)
    assert len(workers) >= 2  # the copies of each message met in different processes
    assert all(len(distinct) == 1 for distinct in answers.values())  # every copy got the first answer
    assert sum(b"<xml>" in next(iter(a)) for a in answers.values()) == MESSAGES // 3  # the passive FAQ replies
    process_pending(ctx)
    with ctx.session() as s:
        assert s.execute(select(func.count()).select_from(InboundDelivery)).scalar_one() == MESSAGES
        keys = list(s.execute(select(Message.dedupe_key)).scalars())
        assert s.execute(select(func.count()).select_from(Reply)).scalar_one() == MESSAGES // 3
    assert sorted(keys) == sorted(f"msg:{i}" for i in range(1, MESSAGES + 1))
    ctx.close()
