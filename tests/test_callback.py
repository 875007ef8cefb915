"""The WeChat callback: verification, every message type, duplicates, AES mode, hostile input.

Every refusal is checked twice: the HTTP answer, and that nothing was stored (no message, ticket,
reply or audit event).
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import xmltodict
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from wechatpy.crypto import PrpCrypto, WeChatCrypto

from bot.context import Context
from bot.inbound import callback as callback_module
from bot.inbound.callback import sign
from bot.inbound.processing import process_pending
from bot.inbound.wechat_xml import Refused, parse_xml
from bot.models import AuditEvent, InboundDelivery, Message, Reply, Ticket
from bot.web.app import create_app

PAYLOADS = Path(__file__).parent / "payloads" / "wechat"
PLAIN = {"appid": "wxdemo0000000001", "token": "demotoken0001"}
AES = {"appid": "wxdemo0000000002", "token": "demotoken0002", "key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def signed(token: str, *, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**10))  # as WeChat: a fresh nonce per request
    return {"signature": sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, "openid": "o1"}


def encrypt(xml: bytes | str, *, appid: str = AES["appid"]) -> str:
    key = WeChatCrypto(AES["token"], AES["key"], AES["appid"]).key
    return PrpCrypto(key).encrypt(xml, appid).decode()


def aes_request(xml: bytes | str, *, appid: str = AES["appid"], encrypted: str | None = None,
                nonce: str = "24680") -> tuple[dict[str, str], bytes]:
    encrypted = encrypted if encrypted is not None else encrypt(xml, appid=appid)
    params = signed(AES["token"], nonce=nonce)
    params["encrypt_type"] = "aes"
    params["msg_signature"] = sign(AES["token"], params["timestamp"], params["nonce"], encrypted)
    body = f"<xml><ToUserName><![CDATA[gh_aes]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    return params, body.encode()


def decrypt_reply(text: str, nonce: str = "24680") -> str:
    outer = xmltodict.parse(text)["xml"]
    crypto = WeChatCrypto(AES["token"], AES["key"], AES["appid"])
    return crypto.decrypt_message(text, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])


def faq_answer(ctx: Context, rule_id: str) -> str:
    return next(r.answer for r in ctx.rules.current_faq().rules if r.id == rule_id)


def counts(ctx: Context) -> dict[str, int]:
    process_pending(ctx)  # what the worker does after the callback answered
    with ctx.session() as s:
        return {m.__name__: s.execute(select(func.count()).select_from(m)).scalar_one()
                for m in (Message, Ticket, Reply, AuditEvent)}


NOTHING = {"Message": 0, "Ticket": 0, "Reply": 0, "AuditEvent": 0}


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx), raise_server_exceptions=False) as c:
        yield c


def post(client: TestClient, body: bytes, *, appid: str = PLAIN["appid"], params: dict | None = None, **kw):
    return client.post(f"/wechat/callback/{appid}", params=params or signed(PLAIN["token"]), content=body,
                       headers={"Content-Type": "text/xml"}, **kw)


def messages(ctx: Context) -> list[Message]:
    process_pending(ctx)
    with ctx.session() as s:
        return list(s.execute(select(Message).order_by(Message.id)).scalars())


# ---- GET verification ------------------------------------------------------------------------


def test_get_echoes_echostr_when_signed(client):
    r = client.get(f"/wechat/callback/{PLAIN['appid']}", params={**signed(PLAIN["token"]), "echostr": "8312637410"})
    assert r.status_code == 200 and r.text == "8312637410"


def test_get_refuses_a_verification_signed_long_ago(client):
    old = str(int(time.time()) - 3600)
    r = client.get(f"/wechat/callback/{PLAIN['appid']}", params={**signed(PLAIN["token"], timestamp=old), "echostr": "e"})
    assert r.status_code == 403 and r.text != "e"


def test_get_refuses_bad_or_missing_signature_and_unknown_appid(client):
    params = {**signed(PLAIN["token"]), "echostr": "e"}
    assert client.get(f"/wechat/callback/{PLAIN['appid']}", params={**params, "signature": "0" * 40}).status_code == 403
    no_sig = {k: v for k, v in params.items() if k != "signature"}
    assert client.get(f"/wechat/callback/{PLAIN['appid']}", params=no_sig).status_code == 403
    no_echo = {k: v for k, v in params.items() if k != "echostr"}
    assert client.get(f"/wechat/callback/{PLAIN['appid']}", params=no_echo).status_code == 400
    assert client.get("/wechat/callback/wx_nobody", params=params).status_code == 404


def test_get_in_aes_mode_plain_and_encrypted_echostr(client):
    r = client.get(f"/wechat/callback/{AES['appid']}", params={**signed(AES["token"]), "echostr": "plain-echo"})
    assert r.status_code == 200 and r.text == "plain-echo"
    echo = encrypt("secret-echo")
    params = signed(AES["token"])
    params.update(echostr=echo, msg_signature=sign(AES["token"], params["timestamp"], params["nonce"], echo))
    r = client.get(f"/wechat/callback/{AES['appid']}", params=params)
    assert r.status_code == 200 and r.text == "secret-echo"
    params["msg_signature"] = "f" * 40
    assert client.get(f"/wechat/callback/{AES['appid']}", params=params).status_code == 403


# ---- message types ---------------------------------------------------------------------------


def test_text_question_gets_faq_passive_reply(client, ctx):
    r = post(client, payload("text.xml"))
    assert r.status_code == 200
    reply = xmltodict.parse(r.text)["xml"]
    assert reply["ToUserName"] == "oWx3L5Qd2kE8xyZc1TeXt000001"
    assert reply["FromUserName"] == "gh_3c884a361561"
    assert reply["MsgType"] == "text" and reply["Content"] == faq_answer(ctx, "faq.pension_query")
    (m,) = messages(ctx)
    assert (m.kind, m.msg_type, m.dedupe_key) == ("wechat_message", "text", "msg:24512345678901001")
    assert m.intent == "question" and m.topic == "劳动和社会保障" and m.replied_at is not None
    assert m.reply_xml == r.text
    with ctx.session() as s:
        (rep,) = s.execute(select(Reply)).scalars()
    assert rep.automatic and rep.faq_rule == "faq.pension_query" and rep.channel == "wechat_passive" and rep.state == "sent"
    assert counts(ctx)["Ticket"] == 0


def question_from(sender: str, msg_id: int) -> bytes:
    return (payload("text.xml").replace(b"oWx3L5Qd2kE8xyZc1TeXt000001", sender.encode())
            .replace(b"24512345678901001", str(msg_id).encode()))


def test_one_automatic_answer_per_citizen_and_rule_even_before_the_worker_ran(client, ctx):
    """The limit counts answers the worker has not recorded yet (pending deliveries) and recorded ones."""
    assert post(client, question_from("oCitizenA", 1)).text != "success"
    assert post(client, question_from("oCitizenA", 2)).text == "success"  # delivery 1 is still pending
    assert post(client, question_from("oCitizenB", 3)).text != "success"  # another citizen
    assert counts(ctx) | {"AuditEvent": 0} == {"Message": 3, "Ticket": 1, "Reply": 2, "AuditEvent": 0}
    assert post(client, question_from("oCitizenA", 4)).text == "success"  # its Reply is recorded now
    with ctx.session() as s:
        ticketed = s.execute(select(Message.dedupe_key).join(Ticket, Ticket.message_id == Message.id)).scalars().all()
        senders = s.execute(select(Reply.sender_id).order_by(Reply.id)).scalars().all()
    assert senders == ["oCitizenA", "oCitizenB"] and ticketed == ["msg:2"]
    process_pending(ctx)
    with ctx.session() as s:
        assert s.execute(select(func.count()).select_from(Ticket)).scalar_one() == 2


def test_an_answer_pending_since_before_the_period_does_not_count(client, ctx):
    """The worker was down for longer than the period: the citizen's next question is answered again."""
    from datetime import timedelta

    from sqlalchemy import update

    assert post(client, question_from("oCitizenA", 1)).text != "success"
    with ctx.session() as s:
        s.execute(update(InboundDelivery).values(arrived_at=InboundDelivery.arrived_at - timedelta(hours=25)))
    assert post(client, question_from("oCitizenA", 2)).text != "success"


