"""The sign-off chain (三审) and scheduling, on a real SQLite file: the issue's story and every refusal."""

from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, select

from bot.clock import to_local, utcnow
from bot.context import Context
from bot.errors import CheckFailed, GovbotError, InvalidState, PermissionDenied
from bot.models import AuditEvent, Post, Publication, SignOff, User
from bot.publishing import service, views
from bot.publishing.checks import recheck_publication
from bot.publishing.signoff import current_chain, reject, sign, touch_post
from bot.users import get_user

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
WEIBO = "示例县秋季招聘公告发布，详情 https://www.gov.example.cn/zp/2026"
WECHAT, WEIBO_ACC = "示例县发布", "示例县发布微博"


def user(s: Session, name: str) -> User:
    return get_user(session=s, username=name)


def new_post(ctx: Context, author: str = "xuanchuan", **kw) -> int:
    with ctx.session() as s:
        fields = {"title": "示例县2026年秋季公开招聘公告", "body": "<p>经县政府研究，决定公开招聘工作人员。</p>",
                  "digest": "秋季公开招聘", "weibo_text": WEIBO, "cover": ("cover.png", PNG, "image/png"), **kw}
        return service.create_post(session=s, author=user(s, author), **fields).id


def act(ctx: Context, fn, post_id: int, username: str, **kw):
    with ctx.session() as s:
        post = s.get(Post, post_id)
        return fn(session=s, post=post, user=user(s, username), **kw)


def submit(ctx, post_id, username="xuanchuan"):
    return act(ctx, service.submit_post, post_id, username, config=ctx.config)


def sign_as(ctx, post_id, username, **kw):
    return act(ctx, sign, post_id, username, config=ctx.config, **kw)


def reject_as(ctx, post_id, username, reason):
    return act(ctx, reject, post_id, username, config=ctx.config, reason=reason)


def schedule(ctx, post_id, username="xuanchuan", accounts=(WECHAT, WEIBO_ACC), at=None):
    return act(ctx, service.schedule_post, post_id, username, config=ctx.config, accounts=list(accounts), at=at)


def signed_post(ctx) -> int:
    post_id = new_post(ctx)
    submit(ctx, post_id)
    for name in ("bianji", "fenguan", "zhuyao"):
        sign_as(ctx, post_id, name)
    return post_id


def get(ctx, model, id_):
    with ctx.session() as s:
        return s.get(model, id_)


def events(ctx, post_id) -> list[str]:
    with ctx.session() as s:
        return list(s.exec(select(AuditEvent.action).where(AuditEvent.subject_type == "post",
                                                           AuditEvent.subject_id == post_id).order_by(AuditEvent.id)))


def add_user(ctx, username, roles):
    with ctx.session() as s:
        s.add(User(username=username, display_name=username, roles=roles))


def test_story_draft_three_signoffs_schedule_to_two_accounts(ctx: Context):
    post_id = new_post(ctx)
    assert get(ctx, Post, post_id).status == "draft"
    submit(ctx, post_id)
    assert get(ctx, Post, post_id).status == "in_review"

    for name, stage, role in [("bianji", "初审", "editor"), ("fenguan", "复审", "reviewer"), ("zhuyao", "终审", "approver")]:
        so = sign_as(ctx, post_id, name)
        assert (so.stage_name, so.role, so.decision, so.post_version) == (stage, role, "approve", 1)
        assert so.content_hash == get(ctx, Post, post_id).content_hash
    post = get(ctx, Post, post_id)
    assert post.status == "approved"

    at_local = to_local(utcnow() + timedelta(days=1), ctx.tz).replace(tzinfo=None, second=0, microsecond=0)
    pubs = schedule(ctx, post_id, at=at_local)
    assert len(pubs) == 2
    with ctx.session() as s:
        rows = list(s.exec(select(Publication).where(Publication.post_id == post_id)))
        assert {r.state for r in rows} == {"pending"}
        assert len({r.account_id for r in rows}) == 2
        for r in rows:
            assert to_local(r.due_at, ctx.tz).replace(tzinfo=None) == at_local
            assert r.next_attempt_at == r.due_at
            assert r.content_hash == post.content_hash
            assert recheck_publication(session=s, ctx=ctx, publication=r) == []
    assert get(ctx, Post, post_id).status == "scheduled"
    assert events(ctx, post_id) == ["post.created", "post.submitted", "post.signed", "post.signed", "post.signed",
                                    "post.approved", "post.scheduled"]
    with ctx.session() as s:
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "post.signed")).first()
        assert (ev.actor, ev.version, ev.content_hash) == ("bianji", 1, post.content_hash)
        assert ev.detail["stage"] == "初审"
        assert len(s.exec(select(AuditEvent).where(AuditEvent.action == "publication.scheduled")).all()) == 2


