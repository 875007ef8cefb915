"""Bursts of due posts: seen without waiting for a tick, begun in batches, recorded after the calls."""

from __future__ import annotations

from sqlmodel import Session, select

from bot.connectors.quota import Ledger, QuotaWait
from bot.models import Account, AuditEvent, Post, Publication, QuotaUsage
from tests.test_scheduler import WECHAT, WEIBO, publisher, run, sctx  # noqa: F401  (fixtures)
from tests.test_scheduler_support import accounts, copies, emulator_state, schedule, signed_post, wait_for


def test_a_post_committed_as_due_is_published_without_a_tick(sctx, publisher, emulator):  # noqa: F811
    # Nobody calls tick(): the publisher's own wake-up claims it, and its recorder writes the outcome.
    with sctx.session() as s:
        post = signed_post(s, sctx.config, title="临时交通管制通告")
        pub_id = schedule(s, post, accounts(s)[WEIBO]).id

    def published() -> bool:
        with Session(sctx.engine) as s:
            return s.get(Publication, pub_id).state == "published"

    wait_for(published, timeout=5, what="the publication published by the wake-up alone")
    with Session(sctx.engine) as s:
        pub = s.get(Publication, pub_id)
        assert pub.attempts == 1 and pub.remote_id and pub.lease_owner is None
        assert len(s.exec(select(AuditEvent).where(AuditEvent.action == "publication.published",
                                                   AuditEvent.subject_id == pub_id)).all()) == 1
    assert copies(emulator_state(emulator), weibo_text=post.weibo_text) == 1


def test_a_burst_goes_out_once_each_and_refused_ones_alone_are_refused(sctx, publisher, emulator):  # noqa: F811
    with sctx.session() as s:
        accs = accounts(s)
        posts = [signed_post(s, sctx.config, title=f"防汛第{i}号通知") for i in range(12)]
        ids = [schedule(s, post, accs[WECHAT if i % 2 else WEIBO]).id for i, post in enumerate(posts)]
        # Edited after its sign-off: the pre-publish look of the batch refuses this one only.
        s.get(Post, posts[3].id).content_hash = "edited"
    pubs = run(publisher, ids, timeout=30)
    refused = pubs.pop(ids[3])
    assert refused.state == "cancelled" and refused.attempts == 0
    assert {p.state for p in pubs.values()} == {"published"}
    assert all(p.attempts == 1 and p.published_at >= p.due_at for p in pubs.values())
    state = emulator_state(emulator)
    for i, post in enumerate(posts):
        held = copies(state, title=post.title) if i % 2 else copies(state, weibo_text=post.weibo_text)
        assert held == (0 if i == 3 else 1), post.title
    with Session(sctx.engine) as s:
        assert len(s.exec(select(AuditEvent).where(AuditEvent.action == "publication.published")).all()) == 11
        statuses = {p.id: p.status for p in s.exec(select(Post).where(Post.id.in_([p.id for p in posts])))}
    assert [statuses[p.id] for p in posts].count("published") == 11


def test_a_request_counts_against_all_its_budgets_or_none(ctx):
    with Session(ctx.engine) as s:
        account_id = s.exec(select(Account.id)).first()
    ledger = Ledger(ctx.engine, account_id=account_id, platform="weibo",
                    limits={"statuses/share": 30, "calls": 2}, window_s=3600)
    ledger.spend("statuses/share", "calls")
    ledger.spend("calls")
    try:
        ledger.spend("statuses/share", "calls")
        raise AssertionError("the spent budget of all calls let a post through")
    except QuotaWait as e:
        assert e.api == "calls"
    with Session(ctx.engine) as s:
        used = {row.api: row.used for row in s.exec(select(QuotaUsage))}
    # The post that could not be paid for is not counted against the posting budget either.
    assert used == {"statuses/share": 1, "calls": 2}


def test_a_batch_that_cannot_start_is_let_go_not_held(sctx, publisher, monkeypatch):  # noqa: F811
    from bot.publishing import checks

    def broken(**_):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(checks, "recheck_publications", broken)
    with sctx.session() as s:
        post = signed_post(s, sctx.config, title="停电检修通知")
        pub_id = schedule(s, post, accounts(s)[WEIBO]).id

    def claimed_then_let_go() -> bool:
        with Session(sctx.engine) as s:
            claimed = s.get(Publication, pub_id).lease_owner == publisher.owner
        return claimed and pub_id not in publisher.inflight

    # Claimed by the wake-up, then let go: no longer renewed, its lease lapses and a later claim retries it.
    wait_for(claimed_then_let_go, timeout=5, what="the publication claimed and let go")
    with Session(sctx.engine) as s:
        pub = s.get(Publication, pub_id)
        assert (pub.state, pub.attempts, pub.first_attempt_at) == ("pending", 0, None)
