"""The accounts and the time chosen at 送审 are signed with the text: who may choose which account,
changing them voids the sign-offs, and nothing goes out on an account nobody signed for."""

from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, select

from bot.clock import to_local, utcnow
from bot.context import Context
from bot.errors import InvalidState, PermissionDenied
from bot.models import Account, AuditEvent, Post, Publication, SignOff
from bot.publishing import service
from bot.publishing.scheduler import Publisher
from bot.publishing.targets import since_last_signed
from bot.service import register_emulator_accounts
from tests.test_scheduler import FAST, run
from tests.test_scheduler_support import signed_post
from tests.test_signoff import WECHAT, WEIBO_ACC, act, new_post, sign_as, user

HOUSING = "示例县住建"


def later(days: int = 2) -> datetime:
    return to_local(utcnow() + timedelta(days=days), "Asia/Shanghai").replace(second=0, microsecond=0, tzinfo=None)


def submit(ctx: Context, post_id: int, accounts, at=None, username="xuanchuan"):
    return act(ctx, service.submit_post, post_id, username, config=ctx.config, accounts=list(accounts), at=at)


def test_editor_targets_only_own_department_unless_granted(make_config, open_ctx):
    ctx = open_ctx(make_config())
    post_id = new_post(ctx)
    with pytest.raises(PermissionDenied) as refused:
        submit(ctx, post_id, [WECHAT, HOUSING])
    assert refused.value.code == "post.accounts_not_own" and "不能发布到：示例县住建" in refused.value.message_zh
    with ctx.session() as s:
        assert s.get(Post, post_id).status == "draft"
        names = [a.name for a in service.allowed_accounts(session=s, config=ctx.config, user=user(s, "xuanchuan"))]
    assert names == [WECHAT, WEIBO_ACC]
    granted = open_ctx(make_config({"posts": {"any_account_editors": ["xuanchuan"]}}))
    post_id = new_post(granted)
    submit(granted, post_id, [WECHAT, HOUSING])
    with granted.session() as s:
        post = s.get(Post, post_id)
        assert post.status == "in_review"
        assert post.target_account_ids == sorted(a.id for a in s.exec(select(Account)) if a.name in (WECHAT, HOUSING))


def test_targets_and_time_are_signed_and_changing_them_voids_signoffs(ctx: Context):
    post_id = new_post(ctx)
    at = later()
    submit(ctx, post_id, [WECHAT], at=at)
    with ctx.session() as s:
        first_hash = s.get(Post, post_id).content_hash
    sign_as(ctx, post_id, "bianji")
    with ctx.session() as s:
        signed = s.exec(select(AuditEvent).where(AuditEvent.action == "post.signed")).one()
    # The audit log says which accounts and which time were signed.
    assert signed.detail["targets"] == [f"{WECHAT}（微信公众号）"]
    assert signed.detail["planned_at"] == at.isoformat(timespec="minutes") + "+08:00"

    result = act(ctx, service.retarget_post, post_id, "xuanchuan", config=ctx.config, accounts=[WECHAT, WEIBO_ACC],
                 at=at)
    assert result.changed and len(result.voided_signoffs) == 1
    with ctx.session() as s:
        post = s.get(Post, post_id)
        assert (post.status, post.version) == ("draft", 2) and post.content_hash != first_hash
        assert s.exec(select(SignOff)).one().voided_at is not None
    # The same accounts and time again: nothing changes, nothing is voided.
    submit(ctx, post_id, [WECHAT, WEIBO_ACC], at=at)
    assert not act(ctx, service.retarget_post, post_id, "xuanchuan", config=ctx.config,
                   accounts=[WECHAT, WEIBO_ACC], at=at).changed
    # A different time alone is a change too.
    assert act(ctx, service.retarget_post, post_id, "xuanchuan", config=ctx.config, accounts=[WECHAT, WEIBO_ACC],
               at=later(3)).changed