def test_text_complaint_makes_ticket_and_answers_success(client, ctx):
    r = post(client, payload("text_complaint.xml"))
    assert r.status_code == 200 and r.text == "success"
    (m,) = messages(ctx)
    assert m.intent == "complaint" and m.needs_answer and m.replied_at is None
    with ctx.session() as s:
        (t,) = s.execute(select(Ticket)).scalars()
    assert t.message_id == m.id and t.intent == "complaint" and t.department_id == m.department_id
    assert counts(ctx)["Reply"] == 0


@pytest.mark.parametrize(("name", "msg_type", "text"), [
    ("image.xml", "image", ""),
    ("voice.xml", "voice", "我家楼下的垃圾好几天没人清运了，臭气熏天，投诉一下"),
    ("voice_no_recognition.xml", "voice", ""),
    ("video.xml", "shortvideo", ""),
    ("location.xml", "location", "湖南省长沙市岳麓区麓山南路"),
    ("link.xml", "link", "关于社保卡补办的问题\n请问社保卡丢了怎么补办？需要带什么材料？"),
    ("unknown_miniprogrampage.xml", "unknown", ""),
    ("event_click.xml", "event", "MENU_BANSHI_ZHINAN"),
    ("event_unsubscribe.xml", "event", ""),
])
def test_every_message_type_is_stored_with_its_raw_payload(client, ctx, name, msg_type, text):
    r = post(client, payload(name))
    assert r.status_code == 200
    (m,) = messages(ctx)
    assert m.msg_type == msg_type and m.text == text
    assert m.raw == payload(name).decode()
    if msg_type == "event":
        assert m.intent is None and m.dedupe_key.startswith("event:") and r.text == "success"


