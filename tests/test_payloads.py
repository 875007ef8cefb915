"""Every recorded payload (tests/payloads/wechat, tests/payloads/weibo) through the real code paths.

Pushes go through govbot's callback; API answers are replayed by a small HTTP server on loopback
to the real connectors, which must read or classify each one as the platforms document it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from starlette.responses import Response

from bot.clock import to_local
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
from bot.connectors.quota import QuotaWait
from bot.connectors.registry import ledger_for
from bot.connectors.wechat import WeChatConnector
from bot.connectors.weibo import RepeatedContent, WeiboConnector
from bot.context import Context
from bot.emulator.testing import serve_app
from bot.inbound.callback import sign
from bot.inbound.events import is_system_event
from bot.inbound.processing import process_pending
from bot.models import Account, Message, SystemEvent
from bot.oversight.reports import compute_report, month_period, resolve_scope
from bot.web.app import create_app
from tests.test_scheduler_support import png

PAYLOADS = Path(__file__).parent / "payloads"
WECHAT_PUSHES = sorted(p for p in (PAYLOADS / "wechat").glob("*.xml") if not p.name.startswith("hostile_"))
APPID, TOKEN = "wxdemo0000000001", "demotoken0001"


def signed() -> dict[str, str]:
    # A fresh nonce each request: the callback refuses a timestamp and nonce seen before with another message.
    ts, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    return {"signature": sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce, "openid": "o1"}


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx), raise_server_exceptions=False) as c:
        yield c


def deliver(ctx: Context, client: TestClient, path: Path):
    """The push through the callback, then through the inbound.process job that makes it a message or event."""
    r = client.post(f"/wechat/callback/{APPID}", params=signed(), content=path.read_bytes(),
                    headers={"Content-Type": "text/xml"})
    process_pending(ctx)
    return r


def _kind(path: Path) -> tuple[str, str]:
    text = path.read_text(encoding="utf-8")
    msg_type = text.split("<MsgType><![CDATA[")[1].split("]]>")[0]
    event = text.split("<Event><![CDATA[")[1].split("]]>")[0] if "<Event>" in text else ""
    return msg_type, event


@pytest.mark.parametrize("path", WECHAT_PUSHES, ids=lambda p: p.stem)
def test_every_recorded_push_goes_through_the_callback(ctx, client, path):
    r = deliver(ctx, client, path)
    assert r.status_code == 200, r.text
    with Session(ctx.engine) as s:
        messages = s.exec(select(Message)).all()
        events = s.exec(select(SystemEvent)).all()
    if is_system_event(*_kind(path)):
        # Stored apart, never a message: no triage, no ticket, no count.
        assert len(events) == 1 and messages == [] and events[0].outcome
        assert deliver(ctx, client, path).status_code == 200  # a redelivery is stored once
        with Session(ctx.engine) as s:
            assert len(s.exec(select(SystemEvent)).all()) == 1
    else:
        assert len(messages) == 1 and events == []


def test_system_event_outcomes(ctx, client):
    for name in ("event_publishjobfinish", "event_publishjobfinish_failed", "event_masssendjobfinish",
                 "event_templatesendjobfinish", "event_location", "event_user_get_card"):
        assert deliver(ctx, client, PAYLOADS / "wechat" / f"{name}.xml").status_code == 200
    with Session(ctx.engine) as s:
        events = {e.event + ("_failed" if "2247503052" in e.subject else ""): e for e in s.exec(select(SystemEvent))}
    assert events["publishjobfinish"].subject == "2247503051"
    assert "no publication with publish_id 2247503051" in events["publishjobfinish"].outcome
    assert events["masssendjobfinish"].subject == "1000001625" and "err(30003)" in events["masssendjobfinish"].outcome
    assert events["templatesendjobfinish"].outcome == "send job ended: success"
    assert "not a message" in events["location"].outcome
    assert events["user_get_card"].subject == "po2VNuCuRo-8sxxxxxxxxxxx"


def test_two_publish_jobs_finishing_in_one_second_are_two_events(ctx, client, tmp_path):
    first = PAYLOADS / "wechat" / "event_publishjobfinish.xml"
    second = tmp_path / "second.xml"
    second.write_text(first.read_text(encoding="utf-8").replace("2247503051", "2247503099"), encoding="utf-8")
    for path in (first, second, first):
        assert deliver(ctx, client, path).status_code == 200
    with Session(ctx.engine) as s:
        assert sorted(e.subject for e in s.exec(select(SystemEvent))) == ["2247503051", "2247503099"]


def test_monthly_report_counts_exclude_a_delivered_publishjobfinish(ctx, client):
    for name in ("text.xml", "event_publishjobfinish.xml", "event_location.xml", "event_masssendjobfinish.xml"):
        assert deliver(ctx, client, PAYLOADS / "wechat" / name).status_code == 200
    with ctx.session() as s:
        assert len(s.exec(select(SystemEvent)).all()) == 3
        # The recorded CreateTime is too old to believe: the message counts in the month it arrived.
        [message] = s.exec(select(Message)).all()
        start, end = month_period(f"{to_local(message.received_at, ctx.tz):%Y-%m}", ctx.tz)
        scope = resolve_scope(session=s, account="示例县发布")
        report = compute_report(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, start=start,
                                end=end, now=end)
    figures = report.rows[0].figures
    assert (figures.messages, figures.received) == (1, 1)


# ---- the connectors against recorded API answers -------------------------------------------------------


class Replay:
    """An HTTP server answering each path with a recorded payload (set per test)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, Path]] = {}
        self.requests: list[tuple[str, dict]] = []
        self.bodies: list[tuple[str, bytes]] = []
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST"])
        async def answer(path: str, request: Request) -> Response:
            self.bodies.append((path, await request.body()))
            form = dict(await request.form()) if request.headers.get("content-type", "").startswith(
                ("multipart/", "application/x-www-form-urlencoded")) else {}
            self.requests.append((path, {k: v for k, v in form.items() if isinstance(v, str)}))
            for suffix, (_platform, file) in self.routes.items():
                if path.endswith(suffix):
                    return Response(file.read_bytes(), media_type="application/json")
            return Response(json.dumps({"errcode": 48001, "errmsg": f"not recorded: {path}"}),
                            media_type="application/json")

        self.app = app

    def answer(self, path: str, platform: str, name: str) -> None:
        self.routes[path] = (platform, PAYLOADS / platform / name)


