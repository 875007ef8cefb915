"""Triage throughput and WeChat callback latency.

usage: python bench/triage_throughput.py [CSV] [--rules DIR] [--rounds N] [--rate R] [--seconds S]

1. Classification: messages/s of the classifier the service uses (RuleStore(rules).current(), the
   object behind ctx.rules) over the `text` column of CSV (default ../shared/data/
   citizen_messages_dev.csv beside the repo), and, in the same run on the same texts, bare
   `jieba.lcut` with its default dictionary; ratio = classifier / jieba (target >= 3.0). Best of
   --rounds passes each, after a warm-up.
2. Peak RSS of this process (resource.getrusage).
3. Callback latency: govbot's web app under uvicorn in a child process on a free loopback port with
   a fresh SQLite database; signed plain-mode text messages (real texts from the CSV, each a new
   MsgId) are sent at a fixed rate (default 50 req/s for 10 s, open loop: each request starts on
   schedule whether or not earlier ones have answered); p50/p99 of the answer time, every answer
   must be 200. Each request is stored, classified and auto-replied or ticketed, as in production.

Last line: msgs_per_s=... jieba_msgs_per_s=... ratio=... peak_rss_mb=... callback_p99_ms=...
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.resources import rules_dir as shipped_rules_dir  # noqa: E402  (after the path set-up above)

DATA = REPO.parent / "shared" / "data"
APPID, TOKEN = "wxdemo0000000001", "demotoken0001"  # the plain-mode account of config.example.toml


def read_texts(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [row["text"] for row in csv.DictReader(fh) if row.get("text")]


def best_rate(fn, texts: list[str], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for text in texts:
            fn(text)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def classification(texts: list[str], rules_dir: Path, rounds: int) -> tuple[float, float]:
    import jieba

    from bot.triage.rules import RuleStore

    jieba.setLogLevel(60)
    classifier = RuleStore(rules_dir).current()
    classifier.classify(texts[0])
    jieba.lcut(texts[0])
    return best_rate(classifier.classify, texts, rounds), best_rate(jieba.lcut, texts, rounds)


# ---- the callback under load --------------------------------------------------------------------


def bench_config(tmp: Path, port: int, rules_dir: Path):
    """config.example.toml with the database in tmp. Only the web app runs: no scheduler, no emulator."""
    from bot.config import parse_config

    data = tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))
    data["database"]["url"] = f"sqlite:///{tmp / 'bench.db'}"
    data["web"]["port"] = port
    data["emulator"]["state_file"] = str(tmp / "emulator.json")
    data["triage"]["rules_dir"] = str(rules_dir)
    return parse_config(data, file=str(tmp / "config.toml"))


def serve(tmp: str, port: int, rules_dir: str) -> None:
    """Child process: the web app under uvicorn, as `govbot serve` runs it."""
    import uvicorn
    from loguru import logger

    from bot.context import Context
    from bot.service import prepare
    from bot.web.app import create_app

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    ctx = Context.open(bench_config(Path(tmp), port, Path(rules_dir)))
    prepare(ctx)
    uvicorn.run(create_app(ctx), host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def load(base: str, texts: list[str], rate: float, seconds: float, *, first_id: int) -> tuple[list[float], dict[int, int]]:
    import httpx

    from bot.inbound.callback import sign

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    n = int(rate * seconds)
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=200)) as client:

        async def one(i: int) -> None:
            ts, nonce = str(int(time.time())), str(100000 + i)
            text = texts[i % len(texts)][:600]
            body = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[oBench{i % 97:04d}]]>"
                    f"</FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                    f"<Content><![CDATA[{text}]]></Content><MsgId>{first_id + i}</MsgId></xml>")
            params = {"signature": sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}
            start = time.perf_counter()
            try:
                r = await client.post(f"{base}/wechat/callback/{APPID}", params=params, content=body.encode())
                status = r.status_code
            except httpx.HTTPError:
                status = 0
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1

        tasks = []
        t0 = time.perf_counter()
        for i in range(n):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies, statuses


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (Linux /proc); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def callback_latency(texts: list[str], rules_dir: Path, rate: float, seconds: float) -> dict:
    import httpx

    with tempfile.TemporaryDirectory(prefix="govbot-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        child = subprocess.Popen([sys.executable, __file__, "--serve", str(tmp), str(port), str(rules_dir)],
                                 cwd=str(REPO))
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the callback server did not start")
                time.sleep(0.1)
            asyncio.run(load(base, texts, rate, 1.0, first_id=8_000_000_000))  # warm-up: connections, first queries
            cpu_before, started = cpu_seconds(child.pid), time.perf_counter()
            latencies, statuses = asyncio.run(load(base, texts[::-1], rate, seconds, first_id=9_000_000_000))
            wall, cpu_after = time.perf_counter() - started, cpu_seconds(child.pid)
        finally:
            child.terminate()
            child.wait(10)
    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = ms[max(0, math.ceil(0.99 * len(ms)) - 1)]  # nearest rank
    cpu_ms = None if cpu_before is None or cpu_after is None else 1000 * (cpu_after - cpu_before) / len(ms)
    return {"p50": p50, "p99": p99, "statuses": statuses, "wall": wall, "server_cpu_ms": cpu_ms}


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DATA / "citizen_messages_dev.csv")
    parser.add_argument("--rules", type=Path, default=shipped_rules_dir())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50.0, help="callback requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the callback load")
    args = parser.parse_args()
    if not args.csv.is_file():
        raise SystemExit(f"{args.csv}: no such file (give the CSV path as the first argument)")
    texts = read_texts(args.csv)
    if not texts:
        raise SystemExit(f"{args.csv}: no rows with a text column")

    msgs_per_s, jieba_per_s = classification(texts, args.rules, args.rounds)
    ratio = msgs_per_s / jieba_per_s
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"classification: {len(texts)} messages, best of {args.rounds}: {msgs_per_s:.0f} msgs/s; "
          f"bare jieba.lcut {jieba_per_s:.0f} msgs/s; ratio {ratio:.2f}")
    print(f"peak RSS {peak_rss_mb:.1f} MB")
    load_before = os.getloadavg()[0]
    result = callback_latency(texts, args.rules, args.rate, args.seconds)
    p99, statuses = result["p99"], result["statuses"]
    print(f"callback: {args.rate:g} req/s for {args.seconds:g} s on loopback (took {result['wall']:.1f} s), "
          f"HTTP statuses {statuses}: p50 {result['p50']:.1f} ms, p99 {p99:.1f} ms")
    if result["server_cpu_ms"] is not None:
        print(f"server CPU per request {result['server_cpu_ms']:.2f} ms (far less sensitive than latency to other load on the machine)")
    # Latency on a shared machine says more about the neighbours than about govbot: say so.
    if load_before > (os.cpu_count() or 1) * 0.75:
        print(f"warning: load average {load_before:.1f} on {os.cpu_count()} CPUs at the start; latency is inflated")
    if set(statuses) != {200}:
        raise SystemExit("the callback answered something other than 200")
    print(f"msgs_per_s={msgs_per_s:.1f} jieba_msgs_per_s={jieba_per_s:.1f} ratio={ratio:.2f} "
          f"peak_rss_mb={peak_rss_mb:.1f} callback_p99_ms={p99:.1f}")


if __name__ == "__main__":
    main()
