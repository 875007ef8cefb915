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
    AwaitingOutcome,
    ConfigurationError,
    Cover,
    OutgoingPost,
    PermanentError,
    PublishResult,
    ReplyRefused,
    TransientError,
)
from bot.connectors.quota import QuotaWait, budget_overview
from bot.connectors.registry import ledger_for
from bot.connectors.wechat import WeChatConnector, comparable_article
from bot.context import Context
from bot.emulator import wechat as emulated_wechat
from bot.emulator.state import EmulatorState
from bot.emulator.testing import EmulatorAdmin, run_emulator
from bot.models import Account, KeyValue
from bot.service import register_emulator_accounts
from tests.test_scheduler_support import png

APPID, SECRET = "wxdemo0000000001", "demo-appsecret-0001"


@dataclass
class Emu:
    url: str
    state: EmulatorState
    admin: EmulatorAdmin
    ctx: Context

    def account(self, appid: str = APPID) -> Account:
        with Session(self.ctx.engine) as s:
            return s.exec(select(Account).where(Account.remote_id == appid)).one()

    def connector(self, *, appid: str = APPID, secret: str = SECRET, timeout: float = 5.0) -> WeChatConnector:
        return WeChatConnector(appid=appid, secret=secret, engine=self.ctx.engine,
                               api_base=self.ctx.config.wechat_api_base, timeout=timeout,
                               ledger=ledger_for(self.ctx, self.account(appid)))

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


def published(emu: Emu, wx: WeChatConnector, post: OutgoingPost, ids: dict[str, str] | None = None) -> PublishResult:
    """Submit, let the job run (the emulator's clock), then read its outcome once."""
    ids = {} if ids is None else ids
    submitted = wx.publish(post, progress=lambda step, got: ids.update(got), resume=dict(ids))
    assert submitted.pending and submitted.remote_id == ""
    emu.admin.advance(3)
    return wx.job_outcome(ids["publish_id"], ids.get("msg_data_id"))


def test_publish_hands_over_each_id_and_leaves_the_outcome_to_the_push(emu, wx):
    seen: list[tuple[str, dict[str, str], int, int]] = []

    def progress(step: str, ids: dict[str, str]) -> None:
        snap = emu.admin.state()["wechat"]
        seen.append((step, ids, len(snap["drafts"]), len(snap["publishes"])))

    result = wx.publish(article(), progress=progress, resume={})
    assert [(s[0], sorted(s[1])) for s in seen] == [
        ("draft", ["media_id"]), ("submit", ["draft_id"]), ("awaiting_push", ["msg_data_id", "publish_id"])]
    # Each id was handed over before the call that follows it was made.
    assert [(s[2], s[3]) for s in seen] == [(0, 0), (1, 0), (0, 1)]
    assert result.pending and emu.calls("freepublish/get") == 0
    publish_id = seen[-1][1]["publish_id"]
    with pytest.raises(AwaitingOutcome, match="still publishing"):
        wx.job_outcome(publish_id, result.msg_data_id)
    emu.admin.advance(3)
    done = wx.job_outcome(publish_id, result.msg_data_id)
    stored = emu.admin.state()["wechat"]["articles"][done.remote_id]
    assert done.msg_data_id == str(stored["msg_data_id"]) and done.url == stored["news_item"][0]["url"]
    assert stored["news_item"][0]["need_open_comment"] == 1


def test_byline_comments_switch_and_body_images_are_uploaded(emu, wx):
    post = OutgoingPost(publication_id=3, title="图文", body='<p>见图</p><img src="/media/7"><img src="https://x.cn/a.png">',
                        cover=Cover("cover.png", png(), "image/png"), author="宣传办", open_comment=False,
                        images={"/media/7": Cover("in.png", png(), "image/png")})
    done = published(emu, wx, post)
    item = emu.admin.state()["wechat"]["articles"][done.remote_id]["news_item"][0]
    assert item["author"] == "宣传办" and item["need_open_comment"] == 0
    # Ours was uploaded and rewritten to WeChat's URL; the external one was filtered out by WeChat.
    assert 'src="http://mmbiz.qpic.cn/' in item["content"] and "x.cn" not in item["content"]
    assert emu.calls("media/uploadimg") == 1


