"""Scale-out on PostgreSQL: four `govbot worker` processes claim 200 due publications at once.

The server is GOVBOT_TEST_PG_URL (CI starts one with .ci/postgres.sh) or, without it, a throwaway
one started here with the PostgreSQL binaries of the machine, so the test always runs. Each run gets
its own database. The workers claim with SELECT ... FOR UPDATE SKIP LOCKED and publish to the
emulator running in this process; every publication must go out exactly once.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from bot import db
from bot.clock import utcnow
from bot.context import Context
from bot.emulator.testing import EmulatorAdmin, run_emulator
from bot.models import AuditEvent, Publication
from bot.seed import sync_from_config
from bot.service import register_emulator_accounts
from tests.test_scheduler_support import Worker, accounts, schedule, signed_post, wait_for, worker_config

pytestmark = pytest.mark.slow  # real worker processes

WORKERS = 4
POSTS = 100  # each to one WeChat and one Weibo account: 200 publications
ACCOUNTS = ([{"name": f"公众号{i}", "platform": "wechat", "appid": f"wxpgclaims{i:06d}",
              "secret": f"pg-secret-{i}", "token": f"pgtoken{i}"} for i in range(5)]
            + [{"name": f"微博{i}", "platform": "weibo", "uid": str(5200000000 + i),
                "access_token": f"pg-weibo-token-{i}"} for i in range(5)])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server URL: GOVBOT_TEST_PG_URL, or a throwaway server started like .ci/postgres.sh does."""
    if os.environ.get("GOVBOT_TEST_PG_URL"):
        yield os.environ["GOVBOT_TEST_PG_URL"]
        return
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL is not installed: set GOVBOT_TEST_PG_URL or install postgresql (see .ci/postgres.sh)"
    bin_dir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="govbot-pg."))
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(base, user="postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = base / "data"
    subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "govbot", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "start", "-o",
                    f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://govbot@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh database on the server, migrated to head, dropped afterwards."""
    name = f"govbot_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_server).set(database=name).render_as_string(hide_password=False)
    db.upgrade(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_workers_claim_with_skip_locked_and_publish_each_once(tmp_path: Path, pg_url: str):
    with run_emulator() as url, EmulatorAdmin(url) as admin:
        config_path, config = worker_config(tmp_path, url, {
            "database": {"url": pg_url}, "accounts": ACCOUNTS,
            "scheduler": {"tick_seconds": 0.2, "lease_seconds": 30, "publish_status_checks_s": [0.5, 1.0]},
            "polling": {"interval_s": 600.0}})
        ctx = Context.open(config)
        try:
            with ctx.session() as s:
                sync_from_config(session=s, config=config)
            register_emulator_accounts(ctx, emulator_url=url)
            workers = [Worker(config_path, tmp_path / f"worker{i}.log") for i in range(WORKERS)]
            try:
                for worker in workers:
                    worker.wait_running()
                due_at = utcnow()
                with ctx.session() as s:
                    accs = accounts(s)
                    wechat = [accs[a["name"]] for a in ACCOUNTS if a["platform"] == "wechat"]
                    weibo = [accs[a["name"]] for a in ACCOUNTS if a["platform"] == "weibo"]
                    posts, ids = [], []
                    for i in range(POSTS):
                        post = signed_post(s, config, title=f"第{i:03d}号公告")
                        posts.append(post)
                        ids += [schedule(s, post, wechat[i % 5], due_at).id, schedule(s, post, weibo[i % 5], due_at).id]

                def all_published() -> bool:
                    with Session(ctx.engine) as s:
                        states = Counter(s.exec(select(Publication.state).where(Publication.id.in_(ids))).all())
                    assert not states.keys() - {"pending", "publishing", "published"}, states
                    return states["published"] == len(ids)

                wait_for(all_published, timeout=120, interval=0.2, what="200 publications")
            finally:
                codes = [w.stop() for w in workers]
            assert codes == [0] * WORKERS, [w.log()[-2000:] for w in workers]

            state = admin.state()
            articles = Counter((item["title"], a["appid"]) for a in state["wechat"]["articles"].values()
                               for item in a["news_item"])
            statuses = Counter((s["original_text"], str(s["uid"])) for s in state["weibo"]["statuses"].values())
            assert sum(articles.values()) == POSTS and set(articles.values()) == {1}
            assert sum(statuses.values()) == POSTS and set(statuses.values()) == {1}
            assert state["counters"]["calls"]["wechat freepublish/submit"] == POSTS
            assert state["counters"]["calls"]["weibo statuses/share.json"] == POSTS
            with Session(ctx.engine) as s:
                pubs = s.exec(select(Publication).where(Publication.id.in_(ids))).all()
                published_events = s.exec(select(AuditEvent.subject_id)
                                          .where(AuditEvent.action == "publication.published")).all()
            assert all(p.attempts == 1 and p.remote_id for p in pubs), [(p.attempts, p.remote_id, p.last_error) for p in pubs if p.attempts != 1 or not p.remote_id][:5]
            assert sorted(published_events) == sorted(ids)
            # The work was shared: more than one process published.
            per_worker = [w.log().count(" published on ") for w in workers]
            assert sum(per_worker) == len(ids) and sum(1 for n in per_worker if n) >= 2, per_worker
        finally:
            ctx.close()
