"""The publishing scheduler against the live emulator: once per account, faults, checks, missed posts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import time, timedelta

import pytest
from sqlmodel import Session, select

from bot.clock import to_local, utcnow
from bot.config import Config
from bot.connectors.registry import connector_for
from bot.context import Context
from bot.models import AuditEvent, KeyValue, Post, Publication
from bot.publishing.scheduler import Publisher
from bot.publishing.settle import handle_missed
from bot.service import register_emulator_accounts
from bot.worker import job_specs
from tests.test_scheduler_support import (
    accounts,
    ago,
    arm,
    copies,
    emulator_state,
    schedule,
    settled,
    signed_post,
    wait_for,
)

WECHAT, WEIBO = "示例县发布", "示例县发布微博"
FAST = {"scheduler": {"backoff_base_s": 0.1, "backoff_max_s": 0.4, "lease_seconds": 5, "max_attempts": 5,
                      "publish_poll_timeout_s": 10.0,
                      # No callback server here: jobs are settled by these freepublish/get checks.
                      "publish_status_checks_s": [0.3, 0.5]},
        "platforms": {"wechat": {"timeout_s": 1.0}, "weibo": {"timeout_s": 1.0}}}


@pytest.fixture
def sctx(make_config: Callable[..., Config], open_ctx: Callable[[Config], Context], emulator: str) -> Context:
    ctx = open_ctx(make_config(FAST, emulator_url=emulator))
    register_emulator_accounts(ctx, emulator_url=emulator)
    return ctx


@pytest.fixture
def publisher(sctx: Context) -> Iterator[Publisher]:
    p = Publisher(sctx)
    yield p
    p.stop()


def due(ctx: Context, title: str, targets: tuple[str, ...] = (WECHAT, WEIBO), **post_fields) -> tuple[Post, list[int]]:
    with ctx.session() as s:
        post = signed_post(s, ctx.config, title=title, **post_fields)
        accs = accounts(s)
        ids = [schedule(s, post, accs[name]).id for name in targets]
    return post, ids


def run(publisher: Publisher, ids: list[int], timeout: float = 20.0) -> dict[int, Publication]:
    """Tick like the worker does until every publication has an outcome."""
    ctx = publisher.ctx

    def done() -> bool:
        publisher.tick()
        return settled(lambda: Session(ctx.engine), ids)

    wait_for(done, timeout=timeout, what=f"publications {ids}")
    publisher.tick()  # settles the posts of the publications that just ended
    with Session(ctx.engine) as s:
        return {p.id: p for p in s.exec(select(Publication).where(Publication.id.in_(ids)))}


def events(ctx: Context, action: str) -> list[AuditEvent]:
    with Session(ctx.engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)))


def test_publishes_once_per_account_and_marks_the_post_published(sctx, publisher, emulator):
    post, ids = due(sctx, "春季防火通告")
    pubs = run(publisher, ids)
    assert {p.state for p in pubs.values()} == {"published"}
    wechat, weibo = pubs[ids[0]], pubs[ids[1]]
    assert wechat.remote_id and wechat.remote_publish_id and wechat.remote_msg_data_id and wechat.remote_url
    assert wechat.remote_media_id and wechat.remote_draft_id and wechat.attempts == 1
    assert weibo.remote_id and weibo.remote_url.endswith(weibo.remote_id)
    assert all(p.published_at >= p.due_at for p in pubs.values())
    state = emulator_state(emulator)
    assert copies(state, title="春季防火通告") == 1
    assert copies(state, weibo_text=post.weibo_text) == 1
    with Session(sctx.engine) as s:
        assert s.get(Post, post.id).status == "published"
    assert len(events(sctx, "publication.published")) == 2
    assert len(events(sctx, "post.published")) == 1


def test_server_errors_and_timeouts_are_retried_and_published_once(sctx, publisher, emulator):
    arm(emulator, "wechat", "draft/add", "http_500", count=2)
    arm(emulator, "wechat", "freepublish/submit", "timeout", delay_s=3)
    arm(emulator, "weibo", "statuses/share.json", "http_500", status=502)
    arm(emulator, "weibo", "statuses/share.json", "timeout", delay_s=3)
    post, ids = due(sctx, "供水管网检修通知")
    pubs = run(publisher, ids, timeout=30)
    assert {p.state for p in pubs.values()} == {"published"}
    assert pubs[ids[0]].attempts == 4 and pubs[ids[1]].attempts == 3
    state = emulator_state(emulator)
    assert copies(state, title="供水管网检修通知") == 1
    assert copies(state, weibo_text=post.weibo_text) == 1
    # The cover was uploaded once: the stored thumb_media_id was reused by every retry.
    assert sum(1 for m in state["wechat"]["media"].values() if m["appid"] == "wxdemo0000000001") == 1


def test_accepted_but_unanswered_publish_is_reconciled_not_repeated(sctx, publisher, emulator):
    # The platform takes the post, then the answer never arrives in time: the retry must find it.
    arm(emulator, "wechat", "freepublish/submit", "accept_then_hang", delay_s=3)
    arm(emulator, "weibo", "statuses/share.json", "accept_then_hang", delay_s=3)
    post, ids = due(sctx, "重点工程建设进展")
    pubs = run(publisher, ids, timeout=30)
    assert {p.state for p in pubs.values()} == {"published"}
    state = emulator_state(emulator)
    assert copies(state, title="重点工程建设进展") == 1
    assert copies(state, weibo_text=post.weibo_text) == 1
    reconciled = [e.detail["reconciled"] for e in events(sctx, "publication.published")]
    assert reconciled == [True, True]


def test_expired_wechat_token_is_refreshed_and_published(sctx, publisher, emulator):
    _, ids = due(sctx, "医保缴费提醒", targets=(WECHAT,))
    with sctx.session() as s:
        connector_for(sctx, accounts(s)[WECHAT]).token.current()
    with Session(sctx.engine) as s:
        before = s.get(KeyValue, "wechatpy:wxdemo0000000001_access_token").value
    arm(emulator, "wechat", "draft/add", "token_expired")
    pubs = run(publisher, ids)
    assert pubs[ids[0]].state == "published" and pubs[ids[0]].attempts == 1
    with Session(sctx.engine) as s:
        assert s.get(KeyValue, "wechatpy:wxdemo0000000001_access_token").value != before
    assert copies(emulator_state(emulator), title="医保缴费提醒") == 1


def test_rejected_content_fails_with_the_platforms_message(sctx, publisher, emulator):
    arm(emulator, "wechat", "freepublish/submit", "reject")
    arm(emulator, "weibo", "statuses/share.json", "reject")
    post, ids = due(sctx, "政策解读")
    pubs = run(publisher, ids)
    wechat, weibo = pubs[ids[0]], pubs[ids[1]]
    assert wechat.state == weibo.state == "failed"
    assert "publish_status 4" in wechat.last_error and "审核不通过" in wechat.last_error
    assert "Content is illegal!" in weibo.last_error
    assert wechat.attempts == weibo.attempts == 1
    with Session(sctx.engine) as s:
        assert s.get(Post, post.id).status == "failed"
    failed = events(sctx, "publication.failed")
    assert {e.detail["account"] for e in failed} == {WECHAT, WEIBO}


def test_platform_quota_errors_wait_for_the_next_window_and_never_fail(sctx, publisher, emulator):
    arm(emulator, "wechat", "freepublish/submit", "rate_limit")
    arm(emulator, "weibo", "statuses/share.json", "rate_limit")
    post, ids = due(sctx, "防汛工作部署")

    def waiting() -> bool:
        publisher.tick()
        with Session(sctx.engine) as s:
            return all(s.get(Publication, i).step.startswith("quota:") for i in ids)

    wait_for(waiting, timeout=20, what="both publications waiting for their budgets")
    with Session(sctx.engine) as s:
        wechat, weibo = (s.get(Publication, i) for i in ids)
        assert s.get(Post, post.id).status == "scheduled"
    assert (wechat.state, wechat.step, wechat.attempts) == ("pending", "quota:freepublish/submit", 0)
    assert "45009" in wechat.last_error and "next window" in wechat.last_error
    # WeChat counts per Beijing day: the wait ends at the next midnight there.
    assert to_local(wechat.next_attempt_at, "Asia/Shanghai").time() == time(0, 0)
    assert (weibo.state, weibo.step, weibo.attempts) == ("pending", "quota:calls", 0)
    assert 0 < (weibo.next_attempt_at - utcnow()).total_seconds() <= 3600


def test_weibo_token_expiry_is_permanent(sctx, publisher, emulator):
    arm(emulator, "weibo", "statuses/share.json", "token_expired")
    _, ids = due(sctx, "交通管制公告", targets=(WEIBO,))
    pub = run(publisher, ids)[ids[0]]
    assert pub.state == "failed" and "expired_token" in pub.last_error and "authorise" in pub.last_error


def test_transient_errors_give_up_after_max_attempts(sctx, publisher, emulator):
    arm(emulator, "weibo", "statuses/share.json", "http_500", count=10)
    post, ids = due(sctx, "停电检修通知", targets=(WEIBO,))
    pub = run(publisher, ids)[ids[0]]
    assert pub.state == "failed" and pub.attempts == 5
    assert pub.last_error.startswith("已尝试 5 次仍未成功")
    assert copies(emulator_state(emulator), weibo_text=post.weibo_text) == 0


def test_edit_after_scheduling_cancels(sctx, publisher, emulator):
    post, ids = due(sctx, "招聘公告")
    with sctx.session() as s:
        row = s.get(Post, post.id)
        row.title, row.content_hash, row.version = "招聘公告（更正）", "edited", 2
        s.add(row)
    pubs = run(publisher, ids)
    assert {p.state for p in pubs.values()} == {"cancelled"}
    assert "在排期后被修改" in pubs[ids[0]].last_error
    state = emulator_state(emulator)
    assert not state["wechat"]["drafts"] and not state["weibo"]["statuses"]


def test_failed_prepublish_check_blocks_publishing(sctx, publisher, emulator):
    _, ids = due(sctx, "内部机密文件摘要")
    pubs = run(publisher, ids)
    assert {p.state for p in pubs.values()} == {"failed"}
    assert all(p.last_error.startswith("发布前复查未通过：") and "机密" in p.last_error
               for p in pubs.values())
    assert not emulator_state(emulator)["wechat"]["drafts"]
    assert len(events(sctx, "publication.check_failed")) == 2


def test_dead_workers_publication_is_reconciled(sctx, publisher, emulator):
    """A worker published, then died before storing the result: its lease lapses, the next one finds the post."""
    post, ids = due(sctx, "民生实事公示")
    with sctx.session() as s:
        pubs = {p.id: p for p in s.exec(select(Publication).where(Publication.id.in_(ids)))}
        accs = {a.id: a for a in accounts(s).values()}
    stored: dict[int, dict[str, str]] = {}
    for pub_id in ids:
        connector = connector_for(sctx, accs[pubs[pub_id].account_id])
        with Session(sctx.engine) as s:
            outgoing = publisher._outgoing(s, pubs[pub_id], post)
        connector.publish(outgoing, progress=lambda step, got, i=pub_id: stored.setdefault(i, {}).update(got),
                          resume={})
    with sctx.session() as s:
        for pub_id in ids:
            row = s.get(Publication, pub_id)
            row.state, row.step, row.attempts = "publishing", "poll", 1
            row.first_attempt_at = ago(5)
            row.lease_owner, row.lease_until = "dead-host:1", ago(1)
            # Only the draft id reached the database before the crash.
            row.remote_draft_id = stored.get(pub_id, {}).get("draft_id")
            s.add(row)
    result = run(publisher, ids)
    assert {p.state for p in result.values()} == {"published"}
    assert all(p.attempts == 2 for p in result.values())
    state = emulator_state(emulator)
    assert copies(state, title="民生实事公示") == 1
    assert copies(state, weibo_text=post.weibo_text) == 1


def test_live_lease_is_not_taken(sctx, publisher):
    _, ids = due(sctx, "值班安排", targets=(WEIBO,))
    with sctx.session() as s:
        row = s.get(Publication, ids[0])
        row.state, row.lease_owner, row.lease_until = "publishing", "other-host:7", utcnow() + timedelta(seconds=60)
        s.add(row)
    publisher.tick()
    assert not publisher.inflight
    with Session(sctx.engine) as s:
        assert s.get(Publication, ids[0]).lease_owner == "other-host:7"


def test_missed_posts_flagged_beyond_grace_and_sent_within(sctx, publisher, emulator):
    grace = sctx.config.scheduler.missed_grace_minutes
    with sctx.session() as s:
        accs = accounts(s)
        old = signed_post(s, sctx.config, title="过期的通知")
        recent = signed_post(s, sctx.config, title="刚到点的通知")
        old_id = schedule(s, old, accs[WEIBO], due_at=ago(grace * 60 + 60)).id
        recent_id = schedule(s, recent, accs[WEIBO], due_at=ago(grace * 60 - 60)).id
    assert handle_missed(sctx) == 1
    assert handle_missed(sctx) == 0
    pubs = run(publisher, [old_id, recent_id])
    assert pubs[old_id].state == "missed" and "当时系统未运行" in pubs[old_id].last_error
    assert pubs[recent_id].state == "published"
    assert len(events(sctx, "publication.missed")) == 1
    with Session(sctx.engine) as s:
        assert s.get(Post, old.id).status == "failed"


def test_prepared_ahead_then_published_at_its_time(sctx, publisher, emulator):
    due_at = utcnow() + timedelta(seconds=2)
    with sctx.session() as s:
        post = signed_post(s, sctx.config, title="元旦假期安排")
        accs = accounts(s)
        ids = [schedule(s, post, accs[name], due_at=due_at).id for name in (WECHAT, WEIBO)]

    def prepared() -> bool:
        publisher.tick()
        with Session(sctx.engine) as s:
            return bool(s.get(Publication, ids[0]).remote_draft_id)

    wait_for(prepared, what="the WeChat draft to be prepared")
    assert utcnow() < due_at
    state = emulator_state(emulator)
    assert len(state["wechat"]["drafts"]) == 1 and not state["wechat"]["publishes"] and not state["weibo"]["statuses"]
    with Session(sctx.engine) as s:
        assert {s.get(Publication, i).state for i in ids} == {"publishing"}
    pubs = run(publisher, ids)
    assert {p.state for p in pubs.values()} == {"published"}
    assert all(timedelta(0) <= p.published_at - p.due_at < timedelta(seconds=1) for p in pubs.values()), [
        (p.published_at, p.due_at) for p in pubs.values()]
    assert all(p.attempts == 1 for p in pubs.values())
    assert copies(emulator_state(emulator), title="元旦假期安排") == 1


def test_edit_while_waiting_for_its_time_cancels(sctx, publisher, emulator):
    due_at = utcnow() + timedelta(seconds=2)
    with sctx.session() as s:
        post = signed_post(s, sctx.config, title="停水通知")
        pub_id = schedule(s, post, accounts(s)[WECHAT], due_at=due_at).id

    def prepared() -> bool:
        publisher.tick()
        with Session(sctx.engine) as s:
            return bool(s.get(Publication, pub_id).remote_draft_id)

    wait_for(prepared, what="the WeChat draft to be prepared")
    with sctx.session() as s:
        row = s.get(Post, post.id)
        row.content_hash, row.version = "edited", 2
        s.add(row)
    pub = run(publisher, [pub_id])[pub_id]
    assert pub.state == "cancelled" and "在排期后被修改（现为第 2 版）" in pub.last_error
    assert not emulator_state(emulator)["wechat"]["publishes"]
    # The prepared draft does not stay behind in the account's draft box.
    assert not emulator_state(emulator)["wechat"]["drafts"] and pub.remote_draft_id is None


def test_prepared_publication_taken_over_while_waiting_is_left_alone(sctx, publisher, emulator):
    due_at = utcnow() + timedelta(seconds=1.5)
    with sctx.session() as s:
        post = signed_post(s, sctx.config, title="防寒保暖提示")
        pub_id = schedule(s, post, accounts(s)[WEIBO], due_at=due_at).id

    def prepared() -> bool:
        publisher.tick()
        return pub_id in publisher.inflight and bool(publisher._waiting)

    wait_for(prepared, what="the publication to wait for its time")
    with sctx.session() as s:
        row = s.get(Publication, pub_id)
        row.lease_owner, row.lease_until = "other-host:9", utcnow() + timedelta(seconds=60)
        s.add(row)
    wait_for(lambda: pub_id not in publisher.inflight, what="the waiting publication to be dropped")
    assert not emulator_state(emulator)["weibo"]["statuses"]
    with Session(sctx.engine) as s:
        assert s.get(Publication, pub_id).lease_owner == "other-host:9"


def test_worker_registers_the_publishing_tick(sctx):
    spec = next(s for s in job_specs(sctx) if s.id == "publishing.tick")
    assert spec.seconds == sctx.config.scheduler.tick_seconds and spec.on_shutdown is not None


def test_failing_status_checks_of_a_submitted_job_never_fail_the_publication(sctx, publisher, emulator):
    # More failures than max_attempts (5): a submitted post is waited for, not given up.
    arm(emulator, "wechat", "freepublish/get", "http_500", count=8)
    post, ids = due(sctx, "供暖开始时间通知", targets=(WECHAT,))
    pub = run(publisher, ids, timeout=40)[ids[0]]
    assert pub.state == "published" and pub.attempts == 1 and pub.remote_id
    assert copies(emulator_state(emulator), title="供暖开始时间通知") == 1