def test_resume_reads_a_submitted_job_and_submits_a_stored_draft(emu, wx):
    ids: dict[str, str] = {}

    def crash_before_submit(step: str, got: dict[str, str]) -> None:
        ids.update(got)
        if step == "submit":
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        wx.publish(article(), progress=crash_before_submit, resume={})
    assert sorted(ids) == ["draft_id", "media_id"]
    result = published(emu, wx, article(), ids)
    again = wx.publish(article(), progress=lambda step, got: pytest.fail("nothing new to report"),
                       resume={"publish_id": ids["publish_id"], "msg_data_id": ids["msg_data_id"]})
    assert again.remote_id == result.remote_id and not again.pending
    assert emu.calls("material/add_material") == 1 and emu.calls("draft/add") == 1
    assert emu.calls("freepublish/submit") == 1


def test_find_published_by_job_by_draft_and_by_visible_text(emu, wx):
    post = article("秋季征兵通告")
    since = utcnow() - timedelta(minutes=5)
    assert wx.find_published(post, since=since, resume={}) is None
    ids: dict[str, str] = {}
    result = published(emu, wx, post, ids)
    by_job = wx.find_published(post, since=since, resume={"publish_id": ids["publish_id"]})
    by_draft = wx.find_published(post, since=since, resume={"draft_id": ids["draft_id"]})
    # WeChat rewrites the HTML: the same text in other markup is the same article, other text is not.
    rewritten = OutgoingPost(publication_id=1, title=" 秋季征兵通告", body="<section><span>秋季征兵通告：</span>"
                             "<span>施工期间请绕行。</span></section>")
    by_content = wx.find_published(rewritten, since=since, resume={})
    assert by_job.remote_id == by_draft.remote_id == by_content.remote_id == result.remote_id
    assert wx.find_published(post, since=utcnow() + timedelta(minutes=1), resume={}) is None
    assert wx.find_published(article("另一篇"), since=since, resume={}) is None


def test_comparable_article_ignores_markup_not_text():
    assert comparable_article("标题", "<p>一 二</p>") == comparable_article("标题 ", "<div>一</div>\n<b>二</b>")
    assert comparable_article("标题", "<p>一二</p>") != comparable_article("标题", "<p>一二三</p>")


def test_submit_accepted_without_answer_waits_for_the_outcome(emu):
    emu.admin.fault("wechat", "freepublish/submit", "accept_then_hang", delay_s=2)
    wx = emu.connector(timeout=0.5)
    post, ids = article("社保待遇调整"), {}
    with pytest.raises(TransientError):
        wx.publish(post, progress=lambda step, got: ids.update(got), resume={})
    assert "publish_id" not in ids and emu.admin.state()["wechat"]["publishes"]
    since = utcnow() - timedelta(minutes=5)
    # The draft is gone but no article is listed yet: neither "published" nor "safe to publish again".
    with pytest.raises(AwaitingOutcome, match="not publishing it again"):
        wx.find_published(post, since=since, resume=dict(ids))
    with pytest.raises(AwaitingOutcome, match="no longer in the draft box"):
        wx.publish(post, progress=lambda step, got: None, resume=dict(ids))
    emu.admin.advance(3)
    found = wx.find_published(post, since=since, resume=dict(ids))
    assert found is not None and list(emu.admin.state()["wechat"]["articles"]) == [found.remote_id]
    assert emu.calls("freepublish/submit") == 2
    wx.close()


def test_errors_are_classified(emu, wx):
    wx.token.current()
    emu.admin.fault("wechat", "draft/add", "http_500")
    with pytest.raises(TransientError, match="HTTP 500"):
        wx.publish(article(), progress=lambda *_: None, resume={})
    emu.admin.fault("wechat", "draft/add", "timeout", delay_s=2)
    quick = emu.connector(timeout=0.5)
    with pytest.raises(TransientError, match="Timeout"):
        quick.publish(article(), progress=lambda *_: None, resume={})
    quick.close()
    emu.admin.fault("wechat", "freepublish/submit", "reject")
    ids: dict[str, str] = {}
    wx.publish(article("被拒的文章"), progress=lambda step, got: ids.update(got), resume={})
    emu.admin.advance(3)
    with pytest.raises(PermanentError, match="publish_status 4"):
        wx.job_outcome(ids["publish_id"], None)
    with pytest.raises(PermanentError, match="cover image"):
        wx.publish(OutgoingPost(publication_id=2, title="无封面", body="<p>x</p>"), progress=lambda *_: None, resume={})