@pytest.fixture
def replay() -> Iterator[tuple[Replay, str]]:
    r = Replay()
    with serve_app(r.app) as url:
        yield r, url


def _account(ctx: Context, remote_id: str) -> Account:
    with Session(ctx.engine) as s:
        return s.exec(select(Account).where(Account.remote_id == remote_id)).one()


@pytest.fixture
def wx(ctx, replay) -> Iterator[tuple[Replay, WeChatConnector]]:
    r, url = replay
    r.answer("stable_token", "wechat", "api/stable_token.json")
    c = WeChatConnector(appid=APPID, secret="demo-appsecret-0001", engine=ctx.engine, api_base=f"{url}/cgi-bin/",
                        timeout=5, ledger=ledger_for(ctx, _account(ctx, APPID)))
    yield r, c
    c.close()


def post() -> OutgoingPost:
    return OutgoingPost(publication_id=1, title="关于开展秋季防火的通知", body="<p>请广大居民注意用火安全。</p>",
                        cover=Cover("c.png", png(), "image/png"))


def test_wechat_publishing_answers(wx):
    r, c = wx
    for path, name in [("material/add_material", "material_add_material"), ("draft/add", "draft_add"),
                       ("freepublish/submit", "freepublish_submit")]:
        r.answer(path, "wechat", f"api/{name}.json")
    ids: dict[str, str] = {}
    result = c.publish(post(), progress=lambda _s, got: ids.update(got), resume={})
    assert result.pending and ids == {"media_id": "MEDIA_ID_PERMANENT_COVER", "draft_id": "MEDIA_ID_DRAFT",
                                      "publish_id": "100000001", "msg_data_id": "2247483649"}
    r.answer("freepublish/get", "wechat", "api/freepublish_get_publishing.json")
    with pytest.raises(AwaitingOutcome):
        c.job_outcome("100000001", "2247483649")
    r.answer("freepublish/get", "wechat", "api/freepublish_get_failed.json")
    with pytest.raises(PermanentError, match="原创声明失败.*articles \\[1\\]"):
        c.job_outcome("100000001", "2247483649")
    r.answer("freepublish/get", "wechat", "api/freepublish_get_success.json")
    done = c.job_outcome("100000001", "2247483649")
    assert (done.remote_id, done.url) == ("ARTICLE_ID", "https://mp.weixin.qq.com/s/ARTICLE")
    # The published list holds WeChat's rewritten HTML: recognised by title and visible text.
    r.answer("freepublish/batchget", "wechat", "api/freepublish_batchget.json")
    from datetime import UTC, datetime
    found = c.find_published(post(), since=datetime(2025, 12, 31, tzinfo=UTC), resume={})
    assert found is not None and found.remote_id == "ARTICLE_ID"
    r.answer("media/uploadimg", "wechat", "api/media_uploadimg.json")
    with_image = OutgoingPost(publication_id=2, title="图", body='<img src="/media/1">', cover=post().cover,
                              images={"/media/1": Cover("i.png", png(), "image/png")})
    c.publish(with_image, progress=lambda *_: None, resume={})
    drafted = json.loads([b for p, b in r.bodies if p.endswith("draft/add")][-1])
    assert drafted["articles"][0]["content"] == '<img src="http://mmbiz.qpic.cn/mmbiz_png/body/0">'
    assert drafted["articles"][0]["need_open_comment"] == 1