def test_voice_recognition_is_classified(client, ctx):
    post(client, payload("voice.xml"))
    (m,) = messages(ctx)
    assert m.intent == "complaint" and m.topic == "环境保护"


def test_subscribe_answers_configured_welcome(make_config, open_ctx):
    ctx = open_ctx(make_config({"autoreply": {"welcome": "欢迎关注示例县发布"}}))
    with TestClient(create_app(ctx)) as c:
        r = post(c, payload("event_subscribe.xml"))
    reply = xmltodict.parse(r.text)["xml"]
    assert reply["Content"] == "欢迎关注示例县发布" and reply["ToUserName"] == "oWx3L5Qd2kE8xyZc1TeXt000008"
    with ctx.session() as s:
        assert s.execute(select(Reply)).first() is None  # recorded by the worker, after the answer
    process_pending(ctx)
    with ctx.session() as s:
        (rep,) = s.execute(select(Reply)).scalars()
    assert rep.faq_rule == "welcome" and rep.automatic and rep.state == "sent" and rep.text == "欢迎关注示例县发布"


def test_auto_reply_switched_off_per_account(make_config, open_ctx):
    cfg = make_config()
    accounts = [a.model_dump() for a in cfg.accounts]
    accounts[0]["auto_reply"] = False
    ctx = open_ctx(make_config({"accounts": accounts}))
    with TestClient(create_app(ctx)) as c:
        assert post(c, payload("text.xml")).text == "success"
        assert post(c, payload("event_subscribe.xml")).text == "success"
    assert counts(ctx)["Reply"] == 0 and counts(ctx)["Ticket"] == 1  # the question goes to a person


# ---- duplicates ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["text.xml", "text_complaint.xml", "event_subscribe.xml", "event_click.xml"])
def test_redelivery_is_stored_once_and_answered_identically(client, ctx, name):
    first = post(client, payload(name), params=signed(PLAIN["token"], nonce="1"))
    before = counts(ctx)
    second = post(client, payload(name), params=signed(PLAIN["token"], nonce="2", timestamp=str(int(time.time()) + 5)))
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert counts(ctx) == before and before["Message"] == 1


def test_reply_answer_is_identical_even_later(client, ctx):
    first = post(client, payload("text.xml"))
    time.sleep(1.1)  # a fresh rendering would carry a new CreateTime
    assert post(client, payload("text.xml")).text == first.text


# ---- AES mode (安全模式) -----------------------------------------------------------------------


