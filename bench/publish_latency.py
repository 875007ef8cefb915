"""Publishing latency under bursts: due posts go out on time, exactly once.

usage: python bench/publish_latency.py [--only burst,overdue,minute] [--pg-url URL]

Three scenarios, each on a fresh database with real `govbot --config FILE worker` processes and the
platform emulator on loopback (in this process, standing in for the remote platforms); fully
signed, scheduled posts are created directly as rows, one publication each, round-robin over 20
accounts (10 WeChat, 10 Weibo). Most posts share one cover, as a column's articles commonly do (WeChat
uploads it once per account, then reuses it: bot.connectors.covers); every 4th post of each platform
has a cover of its own (distinct PNG bytes), so the covers' reuse is not all that is measured.

- burst:   200 posts due at the same moment 10 s after they are created (officers schedule ahead;
           the worker prepares posts up to bot.publishing.scheduler.PREPARE_AHEAD before their
           time); one worker, SQLite.                                        target p99 <= 1 s
- overdue: the same 200 posts, already due when they are created (no lead time at all: the
           creating transaction's commit is the first moment any worker can see them). target p99 <= 1 s
- overdue2: the same with two worker processes on the SQLite file (one worker is near its limit: about
           5 ms of CPU per publication, half of it the HTTP clients, and its writes queue on SQLite's
           one writer).                                                        target p99 <= 1 s
- minute:  1,000 posts due within one minute (due times spread evenly, from 15 s after creation),
           4 workers, PostgreSQL (--pg-url, $GOVBOT_TEST_PG_URL, or a throwaway server started
           like .ci/postgres.sh does).                                        target p99 <= 2 s

lateness = published_at - due_at per publication, published_at being when the platform took the
post (WeChat: freepublish/submit answered; Weibo: statuses/share answered); duplicates = copies the
emulator holds per post and account beyond the first, summed over all scenarios. Also printed: when
the publications were begun (first_attempt_at - due_at: waiting for a worker), the workers' CPU time
per publication and, during the burst, the workers' and this process's (the emulator's) share of a
core (from /proc), and the covers uploaded. $GOVBOT_BENCH_PROFILE=DIR profiles the workers during the
burst (yappi: `pip install yappi` first; see PROFILED). Last line:
burst_p99_s=... overdue_p99_s=... overdue2_p99_s=... minute_p99_s=... duplicates=...
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tomli_w  # noqa: E402
from loguru import logger  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from bot import db  # noqa: E402
from bot.clock import utcnow  # noqa: E402
from bot.config import Config, load_config  # noqa: E402
from bot.context import Context  # noqa: E402
from bot.emulator.testing import EmulatorAdmin, run_emulator  # noqa: E402
from bot.models import Account, Media, Post, Publication, SignOff, User  # noqa: E402
from bot.publishing.service import content_hash  # noqa: E402
from bot.service import prepare, register_emulator_accounts  # noqa: E402


def png_1x1(label: str = "") -> bytes:
    """The cover every WeChat article needs: a 1x1 grey PNG; a `label` (a tEXt chunk) makes other bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    text = chunk(b"tEXt", b"Comment\x00" + label.encode()) if label else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)) + text
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


COVER = png_1x1()
# Every OWN_COVER_EVERY-th post of each platform has a cover of its own (distinct bytes); the others share one
# cover, as a column's articles commonly do.
OWN_COVER_EVERY = 4


def bench_config(tmp: Path, emulator_url: str, n_accounts: int, database_url: str = "", first: int = 0) -> Config:
    """Write the workers' config file and return it parsed; accounts numbered from `first` (each
    scenario has its own, so the platforms' hourly posting limits of one do not reach the next)."""
    accounts = []
    for i in range(first, first + n_accounts):
        if i % 2 == 0:
            accounts.append({"name": f"公众号{i:04d}", "platform": "wechat", "appid": f"wxbench{i:010d}",
                             "secret": f"bench-secret-{i}", "token": f"benchtoken{i}"})
        else:
            accounts.append({"name": f"微博{i:04d}", "platform": "weibo", "uid": str(5100000000 + i),
                             "access_token": f"bench-weibo-token-{i}"})
    users = [{"username": "author", "roles": ["editor"]}, {"username": "editor2", "roles": ["editor"]},
             {"username": "reviewer", "roles": ["reviewer"]}, {"username": "approver", "roles": ["approver"]}]
    data = {
        "database": {"url": database_url or f"sqlite:///{tmp / 'bench.db'}"},
        "emulator": {"demo": False},
        "platforms": {"wechat": {"api_base": f"{emulator_url}/wechat/cgi-bin/"},
                      "weibo": {"api_base": f"{emulator_url}/weibo/2/"}},
        "polling": {"interval_s": 3600.0},
        # No callback server here: WeChat jobs are settled by the fallback freepublish/get checks.
        "scheduler": {"publish_status_checks_s": [3.0, 5.0]},
        "accounts": accounts,
        "users": users,
    }
    path = tmp / "config.toml"
    path.write_bytes(tomli_w.dumps(data).encode("utf-8"))
    return load_config(path)