def test_wechat_comment_message_and_stats_answers(wx):
    r, c = wx
    r.answer("comment/list", "wechat", "api/comment_list.json")
    page = c.list_comments(target="2247483649/0", cursor="")
    assert [x.text for x in page.comments] == ["请问社保卡丢了怎么补办？", "点赞👍"]
    assert page.comments[1].sender_id == "" and page.comments[1].replied  # openid absent for some commenters
    r.answer("comment/reply/add", "wechat", "api/comment_reply_add.json")
    assert c.reply_comment(page.comments[0], "您好") == ""
    r.answer("comment/reply/add", "wechat", "api/error_88005.json")
    with pytest.raises(ReplyRefused):
        c.reply_comment(page.comments[0], "再答")
    r.answer("message/custom/send", "wechat", "api/message_custom_send.json")
    c.send_message("oWx3L5Qd2kE8xyZc1TeXt000021", "已受理")
    r.answer("message/custom/send", "wechat", "api/error_45015.json")
    with pytest.raises(ReplyRefused):
        c.send_message("oWx3L5Qd2kE8xyZc1TeXt000021", "已受理")
    r.answer("datacube/getarticletotaldetail", "wechat", "api/getarticletotaldetail.json")
    from datetime import UTC, datetime
    stats = c.fetch_stats(PublishResult(remote_id="A", msg_data_id="2247483649",
                                        published_at=datetime(2026, 1, 1, 2, tzinfo=UTC)))
    assert (stats.reads, stats.shares, stats.comments) == (4423, 60, 2)
    r.answer("datacube/getarticletotaldetail", "wechat", "api/error_48001.json")
    stats = c.fetch_stats(PublishResult(remote_id="A", msg_data_id="2247483649",
                                        published_at=datetime(2026, 1, 1, 2, tzinfo=UTC)))
    assert stats.reads is None and "未提供" in stats.unavailable


@pytest.mark.parametrize(("name", "expected", "transient"), [
    ("error_40001", TransientError, True),  # a stale token: refreshed once, then retried later
    ("error_40125", ConfigurationError, False),
    ("error_40164", ConfigurationError, False),
    ("error_45009", QuotaWait, True),
    ("error_40007", PermanentError, False),
    ("error_45003", PermanentError, False),
    ("error_48001", ConfigurationError, False),
])
def test_wechat_error_answers_are_classified(wx, name, expected, transient):
    r, c = wx
    r.answer("material/add_material", "wechat", "api/material_add_material.json")
    r.answer("draft/add", "wechat", f"api/{name}.json")
    with pytest.raises(expected) as err:
        c.publish(post(), progress=lambda *_: None, resume={})
    assert err.value.transient is transient and str(err.value.code) == name.split("_")[1]


@pytest.mark.parametrize(("name", "token_api"), [("error_40001", "stable_token"), ("error_40125", "stable_token"),
                                                 ("error_40164", "token")])
