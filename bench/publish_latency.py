"""Publishing latency: 200 posts due at the same moment on 20 accounts (10 WeChat, 10 Weibo).

usage: python bench/publish_latency.py [--posts N] [--accounts N] [--lead S]

A temporary SQLite database and the platform emulator on loopback (in this process, standing in for
the remote platforms). The worker is a real `govbot --config <tmp config> worker` process. Once it
runs, fully signed, scheduled posts are created directly as rows, all due at the same moment
`--lead` seconds later (officers schedule ahead; the worker prepares posts up to
bot.publishing.scheduler.PREPARE_AHEAD before their time), and the bench waits until every
publication has an outcome.

lateness = published_at - due_at per publication, published_at being when the platform took the
post (WeChat: freepublish/submit answered, the article's own publication time; Weibo:
statuses/share answered); duplicates = copies the emulator holds per
post and account beyond the first, summed. Last line: p50_s=... p99_s=... duplicates=...
"""

from __future__ import annotations

import argparse
import hashlib
import math
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
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
from bot.service import prepare, register_emulator_accounts  # noqa: E402


def png_1x1() -> bytes:
    """The cover every WeChat article needs: a 1x1 grey PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


COVER = png_1x1()


def bench_config(tmp: Path, emulator_url: str, n_accounts: int) -> Config:
    """Write the worker's config file and return it parsed."""
    accounts = []
    for i in range(n_accounts):
        if i % 2 == 0:
            accounts.append({"name": f"公众号{i:02d}", "platform": "wechat", "appid": f"wxbench{i:010d}",
                             "secret": f"bench-secret-{i}", "token": f"benchtoken{i}"})
        else:
            accounts.append({"name": f"微博{i:02d}", "platform": "weibo", "uid": str(5100000000 + i),
                             "access_token": f"bench-weibo-token-{i}"})
    users = [{"username": "author", "roles": ["editor"]}, {"username": "editor2", "roles": ["editor"]},
             {"username": "reviewer", "roles": ["reviewer"]}, {"username": "approver", "roles": ["approver"]}]
    data = {
        "database": {"url": f"sqlite:///{tmp / 'bench.db'}"},
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


def start_worker(config: Config, log: Path) -> subprocess.Popen:
    """`govbot --config FILE worker`, as an operator starts it; returns once it runs."""
    govbot = Path(sys.executable).with_name("govbot")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(govbot), "--config", config.source, "worker"], stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "running" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit(f"the worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)
    return proc


def create_due_posts(ctx: Context, n_posts: int, lead_s: float) -> dict[int, tuple[str, str, str]]:
    """Signed posts, one publication each, round-robin over the accounts; returns id -> (title, text, account)."""
    cfg = ctx.config
    due_at = utcnow() + timedelta(seconds=lead_s)
    out = {}
    with ctx.session() as s:
        users = {u.username: u for u in s.exec(select(User))}
        signers = ["editor2", "reviewer", "approver"]
        accounts = list(s.exec(select(Account).order_by(Account.id)))
        cover = Media(filename="cover.png", mime="image/png", sha256=hashlib.sha256(COVER).hexdigest(), data=COVER)
        s.add(cover)
        s.flush()
        for i in range(n_posts):
            account = accounts[i % len(accounts)]
            title = f"第{i:03d}号通知：街道工作安排"
            text = f"{title} 详见 https://{cfg.platforms.weibo.safe_domain}/n/{i}"
            digest = hashlib.sha256(title.encode()).hexdigest()
            post = Post(title=title, body=f"<p>{title}。</p>", weibo_text=text, cover_media_id=cover.id,
                        author_id=users["author"].id, status="scheduled", content_hash=digest, scheduled_at=due_at)
            s.add(post)
            s.flush()
            for stage_index, (stage, signer) in enumerate(zip(cfg.signoff.stages, signers, strict=True)):
                s.add(SignOff(post_id=post.id, stage_index=stage_index, stage_name=stage.name,
                              user_id=users[signer].id, role=stage.role, decision="approve",
                              post_version=post.version, content_hash=digest))
            pub = Publication(post_id=post.id, account_id=account.id, due_at=due_at, next_attempt_at=due_at,
                              content_hash=digest)
            s.add(pub)
            s.flush()
            out[pub.id] = (title, text, account.remote_id)
    return out


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--lead", type=float, default=10.0, help="seconds from creating the rows to their due time")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")

    with tempfile.TemporaryDirectory() as tmp, run_emulator() as url, EmulatorAdmin(url) as admin:
        config = bench_config(Path(tmp), url, args.accounts)
        db.upgrade(config.database_url)
        ctx = Context.open(config)
        prepare(ctx)
        register_emulator_accounts(ctx, emulator_url=url)
        worker = start_worker(config, Path(tmp) / "worker.log")
        try:
            expected = create_due_posts(ctx, args.posts, args.lead)
            deadline = time.monotonic() + args.lead + 45
            while time.monotonic() < deadline:
                with Session(ctx.engine) as s:
                    left = s.exec(select(Publication.id).where(Publication.state.in_(("pending", "publishing")))).all()
                if not left:
                    break
                time.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        with Session(ctx.engine) as s:
            pubs = list(s.exec(select(Publication)))
        dupes, missing = duplicates(admin.state(), expected)
        ctx.close()

    states = Counter(p.state for p in pubs)
    lateness = [(p.published_at - p.due_at).total_seconds() for p in pubs if p.published_at is not None]
    print(f"publications: {len(pubs)} on {args.accounts} accounts; states: {dict(states)}")
    if not lateness:
        print("nothing was published")
        print(f"p50_s=nan p99_s=nan duplicates={dupes}")
        sys.exit(1)
    print(f"lateness (published_at - due_at): p50 {percentile(lateness, 0.5):.3f} s, "
          f"p99 {percentile(lateness, 0.99):.3f} s, max {max(lateness):.3f} s (target p99 <= 2 s)")
    print(f"duplicates on the emulator: {dupes}; publications missing there: {missing}")
    print(f"p50_s={percentile(lateness, 0.5):.3f} p99_s={percentile(lateness, 0.99):.3f} duplicates={dupes}")


if __name__ == "__main__":
    main()
