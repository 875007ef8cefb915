"""The WeChat callback (服务器配置 URL): GET /wechat/callback/{appid} verifies, POST delivers.

WeChat gives up after 5 s and retries the same delivery up to 3 times, so the request path only
checks, stores and classifies (milliseconds) and never calls a platform. Each delivery is stored
once; a retry finds the stored message and gets exactly the reply the first delivery got
(Message.reply_xml), encrypted afresh in AES mode (the ciphertext differs, the reply does not).

Every input is hostile until checked, in this order: account (404), query parameters (400),
signature in constant time (403), body size read with a cap whatever Content-Length says (413),
XML without DOCTYPE or entities (400), AES envelope signature (403) and decryption (400), required
fields (400). A refusal is logged and stores nothing. Only a failure of our own (database down)
answers 503, so that WeChat retries.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.parsers import expat

from fastapi import APIRouter, FastAPI, Request
from loguru import logger
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response
from wechatpy.crypto import PrpCrypto, WeChatCrypto

from bot.context import Context
from bot.inbound.autoreply import passive_text_xml
from bot.inbound.events import handle_system_event, is_system_event
from bot.inbound.store import Incoming, ingest
from bot.models import Account


@asynccontextmanager
async def _warm_up(app: FastAPI) -> AsyncIterator[None]:
    """Load the triage rules and jieba's dictionary at start, not in the first citizen's request."""
    ctx: Context = app.state.ctx
    await run_in_threadpool(lambda: ctx.rules.current().classify("预热：不满意，怎么办？"))
    yield


router = APIRouter(tags=["wechat"], lifespan=_warm_up)

SUCCESS = "success"  # tells WeChat "received, no reply"
MESSAGE_TYPES = ("text", "image", "voice", "video", "shortvideo", "location", "link")
MAX_DEPTH = 6
MAX_ELEMENTS = 400
MAX_FIELD_CHARS = 64  # ids, types, timestamps


class Refused(Exception):
    """A request we answer with `status` and log; nothing is stored."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class CallbackAccount:
    id: int
    appid: str
    token: str
    aes_key: str
    aes: bool


# ---- checks ------------------------------------------------------------------------------------


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 of the parts sorted and joined (as wechatpy's WeChatSigner computes it)."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def signature_ok(expected: str, given: str | None) -> bool:
    """Constant-time comparison: wechatpy's check_signature compares with != and leaks timing."""
    return given is not None and hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "replace"))