def test_edit_after_a_signoff_voids_the_chain_and_returns_to_draft(ctx: Context):
    post_id = new_post(ctx)
    submit(ctx, post_id)
    first = sign_as(ctx, post_id, "bianji")
    old_hash = get(ctx, Post, post_id).content_hash

    assert act(ctx, service.edit_post, post_id, "xuanchuan", body="<p>经县政府研究，决定公开招聘工作人员20名。</p>")
    post = get(ctx, Post, post_id)
    assert (post.status, post.version) == ("draft", 2) and post.content_hash != old_hash
    assert get(ctx, SignOff, first.id).voided_at is not None
    with ctx.session() as s:
        assert current_chain(session=s, config=ctx.config, post=post).next_stage.name == "初审"
    assert events(ctx, post_id)[-2:] == ["post.edited", "post.chain_restarted"]
    with ctx.session() as s:
        restarted = s.exec(select(AuditEvent).where(AuditEvent.action == "post.chain_restarted")).one()
        assert restarted.detail["voided_signoffs"] == [first.id] and restarted.version == 2
        edited = s.exec(select(AuditEvent).where(AuditEvent.action == "post.edited")).one()
        assert edited.detail["previous_content_hash"] == old_hash and edited.detail["fields"] == ["body"]

    # The old sign-off does not count: the chain starts again at 初审, and a stale approval is refused.
    submit(ctx, post_id)
    with pytest.raises(InvalidState, match="stale"):
        sign_as(ctx, post_id, "bianji", version=1)
    so = sign_as(ctx, post_id, "bianji", version=2)
    assert (so.stage_name, so.post_version) == ("初审", 2)


def test_edit_without_change_keeps_the_chain(ctx: Context):
    post_id = new_post(ctx)
    submit(ctx, post_id)
    sign_as(ctx, post_id, "bianji")
    post = get(ctx, Post, post_id)
    assert not act(ctx, service.edit_post, post_id, "xuanchuan", title=post.title, cover=("c.png", PNG, None))
    assert get(ctx, Post, post_id).version == 1 and get(ctx, Post, post_id).status == "in_review"


def test_cover_change_is_an_edit(ctx: Context):
    post_id = new_post(ctx)
    before = get(ctx, Post, post_id).content_hash
    assert act(ctx, service.edit_post, post_id, "xuanchuan", cover=("new.png", PNG + b"x", None))
    assert get(ctx, Post, post_id).content_hash != before
    assert act(ctx, service.edit_post, post_id, "xuanchuan", remove_cover=True)
    assert get(ctx, Post, post_id).cover_media_id is None


def test_edit_of_a_scheduled_post_cancels_its_publications(ctx: Context):
    post_id = signed_post(ctx)
    pubs = schedule(ctx, post_id)
    act(ctx, service.edit_post, post_id, "xuanchuan", title="示例县2026年秋季公开招聘公告（更正）")
    assert {get(ctx, Publication, p.id).state for p in pubs} == {"cancelled"}
    post = get(ctx, Post, post_id)
    assert (post.status, post.scheduled_at) == ("draft", None)
    with pytest.raises(InvalidState, match="only a fully signed post"):
        schedule(ctx, post_id)


def test_self_signoff_refused(ctx: Context):
    post_id = new_post(ctx, author="bianji")
    submit(ctx, post_id, "bianji")
    with pytest.raises(PermissionDenied, match="nobody signs their own draft"):
        sign_as(ctx, post_id, "bianji")


