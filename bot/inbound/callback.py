"""The WeChat callback (服务器配置 URL): GET /wechat/callback/{appid} verifies, POST delivers.

WeChat gives up after 5 s and retries the same delivery up to 3 times, so the request path is
short: verify, parse, store the raw delivery once (bot.inbound.intake: one writer thread, group
commits, the spool when the database cannot take it), answer. Triage, routing and tickets follow
after the answer in the worker (bot.inbound.processing). The one exception is an answer that must
be in the response itself: a passive FAQ reply or the welcome of a subscribe. Whether an FAQ rule
could apply is a single automaton pass over the text (FaqMatcher.candidate); only then is the
message's intent classified in the request, and the answer chosen is stored with the delivery (the
once-per-citizen limit checked in the same transaction); the worker records it as a Reply. A
redelivery gets exactly the answer the first delivery got (InboundDelivery.reply_xml), encrypted
afresh in AES mode.

Every input is hostile until checked, in this order: account (404), query parameters (400),
signature in constant time (403), timestamp within callback.timestamp_window_s (403), body size
read with a cap whatever Content-Length says (413), XML without DOCTYPE or entities (400), AES
envelope signature (403) and decryption (400), required fields (400; the XML checks are
bot.inbound.wechat_xml), nonce not seen before with another message (403: a replayed signature;
in plain mode it does not cover the body). A refusal is logged and stores nothing. A CreateTime far from the arrival time is replaced by the arrival
time and kept as Message.untrusted_create_time. Only a failure of our own (neither database nor
spool can store) answers 503, so that WeChat retries.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request
from loguru import logger
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response
from wechatpy.crypto import PrpCrypto, WeChatCrypto

from bot.clock import utcnow
from bot.context import Context
from bot.inbound.autoreply import (
    PASSIVE_CHANNEL,
    WELCOME_RULE,
    choose,
    once_since,
    passive_text_xml,
    welcome_text,
)
from bot.inbound.intake import Intake
from bot.inbound.rows import SUCCESS, Outcome, PassiveAnswer
from bot.inbound.spool import Delivery
from bot.inbound.store import Incoming
from bot.inbound.wechat_xml import MAX_FIELD_CHARS, Refused, field, incoming_from_xml, parse_xml
from bot.logthrottle import log_throttled
from bot.models import Account
from bot.triage.rules import normalize


@asynccontextmanager
async def _warm_up(app: FastAPI) -> AsyncIterator[None]:
    """Load the triage rules and jieba's dictionary at start, not in the first citizen's request."""
    ctx: Context = app.state.ctx
    await run_in_threadpool(lambda: ctx.rules.current().classify("预热：不满意，怎么办？"))
    # The rules and jieba's dictionary are hundreds of thousands of long-lived objects: out of the
    # collector's sight, a full collection no longer stalls every request for tens of milliseconds.
    # Garbage is collected first so that nothing unreachable is frozen with them.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        intake: Intake | None = getattr(app.state, "intake", None)
        if intake is not None:
            await run_in_threadpool(intake.close)


router = APIRouter(tags=["wechat"], lifespan=_warm_up)

@dataclass(frozen=True)
class CallbackAccount:
    id: int
    appid: str
    token: str
    aes_key: str
    aes: bool
    name: str  # FAQ rules may be limited to accounts by name
    auto_reply: bool


# ---- checks ------------------------------------------------------------------------------------


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 of the parts sorted and joined (as wechatpy's WeChatSigner computes it)."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def signature_ok(expected: str, given: str | None) -> bool:
    """Constant-time comparison: wechatpy's check_signature compares with != and leaks timing."""
    return given is not None and hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "replace"))


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
                               aes=creds.get("message_mode") == "aes", name=acc.name, auto_reply=acc.auto_reply)


# Credentials only change when the config is synced at start: a short time-to-live is plenty, and
# spares a query and a thread hop on every push.
_ACCOUNT_TTL_S = 30.0


async def _account(state: Any, appid: str) -> CallbackAccount:
    """The account of the URL's appid (cached in the app's state for _ACCOUNT_TTL_S); Refused(404) if unknown."""
    if not hasattr(state, "wechat_callback_accounts"):
        state.wechat_callback_accounts = {}
    cache: dict[str, tuple[float, CallbackAccount]] = state.wechat_callback_accounts
    now = time.monotonic()
    cached = cache.get(appid)
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        account = await run_in_threadpool(_load_account, state.ctx, appid)
    except DBAPIError:
        if cached is None:
            raise
        return cached[1]  # the database is out of reach: the credentials we know are still right
    if account is None:
        raise Refused(404, "unknown appid")
    cache[appid] = (now + _ACCOUNT_TTL_S, account)
    return account


def _query(query: Mapping[str, str], *names: str) -> list[str]:
    values = []
    for name in names:
        value = query.get(name)
        if not value:
            raise Refused(400, f"missing query parameter {name}")
        values.append(value)
    return values