def test_platform_quota_error_closes_the_window_and_is_never_permanent(emu, wx):
    wx.token.current()
    emu.admin.fault("wechat", "freepublish/submit", "rate_limit")
    with pytest.raises(QuotaWait, match="quota exhausted by the platform") as quota:
        wx.publish(article(), progress=lambda *_: None, resume={})
    assert quota.value.code == 45009 and quota.value.transient and quota.value.api == "freepublish/submit"
    # The window stays closed: the next call waits without asking the platform.
    submits = emu.calls("freepublish/submit")
    with pytest.raises(QuotaWait):
        wx.publish(article(), progress=lambda *_: None, resume={})
    assert emu.calls("freepublish/submit") == submits
    with Session(emu.ctx.engine) as s:
        [line] = [b for b in budget_overview(s, emu.account().id, config=emu.ctx.config) if b.api == "freepublish/submit"]
    assert line.closed and line.remaining == 0 and line.limit == 100


@pytest.mark.parametrize("token_api", ["stable_token", "token"])
def test_wrong_secret_is_permanent_and_says_what_to_fix(emu, token_api):
    bad = emu.connector(appid="wxdemo0000000002", secret="wrong")
    bad.token_api = token_api
    with pytest.raises(ConfigurationError, match="AppSecret") as err:
        bad.publish(article(), progress=lambda *_: None, resume={})
    assert err.value.code == 40125 and not err.value.transient and "基本配置" in err.value.advice
    bad.close()


def test_ip_whitelist_error_is_permanent_and_says_what_to_fix(emu, wx):
    emu.admin.config(wechat_ip_whitelist=["203.0.113.9"])
    with pytest.raises(ConfigurationError, match="IP 白名单") as err:
        wx.publish(article(), progress=lambda *_: None, resume={})
    assert err.value.code == 40164 and not err.value.transient


def test_stable_token_is_shared_and_survives_another_tool_fetching_a_token(emu, wx):
    other = emu.connector()  # another process would build its own connector on the same database
    wx.publish(article("第一篇"), progress=lambda *_: None, resume={})
    other.publish(article("第二篇"), progress=lambda *_: None, resume={})
    assert emu.calls("stable_token") == 1 and emu.calls("token") == 0
    # Another tool on the same AppID fetches a token the old way: ours stays valid.
    import httpx
    httpx.get(f"{emu.url}/wechat/cgi-bin/token", params={"grant_type": "client_credential", "appid": APPID,
                                                         "secret": SECRET}).raise_for_status()
    wx.publish(article("第三篇"), progress=lambda *_: None, resume={})
    assert emu.calls("stable_token") == 1
    emu.admin.fault("wechat", "draft/add", "token_expired")
    wx.publish(article("第四篇"), progress=lambda *_: None, resume={})
    other.publish(article("第五篇"), progress=lambda *_: None, resume={})
    assert emu.calls("stable_token") == 2
    with Session(emu.ctx.engine) as s:
        row = s.exec(select(KeyValue).where(KeyValue.key == f"wechatpy:{APPID}_access_token")).one()
    assert row.expires_at > utcnow() + timedelta(hours=1)
    other.close()


def test_comments_paging_cursor_rescan_and_replies(emu, wx):
    result = published(emu, wx, article())
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
    # The replied comment moved to the top (the list is not append-only): a full rescan still sees all.
    again = wx.list_comments(target=target, cursor="", full=True)
    assert again.comments[0].replied and again.comments[0].text == "新留言" and len(again.comments) == 61


def test_customer_service_message_only_within_48_hours(emu, wx):
    emulated_wechat.record_user_action(emu.state, APPID, "o-citizen", "text")
    wx.send_message("o-citizen", "您反映的问题已受理。")
    assert emu.admin.state()["wechat"]["custom_messages"][0]["text"]["content"] == "您反映的问题已受理。"
    emu.admin.advance(49 * 3600)
    with pytest.raises(ReplyRefused, match="48-hour window closed"):
        wx.send_message("o-citizen", "补充答复")


def test_stats_of_freepublish_articles_come_from_getarticletotaldetail(emu, wx):
    result = published(emu, wx, article())
    emu.admin.wechat_comment(msg_data_id=int(result.msg_data_id), openid="o1", content="好")
    at = PublishResult(remote_id=result.remote_id, msg_data_id=result.msg_data_id, published_at=utcnow())
    today = wx.fetch_stats(at)
    assert today.reads is None and today.comments == 1 and today.unavailable is None
    emu.admin.advance(24 * 3600)
    later = wx.fetch_stats(at)
    assert later.reads and later.reads > 0 and later.shares is not None and later.comments == 1
    assert emu.calls("datacube/getarticletotaldetail") >= 1 and emu.calls("datacube/getarticletotal") == 0
