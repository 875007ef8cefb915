"""Callback pushes, verified by wechatpy on a tiny receiving server (plain and AES modes)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from starlette.responses import Response
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import check_signature

from bot.emulator.push import build_message_xml, make_openid
from bot.emulator.state import EmulatorState
from bot.emulator.testing import EmulatorAdmin, run_emulator, serve_app

TOKEN = "callback-token"
AES_KEY = base64.b64encode(os.urandom(32)).decode().rstrip("=")
PLAIN, SAFE = "wx_plain_mode", "wx_aes_mode"


class Receiver:
    """What a govbot callback does: check the signature, decrypt, parse, reply."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.hang_first = 0
        self.reply_plain_in_aes = False
        self.echo_unsafely = False

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/callback/{appid}")
        async def callback(appid: str, request: Request) -> Response:
            q = request.query_params
            check_signature(TOKEN, q["signature"], q["timestamp"], q["nonce"])
            body = await request.body()
            crypto = WeChatCrypto(TOKEN, AES_KEY, SAFE) if appid == SAFE else None
            if crypto is not None:
                assert q["encrypt_type"] == "aes"
                body = crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
            message = parse_message(body)
            self.received.append({"appid": appid, "query": dict(q), "message": message})
            if len(self.received) <= self.hang_first:
                await asyncio.sleep(1.0)
            if message.type == "event":
                return Response("success")
            echoed = getattr(message, "content", message.type)
            if not self.echo_unsafely:
                echoed = echoed.replace("]]>", "]]]]><![CDATA[>")
            reply = create_reply(f"收到：{echoed}", message)
            xml = reply.render()
            if crypto is not None and not self.reply_plain_in_aes:
                xml = crypto.encrypt_message(xml, q["nonce"], q["timestamp"])
            return Response(xml, media_type="application/xml")

        return app


@pytest.fixture
def setup() -> Iterator[tuple[EmulatorAdmin, Receiver, EmulatorState]]:
    receiver = Receiver()
    state = EmulatorState()
    with serve_app(receiver.app()) as cb_url, run_emulator(state) as base_url, \
            EmulatorAdmin(base_url) as admin:
        admin.register_wechat(appid=PLAIN, secret="s", token=TOKEN,
                              callback_url=f"{cb_url}/callback/{PLAIN}", original_id="gh_plain000001")
        admin.register_wechat(appid=SAFE, secret="s", token=TOKEN, encoding_aes_key=AES_KEY,
                              encrypt=True, callback_url=f"{cb_url}/callback/{SAFE}",
                              original_id="gh_safe0000001")
        yield admin, receiver, state


@pytest.mark.parametrize("appid", [PLAIN, SAFE])
def test_text_message_round_trip(setup, appid):
    admin, receiver, _ = setup
    openid = make_openid("citizen-1")
    result = admin.push(appid, "text", openid=openid, content="社保卡怎么补办？]]>")
    assert result["ok"] and result["attempts"] == 1 and result["error"] is None
    message = receiver.received[0]["message"]
    assert message.type == "text" and message.content == "社保卡怎么补办？]]>"
    assert message.source == openid and message.id == result["msg_id"]
    assert message.target == ("gh_plain000001" if appid == PLAIN else "gh_safe0000001")
    assert receiver.received[0]["query"]["openid"] == openid
    assert result["reply"]["Content"] == "收到：社保卡怎么补办？]]>"
    assert "<MsgType><![CDATA[text]]></MsgType>" in result["reply_xml"]


