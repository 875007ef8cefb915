"""The push side of WeChat: deliver user messages and events to an account's callback URL.

WeChat POSTs XML to the URL configured for the account with the query parameters
``signature`` (sha1 of the sorted token, timestamp and nonce), ``timestamp``, ``nonce``
and ``openid``. In safe mode (安全模式, ``encrypt``) it adds ``encrypt_type=aes`` and
``msg_signature`` and sends ``<xml><ToUserName/><Encrypt/></xml>``, encrypted exactly as
wechatpy's ``WeChatCrypto`` expects; the reply is then expected encrypted too.

If no answer arrives within 5 s WeChat drops the connection and retries, up to 3 more
times, with the same ``MsgId`` (events: the same ``FromUserName`` + ``CreateTime``), so
the receiver must deduplicate. Every push is recorded, and a user message opens the 48 h
window for customer-service messages.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import asdict, dataclass
from typing import Any
from xml.parsers.expat import ExpatError

import httpx
import xmltodict
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import WeChatSigner, to_text

from bot.emulator.state import EmulatorState
from bot.emulator.wechat import record_user_action

MESSAGE_TYPES = ("text", "image", "voice", "video", "shortvideo", "location", "link")
EVENT_TYPES = {"subscribe": "subscribe", "unsubscribe": "unsubscribe", "click": "CLICK",
               "view": "VIEW", "scan": "SCAN", "publishjobfinish": "PUBLISHJOBFINISH"}


class PushError(ValueError):
    """The push cannot be built (unknown account, no callback URL, bad message type)."""


@dataclass
class PushResult:
    appid: str
    openid: str
    msg_type: str
    msg_id: int | None
    create_time: int
    request_xml: str
    attempts: int = 0
    delivered: bool = False
    status_code: int | None = None
    reply_xml: str | None = None
    reply: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.delivered and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def make_openid(seed: str) -> str:
    """A stable 28-character openid (the shape wechatpy's OPENID_RE accepts)."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode()
    return "o" + digest[:27]


def cdata(value: Any) -> str:
    text = str(value).replace("]]>", "]]]]><![CDATA[>")
    return f"<![CDATA[{text}]]>"


def signature(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def _fields_xml(msg_type: str, fields: dict[str, Any], msg_id: int | None) -> list[str]:
    f = fields
    if msg_type == "text":
        body = [f"<Content>{cdata(f.get('content', ''))}</Content>"]
    elif msg_type == "image":
        body = [f"<PicUrl>{cdata(f.get('pic_url', 'http://mmbiz.qpic.cn/mmbiz_jpg/demo/0'))}"
                "</PicUrl>",
                f"<MediaId>{cdata(f.get('media_id', secrets.token_urlsafe(32)))}</MediaId>"]
    elif msg_type == "voice":
        body = [f"<MediaId>{cdata(f.get('media_id', secrets.token_urlsafe(32)))}</MediaId>",
                f"<Format>{cdata(f.get('format', 'amr'))}</Format>"]
        if f.get("recognition") is not None:
            body.append(f"<Recognition>{cdata(f['recognition'])}</Recognition>")
    elif msg_type in ("video", "shortvideo"):
        body = [f"<MediaId>{cdata(f.get('media_id', secrets.token_urlsafe(32)))}</MediaId>",
                f"<ThumbMediaId>{cdata(f.get('thumb_media_id', secrets.token_urlsafe(32)))}"
                "</ThumbMediaId>"]
    elif msg_type == "location":
        body = [f"<Location_X>{f.get('location_x', 23.134521)}</Location_X>",
                f"<Location_Y>{f.get('location_y', 113.358803)}</Location_Y>",
                f"<Scale>{f.get('scale', 20)}</Scale>",
                f"<Label>{cdata(f.get('label', ''))}</Label>"]
    elif msg_type == "link":
        body = [f"<Title>{cdata(f.get('title', ''))}</Title>",
                f"<Description>{cdata(f.get('description', ''))}</Description>",
                f"<Url>{cdata(f.get('url', ''))}</Url>"]
    else:
        event = EVENT_TYPES[msg_type]
        body = [f"<Event>{cdata(event)}</Event>"]
        if msg_type in ("subscribe", "click", "view", "scan"):
            body.append(f"<EventKey>{cdata(f.get('event_key', ''))}</EventKey>")
        if msg_type == "publishjobfinish":
            items = "".join(f"<item><idx>{i + 1}</idx><article_url>{cdata(url)}</article_url>"
                            "</item>" for i, url in enumerate(f.get("article_urls", [])))
            fails = "".join(f"<fail_idx>{i}</fail_idx>" for i in f.get("fail_idx", []))
            body.append(
                "<PublishEventInfo>"
                f"<publish_id>{f.get('publish_id', '')}</publish_id>"
                f"<publish_status>{f.get('publish_status', 0)}</publish_status>"
                f"<article_id>{cdata(f.get('article_id', ''))}</article_id>"
                f"<article_detail><count>{len(f.get('article_urls', []))}</count>{items}"
                f"</article_detail>{fails}</PublishEventInfo>")
        return body
    return body + [f"<MsgId>{msg_id}</MsgId>"]


def build_message_xml(account: dict[str, Any], msg_type: str, *, openid: str,
                      create_time: int, msg_id: int | None, **fields: Any) -> str:
    """The plaintext XML WeChat would send for this user message or event."""
    msg_type = msg_type.lower()
    if msg_type not in MESSAGE_TYPES and msg_type not in EVENT_TYPES:
        raise PushError(f"unknown WeChat message type {msg_type!r}; use one of "
                        f"{', '.join(MESSAGE_TYPES + tuple(EVENT_TYPES))}")
    wire_type = "event" if msg_type in EVENT_TYPES else msg_type
    parts = ["<xml>",
             f"<ToUserName>{cdata(account['original_id'])}</ToUserName>",
             f"<FromUserName>{cdata(openid)}</FromUserName>",
             f"<CreateTime>{create_time}</CreateTime>",
             f"<MsgType>{cdata(wire_type)}</MsgType>",
             *_fields_xml(msg_type, fields, msg_id),
             "</xml>"]
    return "".join(parts)


def sign_and_wrap(account: dict[str, Any], xml: str, *, openid: str, timestamp: str,
                  nonce: str) -> tuple[dict[str, str], bytes]:
    """Query parameters and body of one callback request (plain or AES mode)."""
    token = account.get("token") or ""
    params = {"signature": signature(token, timestamp, nonce), "timestamp": timestamp,
              "nonce": nonce, "openid": openid}
    if not account.get("encrypt"):
        return params, xml.encode("utf-8")
    crypto = WeChatCrypto(token, account["encoding_aes_key"], account["appid"])
    encrypted = to_text(PrpCrypto(crypto.key).encrypt(xml, account["appid"]))
    params["encrypt_type"] = "aes"
    params["msg_signature"] = signature(token, timestamp, nonce, encrypted)
    body = (f"<xml><ToUserName>{cdata(account['original_id'])}</ToUserName>"
            f"<Encrypt>{cdata(encrypted)}</Encrypt></xml>")
    return params, body.encode("utf-8")


def _parse_xml(text: str) -> Any:
    try:
        return xmltodict.parse(text)["xml"]
    except (ExpatError, KeyError, TypeError) as exc:
        raise ValueError(f"reply is not well-formed WeChat XML ({exc}): {text[:120]!r}") from exc


def decode_reply(account: dict[str, Any], body: bytes) -> tuple[str | None, dict | None]:
    """Plaintext reply XML and its fields; ``(None, None)`` for "" or "success".

    Raises ValueError when the reply is malformed, badly signed or, in AES mode, not
    encrypted: WeChat then shows the user "该公众号暂时无法提供服务".
    """
    text = body.decode("utf-8", "replace").strip()
    if not text or text == "success":
        return None, None
    outer = _parse_xml(text)
    if account.get("encrypt"):
        if not isinstance(outer, dict) or "Encrypt" not in outer:
            raise ValueError("reply is not encrypted although the account is in AES mode")
        crypto = WeChatCrypto(account.get("token") or "", account["encoding_aes_key"],
                              account["appid"])
        try:
            text = crypto.decrypt_message(text, outer.get("MsgSignature"),
                                          outer.get("TimeStamp"), outer.get("Nonce"))
        except (InvalidSignatureException, InvalidAppIdException) as exc:
            raise ValueError(f"encrypted reply rejected: {type(exc).__name__}") from exc
        outer = _parse_xml(text)
    if not isinstance(outer, dict) or "MsgType" not in outer:
        raise ValueError("reply XML has no MsgType")
    return text, dict(outer)


def _check_addressing(account: dict[str, Any], openid: str, reply: dict[str, Any]) -> None:
    if reply.get("ToUserName") != openid or reply.get("FromUserName") != account["original_id"]:
        raise ValueError(f"reply addressed from {reply.get('FromUserName')!r} to "
                         f"{reply.get('ToUserName')!r}, expected from "
                         f"{account['original_id']!r} to {openid!r}")


async def push_message(state: EmulatorState, appid: str, msg_type: str, *,
                       openid: str | None = None, timeout_s: float = 5.0, retries: int = 3,
                       client: httpx.AsyncClient | None = None,
                       **fields: Any) -> PushResult:
    """Deliver one user message or event to the account's callback URL, like WeChat."""
    with state.lock:
        account = state.data["wechat"]["accounts"].get(appid)
        if account is None:
            raise PushError(f"no WeChat account {appid!r} registered in the emulator")
        account = dict(account)
    if not account.get("callback_url"):
        raise PushError(f"WeChat account {appid!r} has no callback_url")
    msg_type = msg_type.lower()
    openid = openid or make_openid(f"{appid}:citizen")
    create_time = int(state.now())
    msg_id = (state.next_seq("wechat_msg_id", 24512345678901234, 7)
              if msg_type in MESSAGE_TYPES else None)
    xml = build_message_xml(account, msg_type, openid=openid, create_time=create_time,
                            msg_id=msg_id, **fields)
    if msg_type != "publishjobfinish":  # a system notice, not a user's action
        record_user_action(state, appid, openid, msg_type)
    result = PushResult(appid=appid, openid=openid, msg_type=msg_type, msg_id=msg_id,
                        create_time=create_time, request_xml=xml)
    own_client = client is None
    http = client or httpx.AsyncClient()
    try:
        for _ in range(1 + retries):
            result.attempts += 1
            params, body = sign_and_wrap(account, xml, openid=openid,
                                         timestamp=str(int(state.now())),
                                         nonce=str(secrets.randbelow(10**10)))
            try:
                response = await http.post(account["callback_url"], params=params, content=body,
                                           headers={"Content-Type": "text/xml"},
                                           timeout=timeout_s)
            except httpx.HTTPError as exc:
                result.error = f"no answer within {timeout_s:g}s ({type(exc).__name__})"
                continue
            result.status_code = response.status_code
            if response.status_code >= 500:
                result.error = f"callback answered HTTP {response.status_code}"
                continue
            result.error = None
            if response.status_code != 200:
                result.error = f"callback answered HTTP {response.status_code}"
                break
            result.delivered = True
            try:
                result.reply_xml, result.reply = decode_reply(account, response.content)
                if result.reply is not None:
                    _check_addressing(account, openid, result.reply)
            except ValueError as exc:
                result.error = str(exc)
            break
    finally:
        if own_client:
            await http.aclose()
    with state.lock:
        state.append_log(state.data["wechat"]["inbound"], {
            "appid": appid, "openid": openid, "msg_type": msg_type, "msg_id": msg_id,
            "create_time": create_time, "fields": {k: v for k, v in fields.items()
                                                   if isinstance(v, (str, int, float))},
            "attempts": result.attempts, "delivered": result.delivered,
            "reply_xml": result.reply_xml, "error": result.error})
        state.flush()
    return result


async def push_publish_results(state: EmulatorState, client: httpx.AsyncClient | None = None) -> int:
    """Push PUBLISHJOBFINISH for every publish job that ended since the last call (Publish/Callback_on_finish).

    Each job is pushed once (with WeChat's retries); accounts without a callback URL get none.
    """
    from bot.emulator.wechat import settle_publishes

    if not state.config["wechat_push_publish_events"]:
        return 0
    with state.lock:
        settle_publishes(state)
        due = []
        for job in state.data["wechat"]["publishes"].values():
            account = state.data["wechat"]["accounts"].get(job["appid"]) or {}
            if job["status"] != 1 and not job.get("pushed") and account.get("callback_url"):
                job["pushed"] = True
                article = state.data["wechat"]["articles"].get(job.get("article_id") or "") or {}
                due.append((job["appid"], {
                    "publish_id": job["publish_id"], "publish_status": job["status"],
                    "article_id": job.get("article_id") or "", "fail_idx": job.get("fail_idx") or [],
                    "article_urls": [i["url"] for i in article.get("news_item", [])]}))
        if due:
            state.changed()
            state.flush()
    for appid, fields in due:
        await push_message(state, appid, "publishjobfinish", openid=make_openid(f"{appid}:system"),
                           client=client, **fields)
    return len(due)