def _decrypt(account: CallbackAccount, outer: dict[str, Any], timestamp: str, nonce: str,
             msg_signature: str | None) -> bytes:
    encrypted = field(outer, "Encrypt", limit=None)
    if not signature_ok(sign(account.token, timestamp, nonce, encrypted), msg_signature):
        raise Refused(403, "bad msg_signature")
    try:
        key = WeChatCrypto(account.token, account.aes_key, account.appid).key
        plain = PrpCrypto(key).decrypt(encrypted, account.appid)
    except Exception as exc:  # base64, block size, padding, length, UTF-8, appid: all "bad ciphertext"
        raise Refused(400, f"cannot decrypt message ({type(exc).__name__})") from None
    return plain.encode("utf-8")


def _timestamp(value: str, window_s: int) -> int:
    """The signature's timestamp; Refused(403) outside the window: a captured request cannot be replayed later."""
    if not value.isdigit() or len(value) > 12:
        raise Refused(400, "query parameter timestamp is not a number")
    timestamp = int(value)
    if abs(time.time() - timestamp) > window_s:
        raise Refused(403, f"timestamp more than {window_s} s away from our clock")
    return timestamp


def _open(account: CallbackAccount, params: dict[str, str], body: bytes) -> tuple[dict[str, Any], str]:
    """The plain delivery document and its XML text (decrypted and checked in AES mode)."""
    doc = parse_xml(body)
    if account.aes:
        if "msg_signature" not in params:
            raise Refused(403, "missing msg_signature (the account is in AES mode)")
        body = _decrypt(account, doc, params["timestamp"], params["nonce"], params["msg_signature"])
        doc = parse_xml(body)
    # expat has checked the bytes are UTF-8; "replace" only guards the impossible.
    return doc, body.decode("utf-8", "replace")


def _passive_answer(ctx: Context, account: CallbackAccount, incoming: Incoming, arrived_at: datetime) -> PassiveAnswer | None:
    """The automatic answer to give in the response, or None for "success" (then the worker triages
    after the answer). Reads nothing from the database: the once-per-citizen limit is checked as the
    delivery is stored, and the worker records the answer given."""
    if incoming.event == "subscribe":
        text, rule, since = welcome_text(ctx, auto_reply=account.auto_reply), WELCOME_RULE, None
    elif not (ctx.config.autoreply.enabled and account.auto_reply and incoming.classify and incoming.text.strip()):
        return None
    elif not ctx.rules.current_faq().candidate(incoming.text, account.name):
        return None  # the common case: one automaton pass, no classification
    else:
        # An FAQ word is there: only a confident question matching a rule is answered. Normalized once
        # here, the text passes through the classifier's and the matcher's normalize unchanged, and fast.
        text = normalize(incoming.text)
        match, _reason = choose(ctx, account_name=account.name, auto_reply=account.auto_reply, channel=PASSIVE_CHANNEL,
                                text=text, classification=ctx.rules.current().classify(text, topics=False))
        if match is None:
            return None
        text, rule, since = match.answer, match.rule_id, once_since(ctx)
    if text is None:
        return None
    reply_xml = passive_text_xml(to_user=incoming.sender_id, from_user=incoming.own_id, text=text,
                                 create_time=int(arrived_at.timestamp()))
    return PassiveAnswer(faq_rule=rule, reply_xml=reply_xml, sender_id=incoming.sender_id[:100], once_since=since)


def intake_of(app: FastAPI) -> Intake:
    """The process's delivery writer (one per app)."""
    intake = getattr(app.state, "intake", None)
    if intake is None:
        intake = app.state.intake = Intake(app.state.ctx)
    return intake


async def _deliver(app: FastAPI, account: CallbackAccount, params: dict[str, str], body: bytes,
                   arrived_at: datetime) -> Response:
    ctx: Context = app.state.ctx
    doc, xml = _open(account, params, body)
    incoming = incoming_from_xml(account.id, doc, xml, arrived_at=arrived_at, cfg=ctx.config.callback)
    delivery = Delivery(account_id=account.id, dedupe_key=incoming.dedupe_key[:200], timestamp=int(params["timestamp"]),
                        nonce=params["nonce"], body=xml, arrived_at=arrived_at)
    stored = await intake_of(app).store(delivery, _passive_answer(ctx, account, incoming, arrived_at))
    if stored.outcome is Outcome.REPLAY:
        raise Refused(403, "signature replayed: its timestamp and nonce came before with another message")
    if stored.outcome is Outcome.DUPLICATE:
        logger.debug("duplicate delivery {} for account {}; answered as the first", incoming.dedupe_key, account.appid)
    if stored.reply_xml == SUCCESS:
        return PlainTextResponse(SUCCESS)
    reply_xml = stored.reply_xml
    if account.aes:
        reply_xml = WeChatCrypto(account.token, account.aes_key, account.appid).encrypt_message(
            reply_xml, params["nonce"], params["timestamp"])
    return Response(reply_xml, media_type="application/xml")


