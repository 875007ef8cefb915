"""WeChat callback capacity: govbot beside WeRoBot under the same open-loop load.

usage: python bench/callback_capacity.py [--rates 100,200,500,1000] [--seconds 10] [--workers N] [--repeat K]
                                         [--database-url URL] [--csv PATH ...] [--no-werobot]

- govbot: its web app as `govbot serve` runs it (bot.service.run_web: uvicorn, `web.workers`
  processes), production settings, a fresh database (SQLite file in a temp dir, or --database-url,
  e.g. an empty PostgreSQL database), no background worker, no emulator.
- WeRoBot 1.13 (dev dependency): a keyword-reply robot (the FAQ words of rules/faq.toml), storing
  nothing, under the same server (uvicorn, its WSGI interface).
- Load: signed plain-mode text messages (real texts from ../shared/data), each with a new MsgId, sent
  open loop at each rate for --seconds (every request starts on schedule whether or not earlier
  ones answered; latency is counted from the scheduled start, so queueing in the client counts
  too). Every 20th message is delivered again 0.2 s later with a fresh nonce, as WeChat retries; its
  answer must equal the first. The client is a minimal HTTP/1.1 keep-alive client on asyncio (uvloop),
  cheap enough not to be the bottleneck at 1,000 req/s on a small machine. Only 127.0.0.1.
- Checks: every answer 200; for govbot, every message stored exactly once (InboundDelivery rows
  plus deliveries still in the spool), counted in the database after each rate.
- --repeat K: each rate K times, govbot and WeRoBot alternating, each round printed; the summary
  per rate gives the median of the rounds' p99 (on a shared machine one round can catch a stall of
  another process: both servers show them, at random).

Last line: rate=500 govbot_p99_ms=... werobot_p99_ms=... stored=... lost=... dup=...
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA_DIRS = (REPO.parent / "shared" / "data", Path("/work/shared/data"))
APPID, TOKEN = "wxdemo0000000001", "demotoken0001"  # the plain-mode account of config.example.toml
REDELIVER_EVERY = 20
REDELIVER_AFTER_S = 0.2


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_texts(paths: list[Path]) -> list[str]:
    texts = []
    for path in paths:
        with path.open(encoding="utf-8", newline="") as fh:
            texts += [row["text"][:600] for row in csv.DictReader(fh) if row.get("text")]
    return texts


# ---- the servers (child processes) ------------------------------------------------------------


def serve_govbot(tmp: Path, port: int, workers: int, database_url: str) -> None:
    from loguru import logger

    from bot.config import load_config
    from bot.context import Context
    from bot.service import prepare, run_web

    data = tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))
    data["database"]["url"] = database_url or f"sqlite:///{tmp / 'bench.db'}"
    data["web"].update(port=port, workers=workers)
    data["callback"]["spool_dir"] = str(tmp / "spool")
    data["emulator"]["state_file"] = str(tmp / "emulator.json")
    data["triage"]["rules_dir"] = str(REPO / "rules")
    data["tickets"]["holidays_file"] = str(REPO / "rules" / "holidays.toml")
    import tomli_w

    config_file = tmp / "config.toml"
    config_file.write_text(tomli_w.dumps(data), encoding="utf-8")
    logger.remove()
    logger.add(sys.stderr, level="WARNING", diagnose=False)
    ctx = Context.open(load_config(config_file))
    prepare(ctx)
    run_web(ctx)


def serve_werobot(port: int) -> None:
    import logging

    import uvicorn
    import werobot

    from bot.triage.faq import FaqMatcher

    # Keyword reply: the first FAQ rule one of whose words is in the text answers.
    keywords = [(w, rule.answer) for rule in FaqMatcher.from_dir(REPO / "rules").rules
                for p in rule.patterns for w in p.all_of + p.any_of]
    robot = werobot.WeRoBot(token=TOKEN, SESSION_STORAGE=False)  # stores nothing
    logging.getLogger("WeRoBot").setLevel(logging.ERROR)  # it warns on every message without a keyword

    @robot.text
    def keyword_reply(message):
        for word, answer in keywords:
            if word in message.content:
                return answer
        return None

    uvicorn.run(robot.wsgi, host="127.0.0.1", port=port, interface="wsgi", log_level="warning")


def start(args: list[str], health: str) -> subprocess.Popen:
    import httpx

    child = subprocess.Popen([sys.executable, __file__, *args], cwd=str(REPO))
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(health, timeout=1).status_code < 500:
                return child
        except httpx.HTTPError:
            pass
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise SystemExit(f"server {args[0]} did not start")
        time.sleep(0.2)


# ---- the load -----------------------------------------------------------------------------------


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0 or self.waiter is None:
            return
        head = bytes(self.buf[:head_end]).decode("latin-1").lower()
        status = int(head.split(" ", 2)[1])
        body_start = head_end + 4
        if "transfer-encoding: chunked" in head:
            end = self.buf.find(b"0\r\n\r\n", body_start)
            if end < 0:
                return
            body, rest = _dechunk(bytes(self.buf[body_start:end + 5])), end + 5
        else:
            length = 0
            for line in head.split("\r\n"):
                if line.startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if len(self.buf) < body_start + length:
                return
            body, rest = bytes(self.buf[body_start:body_start + length]), body_start + length
        del self.buf[:rest]
        if not self.waiter.done():
            self.waiter.set_result((status, body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        try:
            return await self.waiter
        finally:
            self.waiter = None


def _dechunk(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while True:
        j = data.index(b"\r\n", i)
        size = int(data[i:j], 16)
        if size == 0:
            return bytes(out)
        out += data[j + 2:j + 2 + size]
        i = j + 4 + size


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    answers: dict[int, bytes] = field(default_factory=dict)  # MsgId -> first answer
    mismatched: int = 0  # redeliveries answered differently from the first delivery
    acknowledged: set[int] = field(default_factory=set)  # MsgIds answered 200


def build_request(port: int, text: str, msg_id: int, openid: str, nonce: int) -> bytes:
    ts = str(int(time.time()))
    body = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()
    query = f"signature={sign(TOKEN, ts, str(nonce))}&timestamp={ts}&nonce={nonce}"
    return (f"POST /wechat/callback/{APPID}?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def drive(port: int, texts: list[str], rate: float, seconds: float, first_id: int) -> Run:
    """Open-loop load: message i starts at t0 + i / rate (redeliveries REDELIVER_AFTER_S later)."""
    loop = asyncio.get_running_loop()
    n = int(rate * seconds)
    schedule = []  # (offset s, msg id, is redelivery)
    for i in range(n):
        schedule.append((i / rate, first_id + i, False))
        if i % REDELIVER_EVERY == 0:
            schedule.append((i / rate + REDELIVER_AFTER_S, first_id + i, True))
    schedule.sort()
    requests = [build_request(port, texts[(msg_id - first_id) % len(texts)], msg_id, f"oBench{msg_id % 997:04d}",
                              1_000_000 + k) for k, (_off, msg_id, _again) in enumerate(schedule)]
    run, idle, tasks = Run(), [], []

    async def one(offset: float, msg_id: int, again: bool, raw: bytes, t0: float) -> None:
        conn = idle.pop() if idle else None
        try:
            if conn is None or conn.closed:
                _t, conn = await loop.create_connection(_Conn, "127.0.0.1", port)
            status, body = await conn.request(raw)
        except (OSError, ConnectionError):
            status, body, conn = 0, b"", None
        run.latencies_ms.append((time.perf_counter() - t0 - offset) * 1000)
        run.statuses[status] = run.statuses.get(status, 0) + 1
        if conn is not None and not conn.closed:
            idle.append(conn)
        if status != 200:
            return
        run.acknowledged.add(msg_id)
        first = run.answers.setdefault(msg_id, body)
        if again and first != body:
            run.mismatched += 1

    t0 = time.perf_counter()
    k = 0
    while k < len(schedule):
        now = time.perf_counter() - t0
        while k < len(schedule) and schedule[k][0] <= now:
            offset, msg_id, again = schedule[k]
            tasks.append(asyncio.ensure_future(one(offset, msg_id, again, requests[k], t0)))
            k += 1
        if k < len(schedule):
            await asyncio.sleep(max(0.0, schedule[k][0] - (time.perf_counter() - t0)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.transport.close()
    return run


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and all its descendants (uvicorn's worker processes), from /proc."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except (OSError, IndexError):
        pass
    return total


def measured(pid: int, port: int, texts: list[str], rate: float, seconds: float, first_id: int) -> tuple[Run, float]:
    """The load at `rate`, and the server's CPU milliseconds per request meanwhile."""
    before = cpu_seconds(pid)
    run = asyncio.run(drive(port, texts, rate, seconds, first_id))
    return run, 1000 * (cpu_seconds(pid) - before) / max(1, len(run.latencies_ms))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


