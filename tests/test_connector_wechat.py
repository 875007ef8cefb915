"""The WeChat connector end to end against the emulator over loopback HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.clock import utcnow
from bot.config import Config
from bot.connectors.base import (
    Cover,
    OutgoingPost,
    PermanentError,
    PublishResult,
    ReplyRefused,
    TransientError,
)
from bot.connectors.wechat import WeChatConnector
from bot.context import Context
from bot.emulator import wechat as emulated_wechat
from bot.emulator.state import EmulatorState
from bot.emulator.testing import EmulatorAdmin, run_emulator
from bot.models import KeyValue
from bot.service import register_emulator_accounts
from tests.test_scheduler_support import png

APPID, SECRET = "wxdemo0000000001", "demo-appsecret-0001"


@dataclass
class Emu:
    url: str
    state: EmulatorState
    admin: EmulatorAdmin
    ctx: Context

    def connector(self, *, secret: str = SECRET, timeout: float = 5.0, poll_timeout: float = 10.0) -> WeChatConnector:
        return WeChatConnector(appid=APPID, secret=secret, engine=self.ctx.engine, api_base=self.ctx.config.wechat_api_base,
                               timeout=timeout, poll_timeout=poll_timeout)

    def calls(self, path: str) -> int:
        return self.admin.state()["counters"]["calls"].get(f"wechat {path}", 0)


@pytest.fixture
def emu(make_config: Callable[..., Config], open_ctx: Callable[[Config], Context]) -> Iterator[Emu]:
    state = EmulatorState()
    with run_emulator(state) as url, EmulatorAdmin(url) as admin:
        ctx = open_ctx(make_config(emulator_url=url))
        register_emulator_accounts(ctx, emulator_url=url)
        yield Emu(url, state, admin, ctx)


@pytest.fixture
def wx(emu: Emu) -> Iterator[WeChatConnector]:
    connector = emu.connector()
    yield connector
    connector.close()


def article(title: str = "城区道路改造公告") -> OutgoingPost:
    return OutgoingPost(publication_id=1, title=title, body=f"<p>{title}：施工期间请绕行。</p>", digest="施工绕行",
                        cover=Cover("cover.png", png(), "image/png"))


def test_publish_hands_over_each_id_before_the_next_call(emu, wx):
    seen: list[tuple[str, dict[str, str], int, int]] = []

    def progress(step: str, ids: dict[str, str]) -> None:
        snap = emu.admin.state()["wechat"]
        seen.append((step, ids, len(snap["drafts"]), len(snap["publishes"])))

    result = wx.publish(article(), progress=progress, resume={})
    assert [(s[0], sorted(s[1])) for s in seen] == [
        ("draft", ["media_id"]), ("submit", ["draft_id"]), ("poll", ["msg_data_id", "publish_id"])]
    # Each id was handed over before the call that follows it was made.
    assert [(s[2], s[3]) for s in seen] == [(0, 0), (1, 0), (0, 1)]
    articles = emu.admin.state()["wechat"]["articles"]
    assert list(articles) == [result.remote_id]
    stored = articles[result.remote_id]
    assert result.msg_data_id == str(stored["msg_data_id"]) and result.url == stored["news_item"][0]["url"]
    assert stored["news_item"][0]["need_open_comment"] == 1


def test_resume_polls_a_submitted_job_and_submits_a_stored_draft(emu, wx):
    ids: dict[str, str] = {}

    def crash_before_submit(step: str, got: dict[str, str]) -> None:
        ids.update(got)
        if step == "submit":
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        wx.publish(article(), progress=crash_before_submit, resume={})
    assert sorted(ids) == ["draft_id", "media_id"]
    result = wx.publish(article(), progress=lambda step, got: ids.update(got), resume=dict(ids))
    again = wx.publish(article(), progress=lambda step, got: pytest.fail("nothing new to report"),
                       resume={"publish_id": ids["publish_id"], "msg_data_id": ids["msg_data_id"]})
    assert again.remote_id == result.remote_id
    assert emu.calls("material/add_material") == 1 and emu.calls("draft/add") == 1
    assert emu.calls("freepublish/submit") == 1


def test_find_published_by_job_by_draft_and_by_content(emu, wx):
    post = article("秋季征兵通告")
    since = utcnow() - timedelta(minutes=5)
    assert wx.find_published(post, since=since, resume={}) is None
    ids: dict[str, str] = {}
    result = wx.publish(post, progress=lambda step, got: ids.update(got), resume={})
    by_job = wx.find_published(post, since=since, resume={"publish_id": ids["publish_id"]})
    by_draft = wx.find_published(post, since=since, resume={"draft_id": ids["draft_id"]})
    by_content = wx.find_published(post, since=since, resume={})
    assert by_job.remote_id == by_draft.remote_id == by_content.remote_id == result.remote_id
    assert wx.find_published(post, since=utcnow() + timedelta(minutes=1), resume={}) is None
    assert wx.find_published(article("另一篇"), since=since, resume={}) is None


def test_submit_accepted_without_answer_waits_for_the_listing(emu):
    emu.admin.config(wechat_publish_delay_s=1.0)
    emu.admin.fault("wechat", "freepublish/submit", "accept_then_hang", delay_s=2)
    wx = emu.connector(timeout=0.5, poll_timeout=0.3)
    post, ids = article("社保待遇调整"), {}
    with pytest.raises(TransientError):
        wx.publish(post, progress=lambda step, got: ids.update(got), resume={})
    assert "publish_id" not in ids and emu.admin.state()["wechat"]["publishes"]
    since = utcnow() - timedelta(minutes=5)
    # The draft is gone but no article is listed yet: neither "published" nor "safe to publish again".
    with pytest.raises(TransientError, match="not publishing it again"):
        wx.find_published(post, since=since, resume=dict(ids))
    with pytest.raises(TransientError, match="no longer in the draft box"):
        wx.publish(post, progress=lambda step, got: None, resume=dict(ids))
    patient = emu.connector(poll_timeout=10)
    found = patient.find_published(post, since=since, resume=dict(ids))
    assert found is not None and list(emu.admin.state()["wechat"]["articles"]) == [found.remote_id]
    assert emu.calls("freepublish/submit") == 2
    wx.close()
    patient.close()


def test_errors_are_classified(emu, wx):
    wx.token.current()
    emu.admin.fault("wechat", "draft/add", "http_500")
    with pytest.raises(TransientError, match="HTTP 500"):
        wx.publish(article(), progress=lambda *_: None, resume={})
    emu.admin.fault("wechat", "freepublish/submit", "rate_limit")
    with pytest.raises(PermanentError, match="quota exhausted for today") as quota:
        wx.publish(article(), progress=lambda *_: None, resume={})
    assert quota.value.code == 45009 and not quota.value.transient
    emu.admin.fault("wechat", "draft/add", "timeout", delay_s=2)
    quick = emu.connector(timeout=0.5)
    with pytest.raises(TransientError, match="Timeout"):
        quick.publish(article(), progress=lambda *_: None, resume={})
    quick.close()
    emu.admin.fault("wechat", "freepublish/submit", "reject")
    with pytest.raises(PermanentError, match="publish_status 4"):
        wx.publish(article("被拒的文章"), progress=lambda *_: None, resume={})
    with pytest.raises(PermanentError, match="cover image"):
        wx.publish(OutgoingPost(publication_id=2, title="无封面", body="<p>x</p>"), progress=lambda *_: None, resume={})


def test_wrong_secret_is_permanent(emu):
    bad = WeChatConnector(appid="wxdemo0000000002", secret="wrong", engine=emu.ctx.engine,
                          api_base=emu.ctx.config.wechat_api_base, timeout=5, poll_timeout=5)
    with pytest.raises(PermanentError, match="invalid appsecret") as err:
        bad.publish(article(), progress=lambda *_: None, resume={})
    assert err.value.code == 40125
    bad.close()


def test_expired_token_is_refreshed_once_and_shared_by_all_connectors(emu, wx):
    other = emu.connector()  # another process would build its own connector on the same database
    wx.publish(article("第一篇"), progress=lambda *_: None, resume={})
    other.publish(article("第二篇"), progress=lambda *_: None, resume={})
    assert emu.calls("token") == 1
    emu.admin.fault("wechat", "draft/add", "token_expired")
    wx.publish(article("第三篇"), progress=lambda *_: None, resume={})
    other.publish(article("第四篇"), progress=lambda *_: None, resume={})
    assert emu.calls("token") == 2
    with Session(emu.ctx.engine) as s:
        row = s.exec(select(KeyValue).where(KeyValue.key == f"wechatpy:{APPID}_access_token")).one()
    assert row.expires_at > utcnow() + timedelta(hours=1)
    other.close()


def test_comments_paging_cursor_and_replies(emu, wx):
    result = wx.publish(article(), progress=lambda *_: None, resume={})
    for i in range(60):
        emu.admin.wechat_comment(msg_data_id=int(result.msg_data_id), openid=f"o{i}", content=f"留言{i}")
    target = f"{result.msg_data_id}/0"
    page = wx.list_comments(target=target, cursor="")
    assert [c.text for c in page.comments] == [f"留言{i}" for i in range(60)]
    assert page.comments[0].dedupe_key == f"{result.msg_data_id}/0/1" and page.comments[0].sender_id == "o0"
    assert wx.list_comments(target=target, cursor=page.cursor).comments == []
    emu.admin.wechat_comment(msg_data_id=int(result.msg_data_id), openid="o99", content="新留言")
    newer = wx.list_comments(target=target, cursor=page.cursor)
    assert [c.text for c in newer.comments] == ["新留言"]
    assert wx.reply_comment(newer.comments[0], "感谢留言，已转相关部门。") == ""
    with pytest.raises(ReplyRefused, match="already has a reply"):
        wx.reply_comment(newer.comments[0].reply_target, "再次回复")
    again = wx.list_comments(target=target, cursor="")
    assert again.comments[-1].replied and not again.comments[0].replied


def test_customer_service_message_only_within_48_hours(emu, wx):
    emulated_wechat.record_user_action(emu.state, APPID, "o-citizen", "text")
    wx.send_message("o-citizen", "您反映的问题已受理。")
    assert emu.admin.state()["wechat"]["custom_messages"][0]["text"]["content"] == "您反映的问题已受理。"
    emu.admin.advance(49 * 3600)
    with pytest.raises(ReplyRefused, match="48-hour window closed"):
        wx.send_message("o-citizen", "补充答复")


def test_stats_come_from_the_data_cube_once_the_day_is_over(emu, wx):
    result = wx.publish(article(), progress=lambda *_: None, resume={})
    emu.admin.wechat_comment(msg_data_id=int(result.msg_data_id), openid="o1", content="好")
    published = PublishResult(remote_id=result.remote_id, msg_data_id=result.msg_data_id, published_at=utcnow())
    today = wx.fetch_stats(published)
    assert today.reads is None and today.comments == 1
    emu.admin.advance(24 * 3600)
    later = wx.fetch_stats(published)
    assert later.reads and later.reads > 0 and later.shares is not None and later.comments == 1