def _refusal(method: str, appid: str, client: str, exc: Refused) -> PlainTextResponse:
    logger.warning("WeChat callback {} {!r} from {} refused {}: {}", method, appid[:40], client, exc.status, exc.reason)
    return PlainTextResponse(exc.reason, status_code=exc.status)


def _unavailable(method: str, appid: str) -> PlainTextResponse:
    # Our own failure (neither database nor spool, a bug): 503 makes WeChat retry; nothing was acknowledged.
    log_throttled(f"callback.failed.{method}", "ERROR", "WeChat callback {} {!r} failed",
                  method, appid[:40], exception=True)
    return PlainTextResponse("temporarily unavailable", status_code=503)


@router.get("/wechat/callback/{appid}", include_in_schema=False)
async def verify(appid: str, request: Request) -> Response:
    """服务器配置 check: echo `echostr` when the signature is right (decrypted in AES mode)."""
    try:
        account = await _account(request.app.state, appid)
        timestamp, nonce, echostr = _query(request.query_params, "timestamp", "nonce", "echostr")
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
        # A captured verification URL cannot be replayed later to probe the token (as for pushes).
        _timestamp(timestamp, request.app.state.ctx.config.callback.timestamp_window_s)
    except Refused as exc:
        return _refusal("GET", appid, request.client.host if request.client else "?", exc)
    except Exception:
        return _unavailable("GET", appid)
    return PlainTextResponse(echostr)


PREFIX = "/wechat/callback/"


async def answer_push(app: Any, scope: dict, receive_: Any, send: Any) -> bool:
    """Answer a POST /wechat/callback/{appid} straight from the ASGI scope, before the framework's
    layers (telemetry, the console's middleware, routing, the endpoint machinery): they were a
    third of the CPU a delivery costs. False when `scope` is anything else. Called first by the app
    (bot.web.app.GovbotApp)."""
    if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(PREFIX):
        return False
    appid = scope["path"][len(PREFIX):]
    if not appid or "/" in appid:
        return False
    scope["app"] = app
    response = await receive(appid, Push(scope, receive_))
    await response(scope, receive_, send)
    return True


class Push:
    """What the callback reads of a request: the raw scope's query, headers and body (a Starlette
    Request parses more than this on every push)."""

    __slots__ = ("scope", "_receive", "query")

    def __init__(self, scope: dict, receive_: Any):
        self.scope, self._receive = scope, receive_
        # As Starlette's QueryParams: latin-1, blank values kept, the last of repeated names wins.
        self.query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))

    @property
    def app(self) -> Any:
        return self.scope["app"]

    @property
    def client_host(self) -> str:
        client = self.scope.get("client")
        return client[0] if client else "?"

    def header(self, name: bytes) -> str | None:
        for key, value in self.scope["headers"]:
            if key == name:
                return value.decode("latin-1")
        return None

    async def body(self, limit: int) -> bytes:
        """The body, refused past `limit` bytes while reading (Content-Length may lie or be absent)."""
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Refused(413, f"body larger than {limit} bytes")
        body = b""
        while True:
            message = await self._receive()
            if message["type"] != "http.request":
                raise Refused(400, "the client went away before the body was read")
            body += message.get("body", b"")
            if len(body) > limit:
                raise Refused(413, f"body larger than {limit} bytes")
            if not message.get("more_body", False):
                return body


async def receive(appid: str, push: Push) -> Response:
    """A user message or event pushed by WeChat (plain or AES mode)."""
    ctx: Context = push.app.state.ctx
    arrived_at = utcnow()
    try:
        account = await _account(push.app.state, appid)
        query = push.query
        timestamp, nonce = _query(query, "timestamp", "nonce")
        if len(nonce) > MAX_FIELD_CHARS:
            raise Refused(400, "query parameter nonce is too long")
        params = {"timestamp": timestamp, "nonce": nonce}
        signature = query.get("signature")
        if signature is not None or not account.aes:
            # Plain mode is authenticated by this signature alone; in AES mode WeChat sends it too.
            if not signature_ok(sign(account.token, timestamp, nonce), signature):
                raise Refused(403, "bad signature")
        _timestamp(timestamp, ctx.config.callback.timestamp_window_s)
        if query.get("msg_signature"):
            params["msg_signature"] = query["msg_signature"]
        body = await push.body(ctx.config.web.max_body_bytes)
        return await _deliver(push.app, account, params, body, arrived_at)
    except Refused as exc:
        return _refusal("POST", appid, push.client_host, exc)
    except Exception:
        return _unavailable("POST", appid)