def test_aes_message_is_decrypted_and_reply_encrypted(client, ctx):
    params, body = aes_request(payload("text.xml"))
    r = post(client, body, appid=AES["appid"], params=params)
    assert r.status_code == 200
    outer = xmltodict.parse(r.text)["xml"]
    assert set(outer) >= {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    reply = xmltodict.parse(decrypt_reply(r.text))["xml"]
    assert reply["Content"] == faq_answer(ctx, "faq.pension_query")
    (m,) = messages(ctx)
    assert m.raw == payload("text.xml").decode() and m.intent == "question"
    # WeChat's retry: new nonce, new ciphertext; same message stored once, same reply inside.
    params2, body2 = aes_request(payload("text.xml"), nonce="97531")
    r2 = post(client, body2, appid=AES["appid"], params=params2)
    assert decrypt_reply(r2.text, "97531") == decrypt_reply(r.text)
    assert counts(ctx)["Message"] == 1


def test_aes_success_is_not_encrypted(client, ctx):
    params, body = aes_request(payload("text_complaint.xml"))
    r = post(client, body, appid=AES["appid"], params=params)
    assert r.status_code == 200 and r.text == "success"


# ---- CDATA ------------------------------------------------------------------------------------

NASTY = "答复]]><MsgType>news</MsgType><![CDATA[ & <b>粗体</b> ]]]]>>"


def test_reply_text_cannot_break_out_of_cdata(make_config, open_ctx):
    ctx = open_ctx(make_config({"autoreply": {"welcome": NASTY}}))
    with TestClient(create_app(ctx)) as c:
        r = post(c, payload("event_subscribe.xml"))
    reply = xmltodict.parse(r.text)["xml"]
    assert reply["Content"] == NASTY and reply["MsgType"] == "text"
    assert list(reply) == ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content"]


def test_wechatpy_text_reply_would_break():
    """Why we render replies ourselves: wechatpy puts the text in CDATA unescaped."""
    from wechatpy.replies import TextReply

    injected = "好]]></Content><MsgType>news</MsgType><Content><![CDATA[假"
    doc = xmltodict.parse(TextReply(source="gh", target="o", content=injected).render())["xml"]
    assert doc["MsgType"] == ["text", "news"] and doc["Content"] == ["好", "假"]


# ---- hostile input ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "body", "status"), [
    ("malformed", payload("hostile_malformed.xml"), 400),
    ("billion laughs", payload("hostile_billion_laughs.xml"), 400),
    ("external entity (XXE)", payload("hostile_xxe.xml"), 400),
    ("external DTD", payload("hostile_external_dtd.xml"), 400),
    ("bare doctype", b"<!DOCTYPE xml>" + payload("text.xml"), 400),
    ("missing FromUserName", payload("hostile_missing_from.xml"), 400),
    ("missing MsgId on text", payload("text.xml").replace(b"<MsgId>24512345678901001</MsgId>", b""), 400),
    ("CreateTime not a number", payload("text.xml").replace(b"1767225600", b"yesterday"), 400),
    ("field with children", payload("text.xml").replace(b"<![CDATA[text]]>", b"<a>text</a>"), 400),
    ("undefined entity", payload("text.xml").replace(b"<![CDATA[\xe8\xaf\xb7", b"&nope;<![CDATA[\xe8\xaf\xb7"), 400),
    ("invalid UTF-8", payload("text.xml").replace("请问".encode(), b"\xff\xfe\xc3("), 400),
    ("declared GBK, sent GBK", b'<?xml version="1.0" encoding="GBK"?>'
     + payload("text.xml").decode().encode("gbk"), 400),
    ("empty body", b"", 400),
    ("not WeChat XML", b"<html><body>hi</body></html>", 400),
    ("two roots", payload("text.xml") + payload("text.xml"), 400),
    ("too deep", b"<xml>" + b"<a>" * 50 + b"x" + b"</a>" * 50 + b"</xml>", 400),
    ("JSON", b'{"ToUserName": "gh"}', 400),
])
def test_hostile_body_is_refused_and_nothing_stored(client, ctx, name, body, status):
    r = post(client, body)
    assert r.status_code == status, (name, r.text)
    assert counts(ctx) == NOTHING


