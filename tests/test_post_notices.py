"""Post notices: the next signer, the author on 退回 and 已发布, editors and the lead on failure;
console rows for everyone, e-mail rows when SMTP is configured; failure reasons in Chinese."""

from sqlmodel import select

from bot.models import Account, Notification, Post, Publication
from bot.publishing import notices, service
from bot.publishing.reasons import explain
from bot.publishing.settle import settle_posts
from tests.conftest import EXAMPLE
from tests.test_signoff import act, new_post, reject_as, sign_as, submit


def rows(ctx, **where):
    with ctx.session() as s:
        query = select(Notification)
        for k, v in where.items():
            query = query.where(getattr(Notification, k) == v)
        return list(s.exec(query.order_by(Notification.id)))


def test_next_signer_and_author_are_told(make_config, open_ctx):
    users = [dict(u, email="zhang@example.cn") if u["username"] == "fenguan" else u for u in EXAMPLE["users"]]
    ctx = open_ctx(make_config({"delivery": {"smtp": {"host": "127.0.0.1"}}, "users": users}))
    post_id = new_post(ctx)
    submit(ctx, post_id)
    # 初审 needs an editor other than the author: bianji is told, xuanchuan (the author) is not.
    assert [n.recipient for n in rows(ctx, kind="post_waiting", channel="console")] == ["bianji"]
    sign_as(ctx, post_id, "bianji")
    waiting = rows(ctx, kind="post_waiting")
    assert [(n.recipient, n.channel) for n in waiting[1:]] == [("fenguan", "console"), ("fenguan", "email")]
    assert waiting[-1].address == "zhang@example.cn" and waiting[-1].state == "pending"
    assert "等待复审" in waiting[-1].subject
    reject_as(ctx, post_id, "fenguan", "第二段数字有误")
    [back] = rows(ctx, kind="post_rejected", channel="console")
    assert back.recipient == "xuanchuan" and "第二段数字有误" in back.body
    with ctx.session() as s:
        assert notices.unread_count(session=s, username="xuanchuan") == 1
        assert notices.mark_read(session=s, username="xuanchuan") == 1
        assert notices.unread_count(session=s, username="xuanchuan") == 0


def test_failure_tells_author_editors_and_lead_with_reason(ctx):
    post_id = new_post(ctx)
    submit(ctx, post_id)
    for name in ("bianji", "fenguan", "zhuyao"):
        sign_as(ctx, post_id, name)
    pubs = act(ctx, service.schedule_post, post_id, "xuanchuan", config=ctx.config, accounts=[])
    with ctx.session() as s:
        for pub in pubs:
            row = s.get(Publication, pub.id)
            name = s.get(Account, row.account_id).name
            row.state = "published" if name == "示例县发布" else "failed"
            row.last_error = None if row.state == "published" else "weibo error 21332: expired_token"
            s.add(row)
    assert settle_posts(ctx) == 1
    with ctx.session() as s:
        assert s.get(Post, post_id).status == "partially_failed"
    assert [n.recipient for n in rows(ctx, kind="post_published", channel="console")] == ["xuanchuan"]
    failed = rows(ctx, kind="post_failed", channel="console")
    assert {n.recipient for n in failed} == {"xuanchuan", "bianji", "gongkai"}
    assert "微博授权已失效" in failed[0].body and "示例县发布微博" in failed[0].body


def test_reasons_are_chinese_with_advice():
    assert explain("wechat error 45009: reach max api daily quota limit").text == "公众号今日接口调用次数已用完。"
    assert "重新授权" in explain("weibo error 21327: expired_token").advice
    assert explain("missed: due at 2026-11-02 09:00 while govbot was not running").text.startswith("到了发布时间")
    assert explain("something nobody has seen").advice