def test_someone_who_edited_the_post_cannot_sign_it(ctx: Context):
    post_id = new_post(ctx)
    act(ctx, service.edit_post, post_id, "bianji", digest="秋季招聘20名")
    submit(ctx, post_id)
    with pytest.raises(PermissionDenied, match="wrote or edited"):
        sign_as(ctx, post_id, "bianji")


def test_same_user_cannot_sign_two_stages(ctx: Context):
    add_user(ctx, "lizhi", "editor,reviewer")
    post_id = new_post(ctx)
    submit(ctx, post_id)
    sign_as(ctx, post_id, "lizhi")
    with pytest.raises(PermissionDenied, match="already signed stage 初审"):
        sign_as(ctx, post_id, "lizhi")
    sign_as(ctx, post_id, "fenguan")


def test_wrong_role_refused_and_admin_does_not_bypass(ctx: Context):
    post_id = new_post(ctx)
    submit(ctx, post_id)
    with pytest.raises(PermissionDenied, match="stage 初审 needs the role editor"):
        sign_as(ctx, post_id, "fenguan")
    with pytest.raises(PermissionDenied, match="needs the role editor"):
        sign_as(ctx, post_id, "admin")
    sign_as(ctx, post_id, "bianji")
    with pytest.raises(PermissionDenied, match="stage 复审 needs the role reviewer"):
        sign_as(ctx, post_id, "zhuyao")


def test_signing_a_draft_or_an_approved_post_is_refused(ctx: Context):
    post_id = new_post(ctx)
    with pytest.raises(InvalidState, match="only a submitted post"):
        sign_as(ctx, post_id, "bianji")
    post_id = signed_post(ctx)
    with pytest.raises(InvalidState, match="approved"):
        sign_as(ctx, post_id, "admin")


def test_reject_returns_the_post_to_its_editor_with_the_reason(ctx: Context):
    post_id = new_post(ctx)
    submit(ctx, post_id)
    first = sign_as(ctx, post_id, "bianji")
    with pytest.raises(GovbotError, match="needs a reason"):
        reject_as(ctx, post_id, "fenguan", "  ")
    so = reject_as(ctx, post_id, "fenguan", "招聘人数与县人社局文件不一致，请核实")
    assert (so.decision, so.stage_name, so.role) == ("reject", "复审", "reviewer")
    post = get(ctx, Post, post_id)
    assert (post.status, post.rejection_reason) == ("rejected", "招聘人数与县人社局文件不一致，请核实")
    assert get(ctx, SignOff, first.id).voided_at is not None
    with pytest.raises(InvalidState):
        sign_as(ctx, post_id, "zhuyao")
    # The editor corrects it; the reason stays visible until the post is submitted again.
    act(ctx, service.edit_post, post_id, "xuanchuan", body="<p>公开招聘工作人员20名。</p>")
    assert get(ctx, Post, post_id).rejection_reason.startswith("招聘人数")
    submit(ctx, post_id)
    assert get(ctx, Post, post_id).rejection_reason is None
    with ctx.session() as s:
        view = views.post_view(session=s, config=ctx.config, post=s.get(Post, post_id))
    assert [(x["decision"], x["reason"]) for x in view["signoffs"]] == [
        ("approve", None), ("reject", "招聘人数与县人社局文件不一致，请核实")]
    assert "post.rejected" in events(ctx, post_id)


def test_author_cannot_reject_and_outsiders_cannot_reject(ctx: Context):
    post_id = new_post(ctx)
    submit(ctx, post_id)
    with pytest.raises(PermissionDenied):
        reject_as(ctx, post_id, "xuanchuan", "撤回")
    with pytest.raises(PermissionDenied, match="holds no sign-off role"):
        reject_as(ctx, post_id, "gongkai", "不妥")


def test_scheduling_an_unsigned_post_is_refused(ctx: Context):
    post_id = new_post(ctx)
    with pytest.raises(InvalidState, match="only a fully signed post"):
        schedule(ctx, post_id)
    submit(ctx, post_id)
    sign_as(ctx, post_id, "bianji")
    sign_as(ctx, post_id, "fenguan")
    with pytest.raises(InvalidState, match="only a fully signed post"):
        schedule(ctx, post_id)