def test_schedule_keeps_to_the_signed_accounts_and_never_earlier_than_signed(ctx: Context):
    post_id = new_post(ctx)
    at = later()
    submit(ctx, post_id, [WECHAT], at=at)
    for name in ("bianji", "fenguan", "zhuyao"):
        sign_as(ctx, post_id, name)
    with pytest.raises(PermissionDenied) as refused:
        act(ctx, service.schedule_post, post_id, "xuanchuan", config=ctx.config, accounts=[WECHAT, WEIBO_ACC])
    assert refused.value.code == "post.unsigned_accounts" and "未经审签" in refused.value.message_zh
    # No accounts named: the signed ones; asked for "now": the signed time, not earlier.
    [pub] = act(ctx, service.schedule_post, post_id, "xuanchuan", config=ctx.config, accounts=[])
    with ctx.session() as s:
        row = s.get(Publication, pub.id)
        assert to_local(row.due_at, ctx.tz).replace(tzinfo=None) == at
        assert s.get(Account, row.account_id).name == WECHAT


def test_scheduler_never_publishes_on_an_account_not_signed_for(make_config, open_ctx, emulator):
    ctx = open_ctx(make_config(FAST, emulator_url=emulator))
    register_emulator_accounts(ctx, emulator_url=emulator)
    with ctx.session() as s:
        post = signed_post(s, ctx.config, title="只签了公众号")
        accs = {a.name: a for a in s.exec(select(Account))}
        post.target_account_ids = [accs[WECHAT].id]
        s.add(post)
        # Rows written behind the service's back: one signed account, one not.
        ids = []
        for name in (WECHAT, HOUSING):
            pub = Publication(post_id=post.id, account_id=accs[name].id, due_at=utcnow(), next_attempt_at=utcnow(),
                              content_hash=post.content_hash)
            s.add(pub)
            s.flush()
            ids.append(pub.id)
    publisher = Publisher(ctx)
    try:
        pubs = run(publisher, ids)
    finally:
        publisher.stop()
    assert pubs[ids[0]].state == "published"
    assert pubs[ids[1]].state == "cancelled" and "not signed" in pubs[ids[1]].last_error
    with Session(ctx.engine) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "publication.published")).one().detail["account"] == WECHAT


def test_diff_since_last_signed_shows_words_accounts_and_time(ctx: Context):
    post_id = new_post(ctx, body="<p>经县政府研究，决定公开招聘工作人员。</p>")
    at = later()
    submit(ctx, post_id, [WECHAT], at=at)
    sign_as(ctx, post_id, "bianji")
    with ctx.session() as s:
        version, diff = since_last_signed(session=s, post=s.get(Post, post_id), tz=ctx.tz)
    assert version == 1 and diff.empty
    with ctx.session() as s:
        service.edit_post(session=s, post=s.get(Post, post_id), user=user(s, "xuanchuan"),
                          body="<p>经县政府研究，决定公开招聘教师。</p>")
    submit(ctx, post_id, [WECHAT, WEIBO_ACC], at=later(3))
    with ctx.session() as s:
        version, diff = since_last_signed(session=s, post=s.get(Post, post_id), tz=ctx.tz)
    assert version == 1
    [body] = diff.fields
    assert ("removed", "工作人员") in body.parts and ("added", "教师") in body.parts
    assert diff.accounts_added == [WEIBO_ACC] and not diff.accounts_removed
    assert diff.planned[0] == at.strftime("%Y-%m-%d %H:%M")


def test_retry_sends_the_signed_version_again_on_failed_accounts_only(ctx: Context):
    post_id = new_post(ctx)
    submit(ctx, post_id, [WECHAT, WEIBO_ACC])
    for name in ("bianji", "fenguan", "zhuyao"):
        sign_as(ctx, post_id, name)
    with pytest.raises(InvalidState) as refused:
        act(ctx, service.retry_failed, post_id, "xuanchuan", config=ctx.config)
    assert "没有发布失败" in refused.value.message_zh
    pubs = act(ctx, service.schedule_post, post_id, "xuanchuan", config=ctx.config, accounts=[])
    with ctx.session() as s:
        for pub in pubs:
            row = s.get(Publication, pub.id)
            row.state = "failed" if s.get(Account, row.account_id).name == WEIBO_ACC else "published"
            row.remote_publish_id = "stale"
            s.add(row)
    [again] = act(ctx, service.retry_failed, post_id, "xuanchuan", config=ctx.config)
    with ctx.session() as s:
        row = s.get(Publication, again.id)
        assert s.get(Account, row.account_id).name == WEIBO_ACC and row.state == "pending"
        assert row.remote_publish_id is None  # a new attempt, not the failed job resumed
        assert all(so.voided_at is None for so in s.exec(select(SignOff)))
        assert len(s.exec(select(SignOff)).all()) == 3