# $GOVBOT_BENCH_PROFILE=DIR: each worker runs under yappi (CPU clock, every thread) from the posts' creation
# until a second after their time (the burst), and leaves DIR/<tmp dir>-worker<k>.pstat for `python -m pstats`.
PROFILE_DIR = os.environ.get("GOVBOT_BENCH_PROFILE")
PROFILED = """
import signal, sys, yappi
out = sys.argv.pop(1)
signal.signal(signal.SIGUSR1, lambda *_: (yappi.set_clock_type("cpu"), yappi.start()))
signal.signal(signal.SIGUSR2, lambda *_: (yappi.stop(), yappi.get_func_stats().save(out, type="pstat")))
from bot.cli import main
sys.exit(main())
"""


def start_worker(config: Config, log: Path) -> subprocess.Popen:
    """`govbot --config FILE worker`, as an operator starts it; returns once it runs."""
    command = [str(Path(sys.executable).with_name("govbot"))]
    if PROFILE_DIR:
        command = [sys.executable, "-c", PROFILED, str(Path(PROFILE_DIR) / f"{log.parent.name}-{log.stem}.pstat")]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*command, "--config", config.source, "worker"], stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "running" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit(f"the worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)
    return proc


def create_due_posts(ctx: Context, due: list, tag: str) -> dict[int, tuple[str, str, str]]:
    """Signed posts due at the times `due`, one publication each, round-robin over the accounts, in one
    transaction; returns publication id -> (title, text, account)."""
    cfg = ctx.config
    out = {}
    with ctx.session() as s:
        users = {u.username: u for u in s.exec(select(User))}
        signers = ["editor2", "reviewer", "approver"]
        accounts = list(s.exec(select(Account).order_by(Account.id)))
        shared = Media(filename="cover.png", mime="image/png", sha256=hashlib.sha256(COVER).hexdigest(), data=COVER)
        # Accounts alternate WeChat, Weibo: i // 2 counts each platform's posts.
        own = {i: png_1x1(f"{tag} {i}") for i in range(len(due)) if i // 2 % OWN_COVER_EVERY == OWN_COVER_EVERY - 1}
        covers = {i: Media(filename=f"cover{i}.png", mime="image/png", sha256=hashlib.sha256(data).hexdigest(),
                           data=data) for i, data in own.items()}
        s.add_all([shared, *covers.values()])
        s.flush()
        # Three flushes for all the rows (posts, then what refers to them): the creating transaction is
        # short, so the posts' lateness measures the workers, not this set-up.
        made = []
        for i, due_at in enumerate(due):
            account = accounts[i % len(accounts)]
            cover = covers.get(i, shared)
            title = f"{tag}第{i:04d}号通知：街道工作安排"
            text = f"{title} 详见 https://{cfg.platforms.weibo.safe_domain}/n/{i}"
            body = f"<p>{title}。</p>"
            # Signed with its account and time, as 送审 records them (bot.publishing.targets).
            digest = content_hash(title=title, body=body, digest="", weibo_text=text, cover_sha256=cover.sha256,
                                  targets=[account.id], planned_at=due_at)
            post = Post(title=title, body=body, weibo_text=text, cover_media_id=cover.id,
                        author_id=users["author"].id, status="scheduled", content_hash=digest, scheduled_at=due_at,
                        target_account_ids=[account.id], planned_at=due_at)
            made.append((post, account, due_at, title, text))
        s.add_all([post for post, *_ in made])
        s.flush()
        pubs = []
        for post, account, due_at, title, text in made:
            for stage_index, (stage, signer) in enumerate(zip(cfg.signoff.stages, signers, strict=True)):
                s.add(SignOff(post_id=post.id, stage_index=stage_index, stage_name=stage.name,
                              user_id=users[signer].id, role=stage.role, decision="approve",
                              post_version=post.version, content_hash=post.content_hash))
            pub = Publication(post_id=post.id, account_id=account.id, due_at=due_at, next_attempt_at=due_at,
                              content_hash=post.content_hash)
            s.add(pub)
            pubs.append((pub, title, text, account.remote_id))
        s.flush()
        for pub, title, text, remote in pubs:
            out[pub.id] = (title, text, remote)
    return out


UPLOADS = "wechat material/add_material"  # the emulator's call counter of cover uploads


def duplicates(state: dict, expected: dict[int, tuple[str, str, str]]) -> tuple[int, int]:
    """(copies beyond the first, publications with no copy at all) on the emulator."""
    held: Counter[tuple[str, str]] = Counter()
    for article in state["wechat"]["articles"].values():
        for item in article["news_item"]:
            held[(item["title"], article["appid"])] += 1
    for status in state["weibo"]["statuses"].values():
        held[(status["original_text"], str(status["uid"]))] += 1
    keys = [(title, remote) if remote.startswith("wx") else (text, remote) for title, text, remote in expected.values()]
    return sum(max(0, held[k] - 1) for k in keys), sum(1 for k in keys if held[k] == 0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Outcome:
    lateness: list[float]
    started: list[float]  # first_attempt_at - due_at: how long before a worker began the publication
    states: Counter
    duplicates: int
    missing: int
    cpu_ms: float  # workers' CPU per publication
    # During the burst, in cores: (the workers, this process: the emulator and the wait loop).
    burst_cpu: tuple[float, float]
    uploads: int  # WeChat covers uploaded as permanent material (material/add_material)


def run_scenario(tmp: Path, url: str, admin: EmulatorAdmin, *, tag: str, database_url: str, workers: int,
                 accounts: int, first_account: int, due_offsets: list[float]) -> Outcome:
    """Create posts due at now + each offset (seconds) with `workers` worker processes running; wait for all."""
    config = bench_config(tmp, url, accounts, database_url, first_account)
    db.upgrade(config.database_url)
    ctx = Context.open(config)
    prepare(ctx)
    register_emulator_accounts(ctx, emulator_url=url)
    procs = [start_worker(config, tmp / f"worker{k}.log") for k in range(workers)]
    uploads_before = admin.state()["counters"]["calls"].get(UPLOADS, 0)
    try:
        if PROFILE_DIR:
            for proc in procs:
                proc.send_signal(signal.SIGUSR1)
        profiling = bool(PROFILE_DIR)
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        now = utcnow()
        expected = create_due_posts(ctx, [now + timedelta(seconds=off) for off in due_offsets], tag)
        started = time.monotonic()
        # (seconds since the posts were created, workers' CPU s, this process's CPU s), every tenth of a second
        samples = [(0.0, sum(cpu_seconds(p.pid) for p in procs), time.process_time())]
        deadline = started + max(due_offsets) + 60
        while time.monotonic() < deadline:
            with Session(ctx.engine) as s:
                left = s.exec(select(Publication.id).where(Publication.state.in_(("pending", "publishing")))).first()
            if left is None:
                break
            time.sleep(0.1)
            samples.append((time.monotonic() - started, sum(cpu_seconds(p.pid) for p in procs), time.process_time()))
            if profiling and samples[-1][0] > max(due_offsets) + 1.0:
                profiling = False
                for proc in procs:
                    proc.send_signal(signal.SIGUSR2)
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_before
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    for k in range(workers):
        problems = [line for line in (tmp / f"worker{k}.log").read_text(errors="replace").splitlines()
                    if "| ERROR" in line or "| CRITICAL" in line]
        if problems:
            print(f"  worker {k}: {len(problems)} errors, first: {problems[0][:300]}")
    with Session(ctx.engine) as s:
        pubs = list(s.exec(select(Publication)))
    ctx.close()
    state = admin.state()
    dupes, missing = duplicates(state, expected)
    lateness = [(p.published_at - p.due_at).total_seconds() for p in pubs if p.published_at is not None]
    # The burst: from the first post's time until the last one went out.
    first, last = min(due_offsets), max(due_offsets) + max(lateness, default=0.0)
    begin = max([s for s in samples if s[0] <= first], key=lambda s: s[0])
    end = min([s for s in samples if s[0] >= last] or samples[-1:], key=lambda s: s[0])
    span = max(end[0] - begin[0], 1e-9)
    return Outcome(lateness=lateness,
                   started=[(p.first_attempt_at - p.due_at).total_seconds() for p in pubs if p.first_attempt_at],
                   states=Counter(p.state for p in pubs), duplicates=dupes, missing=missing,
                   cpu_ms=1000 * cpu / max(1, len(pubs)), burst_cpu=((end[1] - begin[1]) / span, (end[2] - begin[2]) / span),
                   uploads=state["counters"]["calls"].get(UPLOADS, 0) - uploads_before)


def postgres_database(server_url: str) -> str:
    """A new empty database on the server; its URL."""
    from sqlalchemy import create_engine, text

    name = f"govbot_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


SCENARIOS = {
    # name: (posts, accounts, workers, PostgreSQL, due offsets, target p99 s). Weibo takes at most 30
    # posts an hour from an account (the emulator enforces it): 1,000 posts need many accounts.
    "burst": (200, 20, 1, False, lambda n: [10.0] * n, 1.0),
    "overdue": (200, 20, 1, False, lambda n: [0.0] * n, 1.0),
    # The same with a second worker process (SQLite): what an office expecting such bursts runs.
    "overdue2": (200, 20, 2, False, lambda n: [0.0] * n, 1.0),
    "minute": (1000, 200, 4, True, lambda n: [15.0 + 60.0 * i / n for i in range(n)], 2.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="burst,overdue,overdue2,minute", help="scenarios to run, comma separated")
    parser.add_argument("--pg-url", default=os.environ.get("GOVBOT_TEST_PG_URL", ""),
                        help="a PostgreSQL server for the minute scenario (default: start a throwaway one)")
    args = parser.parse_args()
    from tests.conftest import postgres_server  # the same throwaway server the tests start

    names = [n for n in args.only.split(",") if n]
    logger.remove()
    logger.add(sys.stderr, level="ERROR", diagnose=False)
    load_before = os.getloadavg()[0]
    results: dict[str, Outcome] = {}
    with run_emulator() as url, EmulatorAdmin(url) as admin, ExitStack() as stack:
        for k, name in enumerate(names):
            posts, accounts, workers, on_pg, offsets, target = SCENARIOS[name]
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"govbot-bench-{name}-")))
            database_url = postgres_database(stack.enter_context(postgres_server(args.pg_url))) if on_pg else ""
            out = results[name] = run_scenario(tmp, url, admin, tag=name, database_url=database_url, workers=workers,
                                               accounts=accounts, first_account=1000 * k, due_offsets=offsets(posts))
            late = out.lateness
            p50 = percentile(late, 0.5) if late else float("nan")
            p99 = percentile(late, 0.99) if late else float("nan")
            print(f"{name:8s} {posts} posts, {accounts} accounts, {workers} worker(s), "
                  f"{'PostgreSQL' if on_pg else 'SQLite'}: "
                  f"states {dict(out.states)}; lateness p50 {p50:.3f} s, p99 {p99:.3f} s, max "
                  f"{max(late, default=float('nan')):.3f} s (target p99 <= {target:g} s; begun: p50 "
                  f"{percentile(out.started, 0.5):.3f} s, p99 {percentile(out.started, 0.99):.3f} s); duplicates {out.duplicates}, "
                  f"missing {out.missing}; worker CPU {out.cpu_ms:.1f} ms per publication; during the burst the workers "
                  f"used {out.burst_cpu[0]:.0%} of a core, the emulator {out.burst_cpu[1]:.0%}; {out.uploads} covers "
                  "uploaded", flush=True)
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs")
    summary = " ".join(f"{name}_p99_s={percentile(out.lateness, 0.99) if out.lateness else float('nan'):.3f}"
                       for name, out in results.items())
    print(f"{summary} duplicates={sum(out.duplicates for out in results.values())}")


if __name__ == "__main__":
    main()