def test_status_approved_is_not_enough_without_valid_signoffs(ctx: Context):
    post_id = signed_post(ctx)
    with ctx.session() as s:
        for so in s.exec(select(SignOff).where(SignOff.post_id == post_id)):
            so.voided_at = utcnow()
            s.add(so)
    with pytest.raises(InvalidState, match="not fully signed off"):
        schedule(ctx, post_id)


def test_who_may_schedule(ctx: Context):
    post_id = signed_post(ctx)
    with pytest.raises(PermissionDenied, match="editor"):
        schedule(ctx, post_id, "fenguan")
    assert len(schedule(ctx, post_id, "admin", accounts=[WECHAT])) == 1


def test_schedule_refuses_accounts_not_signed_for(ctx: Context):
    post_id = new_post(ctx, weibo_text="")
    submit(ctx, post_id)
    for name in ("bianji", "fenguan", "zhuyao"):
        sign_as(ctx, post_id, name)
    # Submitted without a Weibo text: only the WeChat account was chosen and signed for.
    with pytest.raises(PermissionDenied) as refused:
        schedule(ctx, post_id, accounts=[WEIBO_ACC])
    assert "未经审签" in refused.value.message_zh
    assert len(schedule(ctx, post_id, accounts=[WECHAT])) == 1


def test_reschedule_moves_pending_and_past_times_mean_now(ctx: Context):
    post_id = signed_post(ctx)
    [pub] = schedule(ctx, post_id, accounts=[WECHAT], at=datetime(2030, 1, 1, 9, 0))
    assert to_local(get(ctx, Publication, pub.id).due_at, ctx.tz).hour == 9
    before = utcnow()
    pubs = schedule(ctx, post_id, at=datetime(2020, 1, 1, 9, 0))
    assert pub.id in {p.id for p in pubs} and len(pubs) == 2
    for p in pubs:
        row = get(ctx, Publication, p.id)
        assert row.state == "pending" and before <= row.due_at <= utcnow() and row.next_attempt_at == row.due_at
    with ctx.session() as s:
        assert len(s.exec(select(Publication).where(Publication.post_id == post_id)).all()) == 2
    assert events(ctx, post_id).count("post.scheduled") == 2


def test_unschedule_and_schedule_again(ctx: Context):
    post_id = signed_post(ctx)
    pubs = schedule(ctx, post_id)
    cancelled = act(ctx, service.unschedule_post, post_id, "xuanchuan", accounts=[WEIBO_ACC])
    assert len(cancelled) == 1 and get(ctx, Post, post_id).status == "scheduled"
    act(ctx, service.unschedule_post, post_id, "xuanchuan")
    assert get(ctx, Post, post_id).status == "approved"
    assert {get(ctx, Publication, p.id).state for p in pubs} == {"cancelled"}
    with pytest.raises(InvalidState, match="no pending publication"):
        act(ctx, service.unschedule_post, post_id, "xuanchuan")
    again = schedule(ctx, post_id, accounts=[WEIBO_ACC])
    assert again[0].id in {p.id for p in pubs} and get(ctx, Publication, again[0].id).state == "pending"


def test_a_publication_being_published_is_not_changed(ctx: Context):
    post_id = signed_post(ctx)
    [pub] = schedule(ctx, post_id, accounts=[WECHAT])
    with ctx.session() as s:
        row = s.get(Publication, pub.id)
        row.lease_owner, row.lease_until = "worker-1", utcnow() + timedelta(minutes=2)
        s.add(row)
    with pytest.raises(InvalidState, match="being published right now"):
        act(ctx, service.edit_post, post_id, "xuanchuan", title="改")
    assert get(ctx, Post, post_id).version == 1
    with ctx.session() as s:
        row = s.get(Publication, pub.id)
        row.state = "published"
        s.add(row)
    with pytest.raises(InvalidState, match="already out"):
        act(ctx, service.edit_post, post_id, "xuanchuan", title="改")


def test_submit_runs_the_checks(ctx: Context):
    post_id = new_post(ctx, body="<p>本通知为内部文件，县人民政付印发。</p>", cover=None)
    with pytest.raises(CheckFailed) as e:
        submit(ctx, post_id)
    assert sorted(p.code for p in e.value.problems) == ["sensitive_word", "typo", "wechat_cover_missing"]
    assert get(ctx, Post, post_id).status == "draft"