def test_token_answers_that_mean_a_wrong_setup_are_permanent(wx, name, token_api):
    r, c = wx
    c.token_api = token_api
    r.routes.clear()
    r.answer(token_api, "wechat", f"api/{name}.json")
    with pytest.raises(ConfigurationError) as err:
        c.token.refresh(stale=None)
    assert not err.value.transient and err.value.advice
    r.answer("token", "wechat", "api/token.json")
    r.answer("stable_token", "wechat", "api/stable_token.json")
    assert c.token.refresh(stale=None).startswith("ACCESS_TOKEN_FROM_")


@pytest.fixture
def wb(ctx, replay) -> Iterator[tuple[Replay, WeiboConnector]]:
    r, url = replay
    c = WeiboConnector(uid="5000000001", access_token="t", api_base=f"{url}/2/", timeout=5,
                       ledger=ledger_for(ctx, _account(ctx, "5000000001")), rip="203.0.113.7")
    yield r, c
    c.close()


def status() -> OutgoingPost:
    return OutgoingPost(publication_id=1, title="t", body="<p>x</p>", weibo_text="【通知】城区供水管网检修 https://gov.example.cn/n/7")


def test_weibo_answers(wb):
    r, c = wb
    r.answer("statuses/share.json", "weibo", "statuses_share.json")
    result = c.publish(status(), progress=lambda *_: None, resume={})
    assert result.remote_id == "5012345678901234"
    assert [f for p, f in r.requests if p.endswith("share.json")][0]["rip"] == "203.0.113.7"
    r.answer("statuses/user_timeline.json", "weibo", "statuses_user_timeline.json")
    from datetime import UTC, datetime
    found = c.find_published(status(), since=datetime(2025, 12, 31, tzinfo=UTC), resume={})
    assert found is not None and found.remote_id == "5012345678901234"
    for path, name in [("comments/to_me.json", "comments_to_me.json"), ("comments/show.json", "comments_show.json")]:
        r.answer(path, "weibo", name)
    assert [x.text for x in c.list_comments(target="to_me", cursor="").comments] == ["请问停水到几点？"]
    assert c.list_comments(target="5012345678901234", cursor="").comments[0].sender_name == "网友甲"
    r.answer("comments/reply.json", "weibo", "comments_reply.json")
    assert c.reply_comment({"cid": "4900000000000001", "id": "5012345678901234"}, "预计18点恢复") == "4900000000000002"
    r.answer("statuses/count.json", "weibo", "statuses_count.json")
    stats = c.fetch_stats(result)
    assert (stats.likes, stats.shares, stats.comments) == (9, 2, 3)


@pytest.mark.parametrize(("name", "path", "expected", "transient"), [
    ("error_10016_rip", "statuses/share.json", PermanentError, False),
    ("error_10022", "statuses/share.json", QuotaWait, True),
    ("error_10023", "statuses/share.json", QuotaWait, True),
    ("error_10024", "comments/reply.json", QuotaWait, True),
    ("error_20012", "statuses/share.json", PermanentError, False),
    ("error_20016", "statuses/share.json", QuotaWait, True),
    ("error_20019", "statuses/share.json", RepeatedContent, False),
    ("error_20021", "statuses/share.json", PermanentError, False),
    ("error_20101", "comments/reply.json", ReplyRefused, False),
    ("error_21327", "statuses/share.json", PermanentError, False),
    ("error_21332", "statuses/share.json", PermanentError, False),
    ("error_21501", "statuses/share.json", PermanentError, False),
])
def test_weibo_error_answers_are_classified(wb, name, path, expected, transient):
    r, c = wb
    r.answer(path, "weibo", f"{name}.json")
    r.answer("statuses/user_timeline.json", "weibo", "statuses_user_timeline.json")
    with pytest.raises(expected) as err:
        if path == "comments/reply.json":
            c.reply_comment({"cid": "1", "id": "2"}, "x")
        else:
            c.publish(status(), progress=lambda *_: None, resume={})
    assert err.value.transient is transient
    token_error = "authorise the app again" in str(err.value)
    assert token_error is (name in ("error_21327", "error_21332"))  # 21501 is "Urls is null", not a token error
    if name == "error_10024":
        assert err.value.api == "comments"
