"""The quota ledger: windows on Beijing time, a budget shared by concurrent spenders is never overspent."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from bot import db
from bot.connectors.quota import Ledger, QuotaWait, limits_for, window_of
from bot.models import Account, QuotaUsage


def test_windows_are_beijing_days_and_hours():
    w = window_of(datetime(2026, 12, 2, 15, 59, 59, tzinfo=UTC), 86400)  # 23:59:59 in Beijing
    assert (w.start, w.end) == (datetime(2026, 12, 1, 16, tzinfo=UTC), datetime(2026, 12, 2, 16, tzinfo=UTC))
    assert window_of(w.end, 86400).start == w.end
    h = window_of(datetime(2026, 12, 2, 15, 30, tzinfo=UTC), 3600)
    assert (h.start, h.end) == (datetime(2026, 12, 2, 15, tzinfo=UTC), datetime(2026, 12, 2, 16, tzinfo=UTC))


def test_limits_come_from_the_docs_then_the_platform_then_the_account(make_config):
    cfg = make_config({"quotas": {"wechat": {"freepublish/get": 50}}, "platforms": {"weibo": {"app_level": "normal"}}})
    assert limits_for(cfg, "wechat", "示例县发布")["freepublish/get"] == 50
    assert limits_for(cfg, "wechat", "示例县发布")["freepublish/submit"] == 100
    assert limits_for(cfg, "weibo", "示例县发布微博")["calls"] == 1000
    data = {"accounts": [{"name": "x", "platform": "wechat", "appid": "wx1", "quotas": {"draft/add": 7}}]}
    cfg = make_config(data)
    assert limits_for(cfg, "wechat", "x")["draft/add"] == 7 and limits_for(cfg, "wechat", "y")["draft/add"] == 1000


def _race(engine, account_id: int, *, limit: int, spenders: int, each: int) -> int:
    ledger = Ledger(engine, account_id=account_id, platform="wechat", limits={"freepublish/get": limit}, window_s=86400)
    spent = []
    lock = threading.Lock()
    start = threading.Barrier(spenders)

    def spend() -> None:
        start.wait()
        for _ in range(each):
            try:
                ledger.spend("freepublish/get")
            except QuotaWait:
                continue
            with lock:
                spent.append(1)

    threads = [threading.Thread(target=spend) for _ in range(spenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(spent)


def test_concurrent_spenders_never_overspend_sqlite(ctx):
    with Session(ctx.engine) as s:
        account_id = s.exec(select(Account.id)).first()
    assert _race(ctx.engine, account_id, limit=40, spenders=6, each=12) == 40
    with Session(ctx.engine) as s:
        [row] = s.exec(select(QuotaUsage)).all()
    assert row.used == 40 and row.limit == 40


def test_concurrent_spenders_never_overspend_postgresql(pg_database):
    engine = db.make_engine(pg_database)
    with Session(engine) as s:
        account = Account(name="公众号", platform="wechat", remote_id="wxpg")
        s.add(account)
        s.commit()
        account_id = account.id
    try:
        assert _race(engine, account_id, limit=40, spenders=6, each=12) == 40
        ledger = Ledger(engine, account_id=account_id, platform="wechat", limits={"freepublish/get": 40}, window_s=86400)
        ledger.close("freepublish/submit")  # an API without a limit of its own, closed by the platform's 45009
        with pytest.raises(QuotaWait):
            ledger.spend("freepublish/submit")
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        ledger.spend("freepublish/submit", now=tomorrow)
        ledger.spend("freepublish/get", now=tomorrow)
    finally:
        engine.dispose()