def parse_xml(data: bytes) -> dict[str, Any]:
    """WeChat's flat <xml> document as a dict; child elements become nested dicts (repeated: lists).

    Refuses any DOCTYPE (and so every entity declaration: billion laughs, external entities/XXE),
    anything that is not well-formed UTF-8, and documents deeper or larger than WeChat ever sends.
    """
    parser = expat.ParserCreate("UTF-8")  # overrides a declared encoding: WeChat sends UTF-8 only

    def refuse(*_args: Any) -> None:
        raise Refused(400, "DOCTYPE and entity declarations are not accepted")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    root: dict[str, Any] = {}
    stack: list[tuple[str, dict[str, Any], list[str]]] = [("", root, [])]
    count = 0

    def start(name: str, _attrs: Any) -> None:
        nonlocal count
        count += 1
        if count > MAX_ELEMENTS or len(stack) > MAX_DEPTH:
            raise Refused(400, "XML document too large or too deep")
        stack.append((name, {}, []))

    def end(_name: str) -> None:
        name, children, text = stack.pop()
        value: Any = children if children else "".join(text)
        parent = stack[-1][1]
        if name in parent:
            previous = parent[name]
            parent[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            parent[name] = value

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = lambda text: stack[-1][2].append(text)
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise Refused(400, f"malformed XML: {expat.errors.messages.get(exc.code, exc.code)}") from None
    except RecursionError:
        raise Refused(400, "XML document too deep") from None
    doc = root.get("xml")
    if not isinstance(doc, dict) or len(root) != 1:
        raise Refused(400, "not a WeChat <xml> document")
    return doc


def _field(doc: dict[str, Any], name: str, *, required: bool = True, limit: int | None = MAX_FIELD_CHARS) -> str:
    value = doc.get(name)
    if value is None or value == "":
        if required:
            raise Refused(400, f"missing field {name}")
        return ""
    if not isinstance(value, str):
        raise Refused(400, f"field {name} is not text")
    if limit is not None and len(value) > limit:
        raise Refused(400, f"field {name} is too long")
    return value.strip() if limit is not None else value


def incoming_from_xml(account_id: int, doc: dict[str, Any], raw: str) -> Incoming:
    """The platform-neutral message of a WeChat push; Refused(400) when a required field is missing."""
    to_user = _field(doc, "ToUserName")
    from_user = _field(doc, "FromUserName")
    create_time = _field(doc, "CreateTime")
    if not create_time.isdigit():
        raise Refused(400, "field CreateTime is not a number")
    received_at = datetime.fromtimestamp(int(create_time), UTC)
    wire_type = _field(doc, "MsgType").lower()
    common = dict(account_id=account_id, kind="wechat_message", received_at=received_at,
                  sender_id=from_user, raw=raw, own_id=to_user)
    if wire_type == "event":
        event = _field(doc, "Event").lower()
        # WeChat deduplicates events by FromUserName + CreateTime; the event name keeps two
        # different events of the same second (subscribe, then a menu click) apart.
        return Incoming(**common, dedupe_key=f"event:{from_user}:{create_time}:{event}", msg_type="event",
                        event=event, text=_field(doc, "EventKey", required=False, limit=None), classify=False)
    msg_id = _field(doc, "MsgId", required=wire_type in MESSAGE_TYPES)
    dedupe_key = f"msg:{msg_id}" if msg_id else f"nomsgid:{from_user}:{create_time}:{wire_type}"
    if wire_type == "text":
        text = _field(doc, "Content", limit=None)
    elif wire_type == "voice":
        text = _field(doc, "Recognition", required=False, limit=None)
    elif wire_type == "location":
        text = _field(doc, "Label", required=False, limit=None)
    elif wire_type == "link":
        parts = (_field(doc, "Title", required=False, limit=None), _field(doc, "Description", required=False, limit=None))
        text = "\n".join(p for p in parts if p)
    elif wire_type in MESSAGE_TYPES:
        text = ""  # image, video: nothing to read
    else:
        return Incoming(**common, dedupe_key=dedupe_key, msg_type="unknown", classify=False)
    return Incoming(**common, dedupe_key=dedupe_key, msg_type=wire_type, text=text)


# ---- request handling --------------------------------------------------------------------------


def _load_account(ctx: Context, appid: str) -> CallbackAccount | None:
    with ctx.session() as session:
        acc = session.execute(
            select(Account).where(Account.platform == "wechat", Account.remote_id == appid)
        ).scalar_one_or_none()
        if acc is None:
            return None
        creds = acc.credentials or {}
        return CallbackAccount(id=acc.id, appid=appid, token=str(creds.get("token") or ""),
                               aes_key=str(creds.get("encoding_aes_key") or ""),
                               aes=creds.get("message_mode") == "aes")


# Credentials only change when the config is synced at start: a short time-to-live is plenty, and
# spares a query and a thread hop on every push.
_ACCOUNT_TTL_S = 30.0


async def _account(request: Request, appid: str) -> CallbackAccount:
    """The account of the URL's appid (cached per app for _ACCOUNT_TTL_S); Refused(404) if unknown."""
    state = request.app.state
    if not hasattr(state, "wechat_callback_accounts"):
        state.wechat_callback_accounts = {}
    cache: dict[str, tuple[float, CallbackAccount]] = state.wechat_callback_accounts
    now = time.monotonic()
    cached = cache.get(appid)
    if cached is not None and cached[0] > now:
        return cached[1]
    account = await run_in_threadpool(_load_account, state.ctx, appid)
    if account is None:
        raise Refused(404, "unknown appid")
    cache[appid] = (now + _ACCOUNT_TTL_S, account)
    return account


def _query(request: Request, *names: str) -> list[str]:
    values = []
    for name in names:
        value = request.query_params.get(name)
        if not value:
            raise Refused(400, f"missing query parameter {name}")
        values.append(value)
    return values


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused past `limit` bytes while reading (Content-Length may lie or be absent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(413, f"body larger than {limit} bytes")
    return bytes(body)


def _decrypt(account: CallbackAccount, outer: dict[str, Any], timestamp: str, nonce: str,
             msg_signature: str | None) -> bytes:
    encrypted = _field(outer, "Encrypt", limit=None)
    if not signature_ok(sign(account.token, timestamp, nonce, encrypted), msg_signature):
        raise Refused(403, "bad msg_signature")
    try:
        key = WeChatCrypto(account.token, account.aes_key, account.appid).key
        plain = PrpCrypto(key).decrypt(encrypted, account.appid)
    except Exception as exc:  # base64, block size, padding, length, UTF-8, appid: all "bad ciphertext"
        raise Refused(400, f"cannot decrypt message ({type(exc).__name__})") from None
    return plain.encode("utf-8")


# SQLite has one write lock and its busy handler polls for it in sleeps of up to 100 ms: under a burst,
# request threads queueing there stretch the tail to seconds. Queueing on a Python lock instead wakes
# the next writer at once (the work is GIL-bound, nothing runs in parallel anyway). PostgreSQL needs none.
_sqlite_writer = threading.Lock()


def _store(ctx: Context, account: CallbackAccount, incoming: Incoming) -> str:
    """Store and triage; the passive reply (or "success"), the same for every redelivery."""
    with _sqlite_writer if ctx.engine.dialect.name == "sqlite" else nullcontext(), ctx.session() as session:
        result = ingest(session=session, ctx=ctx, incoming=incoming)
        message = result.message
        if not result.created:
            logger.info("duplicate delivery {} for account {}; answered as the first", incoming.dedupe_key, account.appid)
            return message.reply_xml or SUCCESS
        reply = result.auto_reply
        if reply is not None and reply.channel == "wechat_passive":
            message.reply_xml = passive_text_xml(to_user=incoming.sender_id, from_user=incoming.own_id,
                                                 text=reply.text, create_time=int(reply.sent_at.timestamp()))
        else:
            message.reply_xml = SUCCESS
        return message.reply_xml


def _handle_post(ctx: Context, account: CallbackAccount, params: dict[str, str], body: bytes) -> Response:
    timestamp, nonce = params["timestamp"], params["nonce"]
    doc = parse_xml(body)
    if account.aes:
        if "msg_signature" not in params:
            raise Refused(403, "missing msg_signature (the account is in AES mode)")
        body = _decrypt(account, doc, timestamp, nonce, params["msg_signature"])
        doc = parse_xml(body)
    if is_system_event(str(doc.get("MsgType", "")), str(doc.get("Event", ""))):
        # Not a citizen's message: handled by what it reports, stored apart (bot.inbound.events).
        with _sqlite_writer if ctx.engine.dialect.name == "sqlite" else nullcontext(), ctx.session() as session:
            handle_system_event(session, account_id=account.id, doc=doc, raw=body.decode("utf-8", "replace"))
        return PlainTextResponse(SUCCESS)
    # expat has checked the bytes are UTF-8; "replace" only guards the impossible.
    incoming = incoming_from_xml(account.id, doc, body.decode("utf-8", "replace"))
    reply_xml = _store(ctx, account, incoming)
    if reply_xml == SUCCESS:
        return PlainTextResponse(SUCCESS)
    if account.aes:
        reply_xml = WeChatCrypto(account.token, account.aes_key, account.appid).encrypt_message(reply_xml, nonce, timestamp)
    return Response(reply_xml, media_type="application/xml")


def _refusal(request: Request, appid: str, exc: Refused) -> PlainTextResponse:
    client = request.client.host if request.client else "?"
    logger.warning("WeChat callback {} {!r} from {} refused {}: {}", request.method, appid[:40], client, exc.status, exc.reason)
    return PlainTextResponse(exc.reason, status_code=exc.status)


def _unavailable(request: Request, appid: str) -> PlainTextResponse:
    # Our own failure (database down, a bug): 503 makes WeChat retry; the transaction left nothing behind.
    logger.exception("WeChat callback {} {!r} failed", request.method, appid[:40])
    return PlainTextResponse("temporarily unavailable", status_code=503)


@router.get("/wechat/callback/{appid}", include_in_schema=False)
async def verify(appid: str, request: Request) -> Response:
    """服务器配置 check: echo `echostr` when the signature is right (decrypted in AES mode)."""
    try:
        account = await _account(request, appid)
        timestamp, nonce, echostr = _query(request, "timestamp", "nonce", "echostr")
        msg_signature = request.query_params.get("msg_signature")
        if account.aes and msg_signature:
            # Encrypted verification (安全模式 as WeCom does it): the echostr is ciphertext.
            if not signature_ok(sign(account.token, timestamp, nonce, echostr), msg_signature):
                raise Refused(403, "bad msg_signature")
            try:
                key = WeChatCrypto(account.token, account.aes_key, account.appid).key
                echostr = PrpCrypto(key).decrypt(echostr, account.appid)
            except Exception as exc:
                raise Refused(400, f"cannot decrypt echostr ({type(exc).__name__})") from None
        else:
            if not signature_ok(sign(account.token, timestamp, nonce), request.query_params.get("signature")):
                raise Refused(403, "bad signature")
    except Refused as exc:
        return _refusal(request, appid, exc)
    except Exception:
        return _unavailable(request, appid)
    return PlainTextResponse(echostr)


@router.post("/wechat/callback/{appid}", include_in_schema=False)
async def receive(appid: str, request: Request) -> Response:
    """A user message or event pushed by WeChat (plain or AES mode)."""
    ctx: Context = request.app.state.ctx
    try:
        account = await _account(request, appid)
        timestamp, nonce = _query(request, "timestamp", "nonce")
        params = {"timestamp": timestamp, "nonce": nonce}
        signature = request.query_params.get("signature")
        if signature is not None or not account.aes:
            # Plain mode is authenticated by this signature alone; in AES mode WeChat sends it too.
            if not signature_ok(sign(account.token, timestamp, nonce), signature):
                raise Refused(403, "bad signature")
        if request.query_params.get("msg_signature"):
            params["msg_signature"] = request.query_params["msg_signature"]
        body = await _read_body(request, ctx.config.web.max_body_bytes)
        return await run_in_threadpool(_handle_post, ctx, account, params, body)
    except Refused as exc:
        return _refusal(request, appid, exc)
    except Exception:
        return _unavailable(request, appid)
