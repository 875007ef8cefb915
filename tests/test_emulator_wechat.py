"""The WeChat side of the emulator, driven through wechatpy's real WeChatClient over HTTP."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi import FastAPI, Request
from starlette.responses import Response
from wechatpy.exceptions import APILimitedException, WeChatClientException

from bot.emulator.state import BEIJING, EmulatorState
from bot.emulator.testing import EmulatorAdmin, run_emulator, serve_app, wechat_client

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
APPID, SECRET = "wx_emulator_test", "s3cret"


@pytest.fixture
def emu() -> Iterator[tuple[str, EmulatorState]]:
    state = EmulatorState()
    with run_emulator(state) as base_url:
        yield base_url, state


@pytest.fixture
def client(emu):
    return wechat_client(emu[0], APPID, SECRET)


def errcode(exc_info) -> int:
    return exc_info.value.errcode


def upload_thumb(client) -> str:
    return client.material.add("image", ("cover.png", io.BytesIO(PNG), "image/png"))["media_id"]


def add_draft(client, **overrides) -> str:
    article = {"title": "镇政府关于秋季防火的通知", "author": "宣传办", "digest": "",
               "content": "<p>请广大居民注意用火安全。</p>", "content_source_url": "",
               "thumb_media_id": upload_thumb(client), "need_open_comment": 1,
               "only_fans_can_comment": 0}
    article.update(overrides)
    return client.post("draft/add", data={"articles": [article]})["media_id"]


def job_delay_passes(client) -> None:
    """Move the emulator's clock past the publish job's run time (polling does not hurry it)."""
    EmulatorAdmin(client.API_BASE_URL.split("/wechat/")[0]).advance(3)


def publish(client, **overrides) -> dict:
    submitted = client.post("freepublish/submit", data={"media_id": add_draft(client, **overrides)})
    first = client.post("freepublish/get", data={"publish_id": submitted["publish_id"]})
    job_delay_passes(client)
    final = client.post("freepublish/get", data={"publish_id": submitted["publish_id"]})
    return {"submitted": submitted, "first": first, "final": final}


# ---- tokens --------------------------------------------------------------------------

def test_token_auto_registers_and_binds_the_secret(emu, client):
    assert len(client.access_token) > 20
    other = wechat_client(emu[0], APPID, "wrong-secret")
    with pytest.raises(WeChatClientException) as exc:
        other.fetch_access_token()
    assert errcode(exc) == 40125
    assert "invalid appsecret" in exc.value.errmsg


def test_unknown_and_expired_tokens(emu, client):
    base_url, _ = emu
    forged = wechat_client(base_url, APPID, SECRET, access_token="not-a-token")
    with pytest.raises(WeChatClientException) as exc:
        forged.get("draft/count")
    assert errcode(exc) == 40001
    token = client.access_token
    EmulatorAdmin(base_url).advance(7201)
    stale = wechat_client(base_url, APPID, SECRET, access_token=token)
    with pytest.raises(WeChatClientException) as exc:
        stale.get("draft/count")
    assert errcode(exc) == 42001


def test_missing_token_and_wrong_method(emu, client):
    import httpx

    base_url, _ = emu
    body = httpx.post(f"{base_url}/wechat/cgi-bin/draft/add", json={}).json()
    assert body["errcode"] == 41001
    body = httpx.get(f"{base_url}/wechat/cgi-bin/freepublish/submit",
                     params={"access_token": client.access_token}).json()
    assert body["errcode"] == 43002
    body = httpx.post(f"{base_url}/wechat/cgi-bin/draft/add",
                      params={"access_token": client.access_token}, content=b"{oops").json()
    assert body["errcode"] == 47001


def test_new_token_supersedes_old_after_grace(emu, client):
    base_url, _ = emu
    old = client.access_token
    client.fetch_access_token()
    assert client.access_token != old
    stale = wechat_client(base_url, APPID, SECRET, access_token=old)
    assert stale.get("draft/count") == {"total_count": 0}  # still valid for 5 minutes
    EmulatorAdmin(base_url).advance(301)
    with pytest.raises(WeChatClientException) as exc:
        stale.get("draft/count")
    assert errcode(exc) == 40001


def test_stable_token_is_shared_until_forced(emu):
    import httpx

    base_url, _ = emu
    url = f"{base_url}/wechat/cgi-bin/stable_token"
    body = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    first = httpx.post(url, json=body).json()
    second = httpx.post(url, json=body).json()
    forced = httpx.post(url, json={**body, "force_refresh": True}).json()
    assert first["access_token"] == second["access_token"] != forced["access_token"]
    assert forced["expires_in"] == 7200


def test_token_daily_quota(emu):
    base_url, _ = emu
    EmulatorAdmin(base_url).config(wechat_quotas={"token": 2})
    client = wechat_client(base_url, APPID, SECRET)
    client.fetch_access_token()
    client.fetch_access_token()
    with pytest.raises(WeChatClientException) as exc:
        client.fetch_access_token()
    assert errcode(exc) == 45009
    assert EmulatorAdmin(base_url).state()["counters"]["calls"]["wechat token"] == 3


def test_registered_account_rejects_auto_registration_when_off(emu):
    base_url, _ = emu
    admin = EmulatorAdmin(base_url)
    admin.config(auto_register=False)
    admin.register_wechat(appid="wx_known", secret="k", token="t")
    assert wechat_client(base_url, "wx_known", "k").access_token
    with pytest.raises(WeChatClientException) as exc:
        wechat_client(base_url, "wx_unknown", "k").fetch_access_token()
    assert errcode(exc) == 40013


# ---- media and drafts ----------------------------------------------------------------

def test_material_add_keeps_the_image(emu, client):
    result = client.material.add("image", ("cover.png", io.BytesIO(PNG), "image/png"))
    assert result["url"].startswith("http://mmbiz.qpic.cn/")
    assert client.material.get(result["media_id"]).content == PNG
    with pytest.raises(WeChatClientException) as exc:
        client.material.add("image", ("x.png", io.BytesIO(b"not an image"), "image/png"))
    assert errcode(exc) == 40005
    with pytest.raises(WeChatClientException) as exc:
        client.material.add("sticker", ("x.png", io.BytesIO(PNG), "image/png"))
    assert errcode(exc) == 40004
    inline = client.media.upload_image(("inline.png", io.BytesIO(PNG), "image/png"))
    assert inline.startswith("http://mmbiz.qpic.cn/mmbiz_png/")


@pytest.mark.parametrize(("overrides", "code"), [
    ({"thumb_media_id": "missing"}, 40007),
    ({"title": "标" * 33}, 45003),
    ({"content": ""}, 44004),
    ({"digest": "摘" * 129}, 45004),
    ({"author": "作" * 17}, 45110),
])
def test_draft_add_validation(client, overrides, code):
    with pytest.raises(WeChatClientException) as exc:
        add_draft(client, **overrides)
    assert errcode(exc) == code


def test_draft_get_update_delete(client):
    media_id = add_draft(client, title="标" * 32)
    news = client.post("draft/get", data={"media_id": media_id})["news_item"]
    assert news[0]["title"] == "标" * 32 and news[0]["digest"] == "请广大居民注意用火安全。"
    client.post("draft/update", data={"media_id": media_id, "index": 0, "articles": {
        **news[0], "title": "更新后的标题"}})
    assert client.post("draft/get", data={"media_id": media_id})["news_item"][0]["title"] == "更新后的标题"
    assert client.get("draft/count") == {"total_count": 1}
    assert client.post("draft/delete", data={"media_id": media_id})["errcode"] == 0
    with pytest.raises(WeChatClientException) as exc:
        client.post("draft/get", data={"media_id": media_id})
    assert errcode(exc) == 40007


def test_drafts_are_per_account(emu, client):
    media_id = add_draft(client)
    other = wechat_client(emu[0], "wx_other", "x")
    with pytest.raises(WeChatClientException) as exc:
        other.post("freepublish/submit", data={"media_id": media_id})
    assert errcode(exc) == 40007


# ---- publishing ----------------------------------------------------------------------

def test_publish_is_asynchronous_and_consumes_the_draft(client):
    media_id = add_draft(client)
    submitted = client.post("freepublish/submit", data={"media_id": media_id})
    assert submitted["errcode"] == 0 and isinstance(submitted["msg_data_id"], int)
    first = client.post("freepublish/get", data={"publish_id": submitted["publish_id"]})
    assert first["publish_status"] == 1
    assert client.post("freepublish/get", data={"publish_id": submitted["publish_id"]})["publish_status"] == 1
    job_delay_passes(client)
    final = client.post("freepublish/get", data={"publish_id": submitted["publish_id"]})
    assert final["publish_status"] == 0
    assert final["article_detail"]["count"] == 1
    assert final["article_detail"]["item"][0]["idx"] == 1
    assert final["article_detail"]["item"][0]["article_url"].startswith("https://mp.weixin.qq.com/s/")
    with pytest.raises(WeChatClientException) as exc:
        client.post("freepublish/submit", data={"media_id": media_id})
    assert errcode(exc) == 40007
    article = client.post("freepublish/getarticle", data={"article_id": final["article_id"]})
    assert article["news_item"][0]["title"] == "镇政府关于秋季防火的通知"


def test_publish_finishes_without_polling_after_the_delay(emu, client):
    base_url, _ = emu
    submitted = client.post("freepublish/submit", data={"media_id": add_draft(client)})
    EmulatorAdmin(base_url).advance(3)
    status = client.post("freepublish/get", data={"publish_id": submitted["publish_id"]})
    assert status["publish_status"] == 0


def test_banned_word_fails_platform_audit(client):
    result = publish(client, content="<p>这里有违禁词示例</p>")
    assert result["final"]["publish_status"] == 4
    assert result["final"]["fail_idx"] == [1]
    assert "article_id" not in result["final"]
    assert client.post("freepublish/batchget", data={"offset": 0, "count": 20})["total_count"] == 0


def test_batchget_lists_newest_first_for_reconciliation(emu, client):
    first = publish(client, title="第一篇")["final"]["article_id"]
    EmulatorAdmin(emu[0]).advance(60)
    second = publish(client, title="第二篇")["final"]["article_id"]
    listing = client.post("freepublish/batchget", data={"offset": 0, "count": 20, "no_content": 0})
    assert listing["total_count"] == 2 and listing["item_count"] == 2
    assert [i["article_id"] for i in listing["item"]] == [second, first]
    item = listing["item"][0]["content"]["news_item"][0]
    assert item["title"] == "第二篇" and item["content"] and item["url"]
    brief = client.post("freepublish/batchget", data={"offset": 1, "count": 1, "no_content": 1})
    assert brief["item_count"] == 1 and "content" not in brief["item"][0]["content"]["news_item"][0]
    with pytest.raises(WeChatClientException) as exc:
        client.post("freepublish/batchget", data={"offset": 0, "count": 21})
    assert errcode(exc) == 40097


def test_freepublish_daily_quota(emu, client):
    EmulatorAdmin(emu[0]).config(wechat_quotas={"freepublish/submit": 1})
    publish(client)
    with pytest.raises(APILimitedException) as exc:
        client.post("freepublish/submit", data={"media_id": add_draft(client)})
    assert errcode(exc) == 45009


def test_freepublish_delete_marks_articles(client):
    result = publish(client)
    article_id = result["final"]["article_id"]
    client.post("freepublish/delete", data={"article_id": article_id, "index": 0})
    status = client.post("freepublish/get", data={"publish_id": result["submitted"]["publish_id"]})
    assert status["publish_status"] == 5
    with pytest.raises(WeChatClientException) as exc:
        client.post("freepublish/getarticle", data={"article_id": "nope"})
    assert errcode(exc) == 53600


# ---- comments (留言) -------------------------------------------------------------------

def test_comments_list_and_single_reply(emu, client):
    admin = EmulatorAdmin(emu[0])
    msg_data_id = publish(client)["submitted"]["msg_data_id"]
    injected = admin.wechat_comment(msg_data_id=msg_data_id, index=0, openid="o" + "a" * 27,
                                    content="社保卡怎么补办？")
    admin.wechat_comment(article_id=injected["article_id"], openid="o" + "b" * 27, content="点赞")
    listing = client.material.list_comment(msg_data_id, index=0, begin=0, count=49, type=0)
    assert listing["errcode"] == 0 and listing["total"] == 2
    first = listing["comment"][0]
    assert first["content"] == "社保卡怎么补办？" and first["openid"] == "o" + "a" * 27
    assert first["user_comment_id"] == 1 and "reply" not in first
    client.material.add_reply_comment(msg_data_id, 0, first["user_comment_id"], "您好，请到社保所补办。")
    with pytest.raises(WeChatClientException) as exc:
        client.material.add_reply_comment(msg_data_id, 0, first["user_comment_id"], "再答一次")
    assert errcode(exc) == 88005
    listing = client.material.list_comment(msg_data_id, index=0, begin=0, count=10)
    assert listing["comment"][0]["reply"]["content"] == "您好，请到社保所补办。"
    client.material.delete_reply_comment(msg_data_id, 0, first["user_comment_id"])
    client.material.add_reply_comment(msg_data_id, 0, first["user_comment_id"], "更正后的答复")
    page = client.material.list_comment(msg_data_id, index=0, begin=1, count=1)
    assert page["total"] == 2 and [c["content"] for c in page["comment"]] == ["点赞"]


def test_comment_errors(emu, client):
    admin = EmulatorAdmin(emu[0])
    msg_data_id = publish(client)["submitted"]["msg_data_id"]
    admin.wechat_comment(msg_data_id=msg_data_id, openid="o" + "a" * 27, content="好")
    with pytest.raises(WeChatClientException) as exc:
        client.material.list_comment(msg_data_id, index=0, begin=0, count=50)
    assert errcode(exc) == 88010
    with pytest.raises(WeChatClientException) as exc:
        client.material.list_comment(msg_data_id)  # wechatpy's default index=1: no second article
    assert errcode(exc) == 88001
    with pytest.raises(WeChatClientException) as exc:
        client.material.add_reply_comment(msg_data_id, 0, 99, "答复")
    assert errcode(exc) == 88008
    with pytest.raises(WeChatClientException) as exc:
        client.material.list_comment(12345, index=0, count=10)
    assert errcode(exc) == 88001


# ---- customer-service messages --------------------------------------------------------

def test_custom_message_only_within_48_hours_of_a_user_message(emu):
    base_url, _ = emu
    admin = EmulatorAdmin(base_url)
    callback = FastAPI()

    @callback.post("/cb")
    async def cb(request: Request) -> Response:
        return Response("success")

    with serve_app(callback) as cb_url:
        admin.register_wechat(appid=APPID, secret=SECRET, token="tok", callback_url=f"{cb_url}/cb")
        client = wechat_client(base_url, APPID, SECRET)
        openid = "o" + "c" * 27
        with pytest.raises(WeChatClientException) as exc:
            client.message.send_text(openid, "您好")
        assert errcode(exc) == 40003
        assert admin.push(APPID, "text", openid=openid, content="在吗")["ok"]
        assert client.message.send_text(openid, "您好，请讲。")["errcode"] == 0
        admin.advance(48 * 3600 + 1)
        client.fetch_access_token()
        with pytest.raises(WeChatClientException) as exc:
            client.message.send_text(openid, "还在吗")
        assert errcode(exc) == 45015
        assert exc.value.errmsg == "response out of time limit or subscription is canceled"
        admin.push(APPID, "unsubscribe", openid=openid)
        admin.push(APPID, "text", openid=openid, content="又关注了")
        assert client.message.send_text(openid, "欢迎回来")["errcode"] == 0
    sent = admin.state()["wechat"]["custom_messages"]
    assert [m["text"]["content"] for m in sent] == ["您好，请讲。", "欢迎回来"]


# ---- data cube -----------------------------------------------------------------------

def test_datacube_article_statistics(emu, client):
    base_url, state = emu
    result = publish(client)
    admin = EmulatorAdmin(base_url)
    today = datetime.fromtimestamp(state.now(), BEIJING).date()
    with pytest.raises(WeChatClientException) as exc:
        client.datacube.get_article_summary(today, today)
    assert errcode(exc) == 61501
    admin.advance(3 * 86400)
    client.fetch_access_token()
    summary = client.datacube.get_article_summary(today, today)
    assert len(summary) == 1
    row = summary[0]
    assert row["msgid"] == f"{result['submitted']['msg_data_id']}_1"
    assert row["int_page_read_user"] > 0 and row["share_count"] >= row["share_user"]
    # getarticletotal covers mass-sent articles only: a freepublish article is not there.
    assert client.datacube.get_article_total(today, today) == []
    day = {"begin_date": today.isoformat(), "end_date": today.isoformat()}
    total = client.datacube._post("getarticletotaldetail", data=day)
    details = total["list"][0]["detail_list"]
    assert total["list"][0]["msgid"] == row["msgid"]
    assert [d["stat_date"] for d in details] == [(today + timedelta(days=d)).isoformat() for d in range(3)]
    assert details[0]["read_user"] == row["int_page_read_user"] and all(d["read_user"] >= 0 for d in details)
    assert client.datacube._post("getarticletotaldetail", data=day) == total  # deterministic
    with pytest.raises(WeChatClientException) as exc:
        client.datacube.get_article_summary(today, today + timedelta(days=1))
    assert errcode(exc) == 61501


def test_unknown_api_is_unauthorized(client):
    with pytest.raises(WeChatClientException) as exc:
        client.post("menu/create", data={})
    assert errcode(exc) == 48001