def stored_counts(database_url: str, spool_dir: Path, first_id: int, n: int) -> tuple[int, int]:
    """(rows for MsgIds first_id .. first_id + n - 1 in the database and the spool, distinct MsgIds)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    low, high = f"msg:{first_id}", f"msg:{first_id + n - 1}"
    with engine.connect() as conn:
        rows, distinct = conn.execute(text(
            "SELECT count(*), count(DISTINCT dedupe_key) FROM inbounddelivery WHERE dedupe_key BETWEEN :l AND :h"
        ), {"l": low, "h": high}).one()
    engine.dispose()
    spooled = len(list((spool_dir / "new").glob("*.json"))) if (spool_dir / "new").is_dir() else 0
    return rows + spooled, distinct + spooled


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-govbot":
        serve_govbot(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-werobot":
        serve_werobot(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="100,200,500,1000", help="requests per second, comma separated")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1, help="govbot web processes (web.workers)")
    parser.add_argument("--database-url", default="", help="an empty database (default: a fresh SQLite file)")
    parser.add_argument("--csv", type=Path, nargs="*", help="CSV files with a text column (default: ../shared/data)")
    parser.add_argument("--no-werobot", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per rate (the summary gives medians)")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    csvs = args.csv or next(([d / "citizen_messages_dev.csv", d / "short_comments_dev.csv"] for d in DATA_DIRS
                             if (d / "citizen_messages_dev.csv").is_file()), None)
    if not csvs:
        raise SystemExit("no data: give --csv PATH (the citizen messages of ../shared/data)")
    texts = read_texts(csvs)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="govbot-capacity-") as tmp_dir:
        tmp = Path(tmp_dir)
        database_url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
        gport, wport = free_port(), free_port()
        servers = [start(["--serve-govbot", str(tmp), str(gport), str(args.workers), database_url],
                         f"http://127.0.0.1:{gport}/healthz")]
        if not args.no_werobot:
            servers.append(start(["--serve-werobot", str(wport)], f"http://127.0.0.1:{wport}/"))
        try:
            # Warm-up: connections, caches, the first queries of every web process.
            asyncio.run(drive(gport, texts, 50, 2, first_id=10_000_000_000))
            if not args.no_werobot:
                asyncio.run(drive(wport, texts, 50, 2, first_id=10_000_000_000))
            rounds = [(rate, r) for rate in rates for r in range(args.repeat)]
            for k, (rate, _round) in enumerate(rounds):
                first_id = 20_000_000_000 + k * 100_000_000
                g, g_cpu = measured(servers[0].pid, gport, texts, rate, args.seconds, first_id)
                time.sleep(1.0)  # let the last group commit land
                n = int(rate * args.seconds)
                rows, distinct = stored_counts(database_url, tmp / "spool", first_id, n)
                w, w_cpu = (None, 0.0) if args.no_werobot else measured(servers[1].pid, wport, texts, rate,
                                                                         args.seconds, first_id)
                results.append((rate, g, w, n, rows, distinct))
                werobot_txt = (f" | WeRoBot p50 {statistics.median(w.latencies_ms):7.1f} p99 "
                               f"{percentile(w.latencies_ms, 0.99):7.1f} ms, CPU {w_cpu:.2f} ms/req, {w.statuses}"
                               if w else "")
                print(f"{rate:6.0f} req/s | govbot p50 {statistics.median(g.latencies_ms):7.1f} p99 "
                      f"{percentile(g.latencies_ms, 0.99):7.1f} ms, CPU {g_cpu:.2f} ms/req, {g.statuses}, stored "
                      f"{distinct}/{n}, redeliveries answered differently {g.mismatched}{werobot_txt}", flush=True)
        finally:
            for child in servers:
                child.terminate()
                child.wait(20)
    print(f"govbot web processes: {args.workers}; database: {'SQLite file' if not args.database_url else 'given URL'}; "
          f"load average before {load_before[0]:.2f} on {os.cpu_count()} CPUs, after {os.getloadavg()[0]:.2f}")
    ok = True
    for rate, g, _w, _n, rows, distinct in results:
        acked_lost = len(g.acknowledged) - distinct
        if set(g.statuses) != {200} or g.mismatched or rows != distinct or acked_lost > 0:
            ok = False
            print(f"FAILED at {rate:g} req/s: statuses {g.statuses}, acknowledged but not stored {acked_lost}, "
                  f"duplicates {rows - distinct}, redeliveries answered differently {g.mismatched}")
    summary = {}
    for rate in rates:
        mine = [r for r in results if r[0] == rate]
        g99 = statistics.median(percentile(r[1].latencies_ms, 0.99) for r in mine)
        w99 = statistics.median(percentile(r[2].latencies_ms, 0.99) for r in mine) if mine[0][2] else math.nan
        summary[rate] = (g99, w99, sum(r[5] for r in mine), sum(r[3] for r in mine), sum(r[4] - r[5] for r in mine))
        print(f"{rate:6.0f} req/s, median p99 of {len(mine)} round(s): govbot {g99:.1f} ms, WeRoBot {w99:.1f} ms")
    rate = min(rates, key=lambda r: abs(r - 500))
    g99, w99, stored, n, dup = summary[rate]
    print(f"rate={rate:g} govbot_p99_ms={g99:.1f} werobot_p99_ms={w99:.1f} stored={stored} lost={n - stored} dup={dup}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
