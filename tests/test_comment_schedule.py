"""WeChat comments without gaps and within budget: 30 articles of different ages over simulated hours,
comments arriving at the end of the list and at lower offsets (the list is not append-only)."""

from __future__ import annotations

import random
from datetime import timedelta

import httpx
from sqlalchemy import func
from sqlmodel import Session, select

from bot.clock import at, utcnow
from bot.connectors.quota import budget_overview
from bot.inbound.polling import poll_comments
from bot.inbound.schedule import DAY, next_poll, poll_interval
from bot.models import Message, Post, Publication, QuotaUsage, User
from tests.test_polling import publish

FRESH = 300.0


def test_interval_follows_age_and_activity():
    assert poll_interval(age_s=3600, since_new_s=None, fresh_s=FRESH) == FRESH
    assert poll_interval(age_s=2 * DAY, since_new_s=None, fresh_s=FRESH) == 4 * FRESH
    assert poll_interval(age_s=5 * DAY, since_new_s=None, fresh_s=FRESH) == 12 * FRESH
    assert poll_interval(age_s=20 * DAY, since_new_s=None, fresh_s=FRESH) == 48 * FRESH
    # A busy old article is polled like a new one.
    assert poll_interval(age_s=20 * DAY, since_new_s=600, fresh_s=FRESH) == FRESH
    now = utcnow()
    assert next_poll(now=now, published_at=now - timedelta(days=10), last_new_at=None, fresh_s=FRESH) == \
        now + timedelta(seconds=48 * FRESH)


def _articles(ectx, emulator, n: int) -> list[Publication]:
    """n articles published on the emulator, recorded as published 0..n-1 days ago."""
    account, first = publish(ectx, "wechat")
    pubs = [first]
    for _ in range(n - 1):
        pubs.append(publish(ectx, "wechat")[1])
    now = utcnow()
    with ectx.session() as s:
        for age, pub in enumerate(pubs):
            row = s.get(Publication, pub.id)
            row.published_at = now - timedelta(days=age, minutes=1)
    return pubs


def comment(emulator: str, pub: Publication, text: str, position: int | None = None) -> None:
    body = {"msg_data_id": pub.remote_msg_data_id, "index": 0, "openid": f"o{abs(hash(text)) % 10**8}",
            "content": text}
    if position is not None:
        body["position"] = position
    httpx.post(f"{emulator}/_emulator/wechat/comments", json=body).raise_for_status()


def stored(ectx) -> set[str]:
    with Session(ectx.engine) as s:
        return set(s.exec(select(Message.text).where(Message.kind == "wechat_comment")).all())


def test_comment_inserted_at_a_lower_offset_is_collected_by_the_rescan(ectx, emulator):
    [pub] = _articles(ectx, emulator, 1)
    for i in range(60):
        comment(emulator, pub, f"早先的留言{i}")
    start = utcnow()
    with at(start):
        assert poll_comments(ectx).new == 60
    comment(emulator, pub, "插在前面的留言", position=0)
    comment(emulator, pub, "末尾的新留言")
    with at(start + timedelta(minutes=6)):
        poll_comments(ectx)
    # The tail read finds the new last one; the one at offset 0 is behind the cursor.
    assert "末尾的新留言" in stored(ectx) and "插在前面的留言" not in stored(ectx)
    with at(start + timedelta(seconds=ectx.config.polling.full_rescan_s + 1)):
        poll_comments(ectx)
    assert "插在前面的留言" in stored(ectx) and len(stored(ectx)) == 62


def test_thirty_articles_of_different_ages_collect_every_comment_within_the_budget(ectx, emulator):
    pubs = _articles(ectx, emulator, 30)
    rng = random.Random(7)
    expected: set[str] = set()
    start = utcnow()
    hours, tick = 8, 10
    steps = hours * 60 // tick
    for step in range(steps + 1):  # every 10 minutes for 8 hours
        moment = start + timedelta(minutes=tick * step)
        # Comments stop 6 hours before the end, so even the oldest articles get a rescan afterwards.
        if step % 3 == 0 and step < steps - 6 * 60 // tick:
            # New comments, mostly under new articles, some at the top of an old article's list.
            for _ in range(3):
                pub = pubs[min(29, int(rng.expovariate(0.3)))]
                text = f"留言{len(expected)}"
                comment(emulator, pub, text, position=0 if rng.random() < 0.3 else None)
                expected.add(text)
        with at(moment):
            report = poll_comments(ectx)
            assert not [e for e in report.errors if "budget" in e], report.errors
    assert stored(ectx) == expected
    calls = httpx.get(f"{emulator}/_emulator/state").json()["counters"]["calls"]
    listed = calls.get("wechat comment/list", 0)
    with Session(ectx.engine) as s:
        windows = s.exec(select(QuotaUsage).where(QuotaUsage.account_id == pubs[0].account_id,
                                                  QuotaUsage.api == "comment/list")).all()
        today = {b.api: b for b in budget_overview(s, pubs[0].account_id, config=ectx.config, now=start)}
    share = ectx.config.polling.comment_budget_share
    # Every call was spent from the ledger (in the Beijing day it fell in), each day's spend within
    # polling's share; old articles were polled rarely (all 30 every 10 minutes: 1,470 calls).
    assert sum(w.used for w in windows) == listed
    assert all(w.used <= share * w.limit for w in windows) and today["comment/list"].limit == 10000
    assert listed < 400, listed


def test_polling_budget_share_is_enforced(ectx, emulator, make_config, open_ctx):
    pubs = _articles(ectx, emulator, 3)
    for pub in pubs:
        comment(emulator, pub, f"留言{pub.id}")
    # A budget of 4 comment/list calls a day, of which polling may spend half: two articles today.
    from bot.context import Context
    tight = Context(config=make_config({"quotas": {"wechat": {"comment/list": 4}}},
                                       emulator_url=ectx.config.wechat_api_base.split("/wechat/")[0]),
                    engine=ectx.engine)
    report = poll_comments(tight)
    assert report.new == 2 and any("budget of 2 of 4 calls spent" in e for e in report.errors)
    with Session(ectx.engine) as s:
        assert s.exec(select(func.count()).select_from(Post)).one() >= 3
        assert s.exec(select(User)).first() is not None
