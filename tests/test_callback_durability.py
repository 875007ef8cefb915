"""No WeChat message lost in a database outage; replayed and implausibly timed deliveries.

The database is really made unwritable: SQLite locked by another connection (the tests run as root,
so a chmod would not stop a write), PostgreSQL stopped with pg_ctl. Meanwhile deliveries are
answered from the spool, /healthz says not ready, and after the database is back the worker's job
stores every message exactly once.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot import db
from bot.context import Context
from bot.inbound.processing import process_pending
from bot.inbound.spool import Delivery, Spool
from bot.logthrottle import LogThrottle
from bot.models import InboundDelivery, Message, Reply, Ticket
from bot.seed import sync_from_config
from bot.web.app import create_app
from tests.conftest import _start_postgres
from tests.test_callback import PLAIN, payload, signed

FAST = {"callback": {"store_timeout_s": 0.2}}
QUESTION = "请问社保卡丢了怎么补办？"  # an FAQ candidate: answered in the request when the database is up


def text_xml(msg_id: int, content: str, create_time: int | None = None) -> bytes:
    return (f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[oDur{msg_id}]]>"
            f"</FromUserName><CreateTime>{create_time or int(time.time())}</CreateTime><MsgType><![CDATA[text]]>"
            f"</MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()


def post(client: TestClient, body: bytes, params: dict | None = None):
    return client.post(f"/wechat/callback/{PLAIN['appid']}", params=params or signed(PLAIN["token"]), content=body)


def stored_keys(ctx: Context) -> list[str]:
    process_pending(ctx)
    with ctx.session() as s:
        return sorted(s.execute(select(Message.dedupe_key)).scalars())


def wait_ready(client: TestClient, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/healthz").status_code != 200:
        assert time.monotonic() < deadline, "healthz did not become ready"
        time.sleep(0.2)


def outage_and_recovery(ctx: Context, stop, start) -> None:
    """Deliveries before, during and after an outage: each stored once, every answer 200."""
    with TestClient(create_app(ctx)) as client:
        assert post(client, text_xml(1, "路灯坏了一个月没人修")).text == "success"
        assert client.get("/healthz").status_code == 200
        stop()
        answers = [post(client, text_xml(i, f"第{i}条：小区垃圾没人清运，投诉")) for i in range(2, 7)]
        answers.append(post(client, text_xml(7, QUESTION)))  # no passive reply possible: a person answers
        answers.append(post(client, text_xml(3, "第3条：小区垃圾没人清运，投诉")))  # WeChat's retry
        answers.append(post(client, text_xml(1, "路灯坏了一个月没人修")))  # stored before the outage
        assert [r.status_code for r in answers] == [200] * 8
        assert all(r.text == "success" for r in answers)
        assert client.get("/healthz").status_code == 503
        assert Spool(ctx.config.path(ctx.config.callback.spool_dir)).pending()  # durable on disk
        start()
        wait_ready(client)
        assert post(client, text_xml(8, "第8条：噪音扰民")).text == "success"
    process_pending(ctx)
    assert stored_keys(ctx) == sorted(f"msg:{i}" for i in range(1, 9))
    assert not Spool(ctx.config.path(ctx.config.callback.spool_dir)).pending()
    with ctx.session() as s:
        assert s.execute(select(func.count()).select_from(Reply)).scalar_one() == 0
        question = s.execute(select(Message).where(Message.dedupe_key == "msg:7")).scalar_one()
        assert s.execute(select(Ticket).where(Ticket.message_id == question.id)).scalar_one()
        pending = s.execute(select(func.count()).select_from(InboundDelivery)
                            .where(InboundDelivery.processed_at.is_(None))).scalar_one()
    assert pending == 0


def test_sqlite_locked_while_messages_arrive(make_config, open_ctx):
    ctx = open_ctx(make_config(FAST))
    path = ctx.config.database_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None, timeout=5)

    def stop():
        lock.execute("BEGIN EXCLUSIVE")  # every other writer now waits, then fails

    def start():
        lock.execute("COMMIT")

    try:
        outage_and_recovery(ctx, stop, start)
    finally:
        lock.close()


@pytest.fixture
def private_postgres() -> Iterator[tuple[str, object, object]]:
    """A PostgreSQL cluster of this test alone (it is stopped and started again)."""
    tmp = Path(tempfile.mkdtemp(prefix="govbot-pg-outage-"))  # outside pytest's root-only temp dirs
    url, stop = _start_postgres(tmp)
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1].parent
    port = url.rsplit(":", 1)[1].split("/")[0]
    run_as = ["runuser", "-u", "postgres", "--"] if shutil.os.geteuid() == 0 else []

    def start():
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(tmp / "data"), "-l", str(tmp / "log"), "-w", "-o",
                        f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True)

    try:
        yield url, stop, start
    finally:
        stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_postgres_stopped_while_messages_arrive(make_config, private_postgres):
    url, stop, start = private_postgres
    db.upgrade(url)
    config = make_config({**FAST, "database": {"url": url}})
    ctx = Context.open(config)
    with ctx.session() as session:
        sync_from_config(session=session, config=config)
    try:
        outage_and_recovery(ctx, stop, start)
    finally:
        ctx.close()


def test_neither_database_nor_spool_answers_503_so_wechat_retries(make_config, open_ctx, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the spool directory should be")
    ctx = open_ctx(make_config({**FAST, "callback": {"store_timeout_s": 0.2, "spool_dir": str(blocked / "spool")}}))
    lock = sqlite3.connect(ctx.config.database_url.removeprefix("sqlite:///"), isolation_level=None, timeout=5)
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        assert post(client, text_xml(1, "路灯坏了")).status_code == 200  # caches the account
        lock.execute("BEGIN EXCLUSIVE")
        assert post(client, text_xml(2, "路灯又坏了")).status_code == 503
        lock.execute("COMMIT")
        wait_ready(client)
        assert post(client, text_xml(2, "路灯又坏了")).status_code == 200  # the retry
    lock.close()
    process_pending(ctx)
    assert stored_keys(ctx) == ["msg:1", "msg:2"]


# ---- replay and time checks --------------------------------------------------------------------


def test_timestamp_outside_the_window_is_refused(ctx):
    with TestClient(create_app(ctx)) as client:
        old = signed(PLAIN["token"], timestamp=str(int(time.time()) - 301))
        assert post(client, payload("text_complaint.xml"), old).status_code == 403
        # Past the window by a minute: the request itself may take a while on a busy machine (at +301 s it
        # came in range once, after more than a second).
        future = signed(PLAIN["token"], timestamp=str(int(time.time()) + 360))
        assert post(client, payload("text_complaint.xml"), future).status_code == 403
        captured_2020 = signed(PLAIN["token"], timestamp="1577836800")
        assert post(client, payload("text_complaint.xml"), captured_2020).status_code == 403
        assert post(client, payload("text_complaint.xml")).status_code == 200
    assert stored_keys(ctx) == ["msg:24512345678901002"]


def test_replayed_signature_with_another_body_is_refused(ctx):
    with TestClient(create_app(ctx)) as client:
        params = signed(PLAIN["token"])
        assert post(client, text_xml(11, "路灯坏了"), params).text == "success"
        # Same timestamp, nonce and signature (plain mode: the body is not signed), a forged message.
        forged = post(client, text_xml(12, "我要投诉某某，他是骗子"), params)
        assert forged.status_code == 403
        # The same message again under the same signature is a redelivery, not an attack.
        assert post(client, text_xml(11, "路灯坏了"), params).text == "success"
    assert stored_keys(ctx) == ["msg:11"]


@pytest.mark.parametrize(("create_time", "untrusted"), [
    ("1577836800", "1577836800"),  # 2020: would be escalated at once
    ("1893456000", "1893456000"),  # 2030: would never be warned
    ("99999999999999999999", "99999999999999999999"),  # beyond any date (was a 500 with secrets in the log)
    (None, None),  # now: believed
])
def test_implausible_create_time_is_replaced_by_the_arrival_time_and_flagged(ctx, create_time, untrusted):
    now = int(time.time())
    body = text_xml(21, "路灯坏了").replace(f"<CreateTime>{now}</CreateTime>".encode(),
                                         f"<CreateTime>{create_time or now}</CreateTime>".encode())
    with TestClient(create_app(ctx)) as client:
        assert post(client, body).status_code == 200
    process_pending(ctx)
    with ctx.session() as s:
        m = s.execute(select(Message)).scalar_one()
    assert m.untrusted_create_time == untrusted
    assert abs(m.received_at.timestamp() - now) < 5


# ---- the spool and the log throttle ------------------------------------------------------------


def test_spool_keeps_one_file_per_delivery_and_checks_nonces(tmp_path):
    from datetime import UTC, datetime

    spool = Spool(tmp_path / "spool")
    d = Delivery(account_id=1, dedupe_key="msg:1", timestamp=1, nonce="n", body="<xml/>",
                 arrived_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert spool.nonce_fresh(d) and spool.nonce_fresh(d)  # the same message again: a redelivery
    spool.put(d)
    spool.put(d)
    (path,) = spool.pending()
    assert Spool.read(path) == d
    other = Delivery(account_id=1, dedupe_key="msg:2", timestamp=1, nonce="n", body="<xml/>", arrived_at=d.arrived_at)
    assert not spool.nonce_fresh(other)
    assert not list((tmp_path / "spool" / "tmp").iterdir())


def test_log_throttle_writes_once_per_interval_with_a_count():
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}", diagnose=False)
    try:
        throttle = LogThrottle(interval_s=0.2)
        written = [throttle.log("db", "ERROR", "database down: {}", "OperationalError") for _ in range(50)]
        assert written.count(True) == 1
        time.sleep(0.25)
        throttle.log("db", "ERROR", "database down: {}", "OperationalError")
    finally:
        logger.remove(sink)
    assert [line.strip() for line in lines] == [
        "database down: OperationalError",
        "database down: OperationalError (49 more like this in the last 0.2 s)",
    ]


def test_processed_deliveries_are_pruned_after_the_retention_pending_ones_never(ctx):
    from datetime import timedelta

    from bot.clock import utcnow
    from bot.inbound.processing import RETENTION, prune_deliveries

    with TestClient(create_app(ctx)) as client:
        assert post(client, text_xml(31, "路灯坏了")).text == "success"
        assert post(client, text_xml(32, "路灯又坏了")).text == "success"
    process_pending(ctx)
    with ctx.session() as s:
        rows = {d.dedupe_key: d for d in s.execute(select(InboundDelivery)).scalars()}
        old = utcnow() - RETENTION - timedelta(minutes=1)
        rows["msg:31"].arrived_at = old
        rows["msg:32"].arrived_at, rows["msg:32"].processed_at = old, None  # still pending: kept
    assert prune_deliveries(ctx) == 1
    with ctx.session() as s:
        assert list(s.execute(select(InboundDelivery.dedupe_key)).scalars()) == ["msg:32"]


def _delivery(ctx: Context, key: str, nonce: str) -> Delivery:
    from bot.clock import utcnow

    return Delivery(account_id=1, dedupe_key=key, timestamp=int(time.time()), nonce=nonce,
                    body="<xml/>", arrived_at=utcnow())


def test_inline_sqlite_store_never_waits_for_the_lock(ctx):
    """In the request on SQLite: stored, duplicate and replay as the writer thread decides them; a
    held write lock gives None at once (the delivery then takes the thread's path), losing nothing."""
    from bot.inbound.rows import InlineSQLite, Outcome

    path = ctx.config.database_url.removeprefix("sqlite:///")
    inline = InlineSQLite(path, ctx.engine.dialect)
    first = _delivery(ctx, "msg:inline-1", "n1")
    assert inline.try_store(first).outcome is Outcome.STORED
    assert inline.try_store(first).outcome is Outcome.DUPLICATE
    replay = Delivery(**{**first.__dict__, "dedupe_key": "msg:inline-other"})  # same timestamp + nonce
    assert inline.try_store(replay).outcome is Outcome.REPLAY
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    assert inline.try_store(_delivery(ctx, "msg:inline-2", "n2")) is None
    assert time.monotonic() - started < 0.1
    lock.execute("COMMIT")
    lock.close()
    assert inline.try_store(_delivery(ctx, "msg:inline-2", "n2")).outcome is Outcome.STORED
    inline.close()
    with ctx.session() as s:
        keys = sorted(s.execute(select(InboundDelivery.dedupe_key)).scalars())
    assert keys == ["msg:inline-1", "msg:inline-2"]


def test_a_short_lock_makes_the_delivery_wait_in_the_writer_thread_not_the_spool(make_config, open_ctx):
    import threading

    ctx = open_ctx(make_config({"callback": {"store_timeout_s": 3}}))
    path = ctx.config.database_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    with TestClient(create_app(ctx)) as client:
        assert post(client, text_xml(1, "路灯坏了一个月没人修")).text == "success"  # lock free: in the request
        lock.execute("BEGIN IMMEDIATE")
        threading.Timer(0.5, lambda: lock.execute("COMMIT")).start()
        started = time.monotonic()
        assert post(client, text_xml(2, "小区垃圾没人清运")).text == "success"
        assert time.monotonic() - started >= 0.4  # it waited for the lock
        lock.execute("BEGIN IMMEDIATE")
        threading.Timer(0.5, lambda: lock.execute("COMMIT")).start()
        answer = post(client, text_xml(3, QUESTION))  # the FAQ answer comes through the thread's path too
        assert "<Content>" in answer.text
    lock.close()
    assert not Spool(ctx.config.path(ctx.config.callback.spool_dir)).pending()
    with ctx.session() as s:
        assert sorted(s.execute(select(InboundDelivery.dedupe_key)).scalars()) == ["msg:1", "msg:2", "msg:3"]
    process_pending(ctx)
    with ctx.session() as s:
        (reply,) = s.execute(select(Reply)).scalars()
        assert reply.state == "sent" and reply.sender_id == "oDur3" and reply.text in answer.text