def test_recheck_catches_content_changed_after_scheduling(ctx: Context):
    post_id = signed_post(ctx)
    [pub] = schedule(ctx, post_id, accounts=[WEIBO_ACC])
    with ctx.session() as s:
        post = s.get(Post, post_id)
        post.content_hash = "0" * 64  # what a concurrent edit would leave behind
        s.add(post)
    with ctx.session() as s:
        problems = recheck_publication(session=s, ctx=ctx, publication=s.get(Publication, pub.id))
    assert {p.code for p in problems} == {"content_changed", "not_signed"}


def test_two_people_acting_on_one_post_at_once_only_one_wins(ctx: Context):
    post_id = new_post(ctx)
    submit(ctx, post_id)
    with Session(ctx.engine, expire_on_commit=False) as late:
        stale = late.get(Post, post_id)  # read before the other signer commits
        sign_as(ctx, post_id, "bianji")
        with pytest.raises(InvalidState, match="changed by someone else"):
            touch_post(session=late, post=stale)
        late.rollback()
    with ctx.session() as s:
        assert len(s.exec(select(SignOff).where(SignOff.post_id == post_id)).all()) == 1


def test_only_editors_create_and_bad_covers_are_refused(ctx: Context):
    with pytest.raises(PermissionDenied):
        new_post(ctx, author="fenguan")
    with pytest.raises(GovbotError, match="not a JPEG, PNG, GIF or BMP"):
        new_post(ctx, cover=("notes.pdf", b"%PDF-1.7 ...", "image/png"))


def test_content_hash_covers_every_published_field():
    base = {"title": "t", "body": "b", "digest": "d", "weibo_text": "w", "cover_sha256": "c"}
    h = service.content_hash(**base)
    for k in base:
        assert service.content_hash(**{**base, k: base[k] + "x"}) != h
    assert service.content_hash(**{**base, "title": "tb", "body": ""}) != service.content_hash(**{**base, "title": "t", "body": "bb"})


def test_a_publication_waiting_for_a_retry_is_left_to_the_scheduler(ctx: Context):
    post_id = signed_post(ctx)
    [pub] = schedule(ctx, post_id, accounts=[WECHAT])
    with ctx.session() as s:
        row = s.get(Publication, pub.id)
        row.first_attempt_at, row.attempts, row.last_error = utcnow(), 1, "wechat: timed out"
        s.add(row)
    with pytest.raises(InvalidState, match="already attempted.*timed out"):
        act(ctx, service.edit_post, post_id, "xuanchuan", title="改")
    with pytest.raises(InvalidState, match="already attempted"):
        act(ctx, service.unschedule_post, post_id, "xuanchuan")
    later = datetime(2031, 5, 1, 9, 0)
    schedule(ctx, post_id, accounts=[WECHAT], at=later)
    row = get(ctx, Publication, pub.id)
    assert (row.attempts, row.first_attempt_at is not None) == (1, True)
    assert to_local(row.due_at, ctx.tz).year == 2031


def test_a_failed_publication_is_scheduled_again_and_reconciled_first(ctx: Context):
    post_id = signed_post(ctx)
    pubs = schedule(ctx, post_id)
    with ctx.session() as s:
        ok, bad = (s.get(Publication, p.id) for p in pubs)
        ok.state, ok.published_at, ok.first_attempt_at = "published", utcnow(), utcnow()
        bad.state, bad.attempts, bad.first_attempt_at, bad.last_error = "failed", 8, utcnow(), "weibo error 10023"
        s.add(ok), s.add(bad)
        post = s.get(Post, post_id)
        post.status = "partially_failed"
        s.add(post)
    with pytest.raises(InvalidState, match="already published on 示例县发布"):
        schedule(ctx, post_id, accounts=[WECHAT])
    [again] = schedule(ctx, post_id, accounts=[WEIBO_ACC])
    row = get(ctx, Publication, again.id)
    assert (row.state, row.attempts, row.last_error) == ("pending", 0, None)
    assert row.first_attempt_at is not None  # the scheduler asks the platform before publishing again
    assert get(ctx, Post, post_id).status == "scheduled"
