"""ingest: stored once (also under a race between two writers), classified, routed, ticketed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot import db
from bot.context import Context
from bot.inbound import store
from bot.inbound.store import Incoming, ingest
from bot.models import Department, Message, Reply, Ticket


def incoming(ctx: Context, text: str, key: str, *, sender: str = "oCitizen", kind: str = "wechat_message",
             **kw) -> Incoming:
    return Incoming(account_id=1, kind=kind, dedupe_key=key, received_at=datetime(2026, 3, 2, 1, 0, tzinfo=UTC),
                    sender_id=sender, text=text, own_id="gh_x", **kw)


def run(ctx: Context, inc: Incoming):
    with ctx.session() as s:
        return ingest(session=s, ctx=ctx, incoming=inc)


def dept_name(ctx: Context, dept_id: int | None) -> str | None:
    with ctx.session() as s:
        return s.get(Department, dept_id).name if dept_id else None


def count(ctx: Context, model) -> int:
    with ctx.session() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def test_duplicate_returns_the_first_copy(ctx):
    first = run(ctx, incoming(ctx, "小区门口的路灯坏了一个多月了，没人管，请尽快维修！", "msg:1"))
    again = run(ctx, incoming(ctx, "different text, same id", "msg:1"))
    assert first.created and not again.created
    assert again.message.id == first.message.id and again.message.text == first.message.text
    assert again.ticket is not None and again.ticket.id == first.ticket.id
    assert count(ctx, Message) == 1 and count(ctx, Ticket) == 1


def test_same_key_on_another_account_is_another_message(ctx):
    run(ctx, incoming(ctx, "点赞", "msg:1"))
    run(ctx, Incoming(account_id=2, kind="wechat_message", dedupe_key="msg:1", received_at=datetime.now(UTC), text="点赞"))
    assert count(ctx, Message) == 2


@pytest.mark.parametrize(("text", "topic", "department"), [
    ("小区门口的路灯坏了一个多月了，物业没人管，强烈要求维修！", "城乡建设", "住建局"),
    ("我家附近的工厂每天夜里排放黑烟，气味刺鼻，严重污染环境，请环保部门查处！", "环境保护", "生态环境局"),
    ("你们的工作人员态度太差了，投诉！", None, "政务公开办"),
])
def test_topic_routes_to_department(ctx, text, topic, department):
    r = run(ctx, incoming(ctx, text, "msg:route"))
    assert r.message.intent == "complaint"
    assert r.message.topic == topic
    assert dept_name(ctx, r.message.department_id) == department
    assert r.ticket is not None and dept_name(ctx, r.ticket.department_id) == department


def test_triage_result_is_stored_and_explainable(ctx):
    r = run(ctx, incoming(ctx, "小区门口的路灯坏了一个多月了，没人管", "msg:explain"))
    m = r.message
    assert m.intent == "complaint" and m.needs_answer and not m.spam and 0 < m.confidence <= 1
    assert "路灯" in m.rules and ":" in m.rules


@pytest.mark.parametrize("text", ["点赞👍 政府办事效率真高，谢谢！", "沙发", "加微信 领红包 http://spam.example 兼职刷单日结"])
def test_praise_spam_and_other_never_make_tickets(ctx, text):
    r = run(ctx, incoming(ctx, text, f"msg:{hash(text)}"))
    assert r.created and r.ticket is None and r.auto_reply is None
    assert not r.message.needs_answer
    assert count(ctx, Ticket) == 0


def test_ticket_deadline_counts_working_days(ctx):
    # Friday 2026-02-13, the last working day before Spring Festival; 2026-02-14 is a 调休 Saturday.
    r = run(ctx, Incoming(account_id=1, kind="wechat_message", dedupe_key="msg:sf",
                          received_at=datetime(2026, 2, 13, 2, 0, tzinfo=UTC), sender_id="o1",
                          text="小区门口的路灯坏了一个多月了，没人管，请尽快维修！"))
    assert r.ticket is not None
    assert r.ticket.created_at == datetime(2026, 2, 13, 2, 0, tzinfo=UTC)
    assert r.ticket.resolution_due > datetime(2026, 2, 24, tzinfo=UTC)  # the holiday does not count


def test_comment_kind_gets_pending_reply_not_passive(ctx):
    r = run(ctx, incoming(ctx, "请问社保卡丢了怎么补办？", "a/0/1", kind="wechat_comment"))
    assert r.auto_reply is not None and r.auto_reply.state == "pending" and r.auto_reply.channel == "wechat_comment"
    assert r.message.replied_at is None  # counts as a reply once it is sent


def test_already_replied_comment_is_not_auto_answered(ctx):
    r = run(ctx, incoming(ctx, "请问社保卡丢了怎么补办？", "a/0/2", kind="wechat_comment", already_replied=True))
    assert r.auto_reply is None and r.message.replied_at is not None


def test_two_writers_race_store_one_message(ctx, monkeypatch):
    """Two processes get the same delivery at once: one stores it, the other finds that copy."""
    other = Context(config=ctx.config, engine=db.make_engine(ctx.config.database_url), worker_id="w2")
    other.rules = ctx.rules
    real = store.open_ticket
    entered = threading.Event()

    def slow_open_ticket(**kw):
        entered.set()
        time.sleep(0.5)  # the first writer holds its transaction (with the new row) open while the second arrives
        return real(**kw)

    monkeypatch.setattr(store, "open_ticket", slow_open_ticket)
    results: dict[str, object] = {}

    def first():
        results["a"] = run(ctx, incoming(ctx, "小区门口的路灯坏了，没人管", "msg:race"))

    def second():
        entered.wait(5)
        results["b"] = run(other, incoming(other, "小区门口的路灯坏了，没人管", "msg:race"))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    finally:
        other.engine.dispose()
    a, b = results["a"], results["b"]
    assert a.created and not b.created
    assert a.message.id == b.message.id
    assert count(ctx, Message) == 1 and count(ctx, Ticket) == 1 and count(ctx, Reply) == 0


# ---- PostgreSQL: the same guarantees with real concurrent transactions --------------------------


@pytest.fixture
def pg_ctx(make_config, pg_database) -> Iterator[Context]:
    from bot.seed import sync_from_config

    ctx = Context.open(make_config({"database": {"url": pg_database}}))
    with ctx.session() as s:
        sync_from_config(session=s, config=ctx.config)
    yield ctx
    ctx.close()


def test_postgres_two_writers_race_store_one_message(pg_ctx, monkeypatch):
    test_two_writers_race_store_one_message(pg_ctx, monkeypatch)


def test_postgres_duplicate_and_ticket(pg_ctx):
    first = run(pg_ctx, incoming(pg_ctx, "小区门口的路灯坏了一个多月了，没人管，请尽快维修！", "msg:pg"))
    again = run(pg_ctx, incoming(pg_ctx, "小区门口的路灯坏了一个多月了，没人管，请尽快维修！", "msg:pg"))
    assert first.created and not again.created and again.ticket.id == first.ticket.id
    assert count(pg_ctx, Message) == 1 and count(pg_ctx, Ticket) == 1


def test_postgres_poll_lease(pg_ctx):
    from bot.inbound.polling import release_lease, take_lease

    other = Context(config=pg_ctx.config, engine=pg_ctx.engine, worker_id="other:9")
    assert take_lease(pg_ctx, 1, seconds=60) and not take_lease(other, 1, seconds=60)
    release_lease(pg_ctx, 1)
    assert take_lease(other, 1, seconds=60)