def test_forged_and_missing_signature_refused_before_anything_is_read(client, ctx):
    bad = {**signed(PLAIN["token"]), "signature": sign("wrong-token", "1", "2")}
    assert post(client, payload("text.xml"), params=bad).status_code == 403
    assert post(client, payload("text.xml"), params={k: v for k, v in bad.items() if k != "signature"}).status_code == 403
    missing_nonce = {k: v for k, v in signed(PLAIN["token"]).items() if k != "nonce"}
    assert post(client, payload("text.xml"), params=missing_nonce).status_code == 400
    assert counts(ctx) == NOTHING


def test_signature_is_compared_in_constant_time(monkeypatch, client):
    seen = []
    real = callback_module.hmac.compare_digest
    monkeypatch.setattr(callback_module.hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    post(client, payload("text.xml"))
    assert seen


def test_unknown_appid_is_404(client, ctx):
    assert post(client, payload("text.xml"), appid="wx_not_ours").status_code == 404
    assert counts(ctx) == NOTHING


def test_body_over_limit_is_413_with_or_without_content_length(client, ctx):
    limit = ctx.config.web.max_body_bytes
    big = payload("text.xml").replace(b"]]></Content>", b"x" * limit + b"]]></Content>")
    assert post(client, big).status_code == 413

    def chunks():  # no Content-Length: chunked transfer
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    assert post(client, chunks()).status_code == 413
    assert counts(ctx) == NOTHING


@pytest.mark.parametrize("case", ["forged msg_signature", "missing msg_signature", "garbage ciphertext",
                                  "not base64", "other appid", "invalid UTF-8 inside", "hostile XML inside",
                                  "no Encrypt"])
def test_aes_hostile_input(client, ctx, case):
    xml = payload("text.xml")
    params, body = aes_request(xml)
    if case == "forged msg_signature":
        params["msg_signature"] = "0" * 40
        expected = 403
    elif case == "missing msg_signature":
        del params["msg_signature"]
        expected = 403
    elif case == "garbage ciphertext":
        params, body = aes_request(xml, encrypted=base64.b64encode(b"x" * 48).decode())
        expected = 400
    elif case == "not base64":
        params, body = aes_request(xml, encrypted="%%%not-base64%%%")
        expected = 400
    elif case == "other appid":
        params, body = aes_request(xml, appid="wx_someone_else")
        expected = 400
    elif case == "invalid UTF-8 inside":
        params, body = aes_request(b"<xml>\xff\xfe</xml>")
        expected = 400
    elif case == "hostile XML inside":
        params, body = aes_request(payload("hostile_billion_laughs.xml"))
        expected = 400
    else:
        body = b"<xml><ToUserName><![CDATA[gh_aes]]></ToUserName></xml>"
        expected = 400
    r = post(client, body, appid=AES["appid"], params=params)
    assert r.status_code == expected, r.text
    assert counts(ctx) == NOTHING


def test_failure_while_triaging_leaves_nothing_half_stored_and_is_retried(monkeypatch, client, ctx):
    import bot.inbound.store as store

    def crash(**_kw):
        raise RuntimeError("ticket service down")

    monkeypatch.setattr(store, "open_ticket", crash)
    assert post(client, payload("text_complaint.xml")).text == "success"  # stored raw before the answer
    assert counts(ctx) == NOTHING  # the worker's transaction rolled back: no message without its ticket
    with ctx.session() as s:
        (d,) = s.execute(select(InboundDelivery)).scalars()
        assert d.processed_at is None and d.attempts == 1 and "ticket service down" in d.last_error
        d.lease_until = None  # the retry back-off has passed
    monkeypatch.undo()
    assert counts(ctx)["Message"] == 1 and counts(ctx)["Ticket"] == 1


def test_parse_xml_unit():
    doc = parse_xml(b"<xml><A>1</A><B><![CDATA[x]]]]><![CDATA[>y]]></B><C><i>1</i><i>2</i></C></xml>")
    assert doc == {"A": "1", "B": "x]]>y", "C": {"i": ["1", "2"]}}
    with pytest.raises(Refused):
        parse_xml(b'<!DOCTYPE x [<!ENTITY a "b">]><xml/>')