@pytest.mark.parametrize(("msg_type", "fields", "check"), [
    ("image", {"pic_url": "http://mmbiz.qpic.cn/x"}, lambda m: m.image == "http://mmbiz.qpic.cn/x"),
    ("voice", {"recognition": "你好"}, lambda m: m.format == "amr" and m.recognition == "你好"),
    ("location", {"label": "人民路1号"}, lambda m: m.label == "人民路1号" and m.scale == "20"),
    ("link", {"title": "T", "url": "http://x"}, lambda m: m.title == "T" and m.url == "http://x"),
    ("subscribe", {}, lambda m: m.event == "subscribe"),
    ("unsubscribe", {}, lambda m: m.event == "unsubscribe"),
    ("click", {"event_key": "MENU_FAQ"}, lambda m: m.event == "click" and m.key == "MENU_FAQ"),
    ("publishjobfinish", {"publish_id": "100000001", "article_id": "AID", "article_urls": ["u1"]},
     lambda m: m._data["Event"] == "PUBLISHJOBFINISH"
     and m._data["PublishEventInfo"]["article_detail"]["item"]["article_url"] == "u1"),
])
def test_message_and_event_types(setup, msg_type, fields, check):
    admin, receiver, _ = setup
    result = admin.push(SAFE, msg_type, **fields)
    assert result["ok"], result
    assert check(receiver.received[0]["message"])
    if msg_type in ("subscribe", "unsubscribe", "click"):
        assert result["msg_id"] is None and result["reply"] is None


def test_retries_with_the_same_msgid_when_the_callback_is_slow(setup):
    admin, receiver, state = setup
    receiver.hang_first = 2
    result = admin.push(PLAIN, "text", content="在吗", timeout_s=0.3)
    assert result["ok"] and result["attempts"] == 3
    ids = [r["message"].id for r in receiver.received]
    assert ids == [result["msg_id"]] * 3
    assert len({r["query"]["nonce"] for r in receiver.received}) == 3
    assert state.data["wechat"]["inbound"][-1]["attempts"] == 3


def test_gives_up_after_three_retries(setup):
    admin, receiver, _ = setup
    receiver.hang_first = 10
    result = admin.push(PLAIN, "subscribe", timeout_s=0.2)
    assert not result["ok"] and not result["delivered"] and result["attempts"] == 4
    assert "no answer within 0.2s" in result["error"]
    events = [r["message"] for r in receiver.received]
    assert len({(e.source, e.time) for e in events}) == 1  # same FromUserName + CreateTime


def test_unencrypted_reply_in_aes_mode_is_an_error(setup):
    admin, receiver, _ = setup
    receiver.reply_plain_in_aes = True
    result = admin.push(SAFE, "text", content="hi")
    assert result["delivered"] and not result["ok"]
    assert "not encrypted" in result["error"]


@pytest.mark.parametrize("appid", [PLAIN, SAFE])
def test_malformed_reply_is_an_error(setup, appid):
    admin, receiver, _ = setup
    receiver.echo_unsafely = True  # wechatpy puts text in CDATA without escaping "]]>"
    result = admin.push(appid, "text", content="x]]>y")
    assert result["delivered"] and not result["ok"]
    assert "not well-formed" in result["error"]


def test_unreachable_callback(setup):
    admin, _, _ = setup
    admin.register_wechat(appid="wx_down", secret="s", token=TOKEN,
                          callback_url="http://127.0.0.1:9/callback")
    result = admin.push("wx_down", "text", content="hi", timeout_s=0.2, retries=1)
    assert not result["ok"] and result["attempts"] == 2


def test_push_errors_are_reported(setup):
    admin, _, _ = setup
    import httpx

    response = httpx.post(f"{admin.base_url}/_emulator/wechat/push",
                          json={"appid": "wx_nobody", "msg_type": "text"})
    assert response.status_code == 400 and "no WeChat account" in response.json()["error"]
    response = httpx.post(f"{admin.base_url}/_emulator/wechat/push",
                          json={"appid": PLAIN, "msg_type": "telegram"})
    assert response.status_code == 400 and "unknown WeChat message type" in response.json()["error"]


def test_cdata_is_split_safely():
    xml = build_message_xml({"original_id": "gh_x"}, "text", openid="o" * 28, create_time=1,
                            msg_id=7, content="a]]>b")
    assert parse_message(xml).content == "a]]>b"
