"""The Weibo connector end to end against the emulator over loopback HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.clock import utcnow
from bot.config import Config
from bot.connectors.base import Cover, OutgoingPost, PermanentError, ReplyRefused, TransientError
from bot.connectors.quota import QuotaWait
from bot.connectors.registry import ledger_for
from bot.connectors.weibo import WeiboConnector, comparable
from bot.context import Context
from bot.emulator.testing import EmulatorAdmin, run_emulator
from bot.models import Account
from bot.service import register_emulator_accounts
from tests.test_scheduler_support import png

UID, TOKEN = "5000000001", "demo-weibo-token-0001"


@pytest.fixture
def admin(make_config: Callable[..., Config], open_ctx: Callable[[Config], Context]) -> Iterator[EmulatorAdmin]:
    with run_emulator() as url, EmulatorAdmin(url) as admin:
        ctx = open_ctx(make_config(emulator_url=url))
        register_emulator_accounts(ctx, emulator_url=url)
        admin.ctx = ctx
        yield admin


def connector(admin: EmulatorAdmin, *, token: str = TOKEN, timeout: float = 5.0) -> WeiboConnector:
    with Session(admin.ctx.engine) as s:
        account = s.exec(select(Account).where(Account.remote_id == UID)).one()
    return WeiboConnector(uid=UID, access_token=token, api_base=f"{admin.base_url}/weibo/2/", timeout=timeout,
                          ledger=ledger_for(admin.ctx, account), rip="203.0.113.7")


@pytest.fixture
def wb(admin: EmulatorAdmin) -> Iterator[WeiboConnector]:
    c = connector(admin)
    yield c
    c.close()


def status(text: str = "【通知】城区供水管网检修 https://gov.example.cn/n/7", *, pic: bool = True) -> OutgoingPost:
    return OutgoingPost(publication_id=1, title="供水检修", body="<p>x</p>", weibo_text=text,
                        cover=Cover("cover.png", png(), "image/png") if pic else None)


def nothing(*_: object) -> None:
    return None


def test_publish_with_picture_and_find_it_again(admin, wb):
    post = status()
    since = utcnow() - timedelta(minutes=5)
    assert wb.find_published(post, since=since, resume={}) is None
    result = wb.publish(post, progress=nothing, resume={})
    stored = admin.state()["weibo"]["statuses"][result.remote_id]
    assert stored["original_text"] == post.weibo_text and len(stored["pic_ids"]) == 1
    assert "t.cn" in stored["text"]  # links come back shortened: matching masks them
    assert result.url.endswith(result.remote_id) and result.published_at is not None
    found = wb.find_published(post, since=since, resume={})
    assert found is not None and found.remote_id == result.remote_id
    assert wb.find_published(post, since=utcnow() + timedelta(minutes=1), resume={}) is None
    assert wb.find_published(status("别的内容 https://gov.example.cn/n/8"), since=since, resume={}) is None


def test_repeated_content_is_our_own_status(admin, wb):
    first = wb.publish(status(pic=False), progress=nothing, resume={})
    again = wb.publish(status(pic=False), progress=nothing, resume={})
    assert again.remote_id == first.remote_id
    assert len(admin.state()["weibo"]["statuses"]) == 1


def test_errors_are_classified(admin, wb):
    with pytest.raises(PermanentError, match="Text too long") as long_text:
        wb.publish(status("长" * 131 + " https://gov.example.cn/"), progress=nothing, resume={})
    assert long_text.value.code == 20012
    admin.fault("weibo", "statuses/share", "http_500")
    with pytest.raises(TransientError, match="system error"):
        wb.publish(status(), progress=nothing, resume={})
    admin.fault("weibo", "statuses/share", "http_500", status=502)
    with pytest.raises(TransientError, match="HTTP 502"):
        wb.publish(status(), progress=nothing, resume={})
    admin.fault("weibo", "statuses/share", "timeout", delay_s=2)
    quick = connector(admin, timeout=0.5)
    with pytest.raises(TransientError, match="Timeout"):
        quick.publish(status(), progress=nothing, resume={})
    quick.close()
    admin.fault("weibo", "statuses/share", "reject")
    with pytest.raises(PermanentError, match="Content is illegal"):
        wb.publish(status(), progress=nothing, resume={})
    admin.config(weibo_posts_per_hour=1)
    wb.publish(status(), progress=nothing, resume={})
    with pytest.raises(QuotaWait, match="too fast") as fast:
        wb.publish(status("第二条 https://gov.example.cn/n/9"), progress=nothing, resume={})
    assert fast.value.code == 20016 and fast.value.api == "statuses/share"
    # 10023: every call of the user waits for the next hourly window; never a failure.
    admin.fault("weibo", "comments/to_me", "rate_limit")
    with pytest.raises(QuotaWait) as limited:
        wb.list_comments(target="to_me", cursor="")
    assert limited.value.code == 10023 and limited.value.transient and 0 < limited.value.retry_after <= 3600
    with pytest.raises(QuotaWait):
        wb.list_comments(target="to_me", cursor="")
    assert not admin.state()["faults"]


def test_rip_is_sent(admin, wb):
    result = wb.publish(status(pic=False), progress=nothing, resume={})
    assert admin.state()["weibo"]["statuses"][result.remote_id]["rip"] == "203.0.113.7"


def test_the_hourly_budget_is_spent_before_the_platform_refuses(admin, make_config):
    admin.ctx = type(admin.ctx)(config=make_config({"quotas": {"weibo": {"calls": 2}}},
                                                   emulator_url=admin.base_url), engine=admin.ctx.engine)
    wb = connector(admin)
    wb.list_comments(target="to_me", cursor="")
    wb.list_comments(target="to_me", cursor="")
    with pytest.raises(QuotaWait, match="budget of 2 calls spent"):
        wb.list_comments(target="to_me", cursor="")
    wb.close()


def test_expired_or_revoked_token_is_permanent(admin, wb):
    admin.revoke_weibo_token(TOKEN, "expired")
    with pytest.raises(PermanentError, match="expired_token") as err:
        wb.publish(status(), progress=nothing, resume={})
    assert err.value.code == 21327 and "authorise" in str(err.value)


def test_comments_cursor_replies_and_stats(admin, wb):
    result = wb.publish(status(), progress=nothing, resume={})
    for i in range(3):
        admin.weibo_comment(status_id=result.remote_id, uid=6000000000 + i, screen_name=f"网友{i}", text=f"评论{i}")
    page = wb.list_comments(target="to_me", cursor="")
    assert [c.text for c in page.comments] == ["评论0", "评论1", "评论2"]
    first = page.comments[0]
    assert first.ref == result.remote_id and first.sender_name == "网友0" and first.sender_id == "6000000000"
    assert wb.list_comments(target="to_me", cursor=page.cursor).comments == []
    admin.weibo_comment(status_id=result.remote_id, uid=6000000009, screen_name="网友9", text="新评论")
    newer = wb.list_comments(target="to_me", cursor=page.cursor)
    assert [c.text for c in newer.comments] == ["新评论"]
    reply_id = wb.reply_comment(first, "感谢关注")
    assert admin.state()["weibo"]["comments"][reply_id]["text"] == "回复@网友0:感谢关注"
    on_status = wb.list_comments(target=result.remote_id, cursor="")
    assert len(on_status.comments) == 5
    stats = wb.fetch_stats(result)
    assert stats.comments == 5 and stats.likes is not None and stats.shares is not None
    with pytest.raises(ReplyRefused, match="does not exist"):
        wb.reply_comment({"cid": "1", "id": result.remote_id}, "回复")
    with pytest.raises(ReplyRefused):
        wb.send_message("6000000000", "私信")


def test_links_are_masked_when_comparing():
    assert comparable("通知 https://gov.example.cn/a/1 详见") == comparable("通知 http://t.cn/A6abcdef 详见")
    assert comparable("通知 https://gov.example.cn/a/1") != comparable("公告 http://t.cn/A6abcdef")
