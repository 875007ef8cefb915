"""The emulator app: WeChat on ``/wechat``, Weibo on ``/weibo``, admin on ``/_emulator``.

Admin API (JSON in, JSON out; a bad request answers HTTP 400 ``{"error": "..."}``):

``GET  /_emulator/health``            ``{"status": "ok", "now": <emulator time>}``
``GET  /_emulator/state``             everything the platforms hold, plus counters and faults
``POST /_emulator/reset``             ``{"keep_accounts": false}``: forget everything
``POST /_emulator/accounts``          register ``{"platform": "wechat", "appid", "secret",
                                      "token", "encoding_aes_key", "callback_url",
                                      "encrypt", "original_id"}`` or ``{"platform": "weibo",
                                      "access_token", "uid", "screen_name"}``
``POST /_emulator/config``            change settings (see ``state.DEFAULT_CONFIG``)
``POST /_emulator/clock``             ``{"advance_s": 3600}``: move the emulator clock
``GET|POST|DELETE /_emulator/faults`` list, arm (see ``faults``), clear (``?platform=``)
``POST /_emulator/wechat/comments``   ``{"msg_data_id" | "article_id", "index", "openid",
                                      "content", "position"?}``: a reader comments on an
                                      article (at `position` in the list: not append-only)
``POST /_emulator/weibo/comments``    ``{"status_id", "uid", "screen_name", "text",
                                      "reply_to_cid"?}``
``POST /_emulator/wechat/push``       ``{"appid", "msg_type", "openid"?, "content"?, ...,
                                      "timeout_s"?, "retries"?}``: push to the callback URL
``POST /_emulator/weibo/tokens/revoke`` ``{"access_token", "reason": "expired"|"revoked"}``
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from loguru import logger
from starlette.responses import JSONResponse

from bot.emulator import wechat, weibo
from bot.emulator.demo import run_demo
from bot.emulator.push import push_message, push_publish_results
from bot.emulator.state import EmulatorState

PUSH_OPTIONS = {"appid", "msg_type", "openid", "timeout_s", "retries"}
PUBLISH_PUSH_EVERY_S = 0.2


async def run_publish_pushes(state: EmulatorState) -> None:
    """Push PUBLISHJOBFINISH as publish jobs end, like WeChat (Publish/Callback_on_finish)."""
    while True:
        try:
            await push_publish_results(state)
        except Exception:  # a broken callback must not stop the pusher
            logger.exception("emulator: PUBLISHJOBFINISH push failed")
        await asyncio.sleep(PUBLISH_PUSH_EVERY_S)


class AdminError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        payload = await request.json()
    except ValueError as exc:
        raise AdminError(f"request body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise AdminError("request body must be a JSON object")
    return payload


def _require(payload: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if payload.get(n) in (None, "")]
    if missing:
        raise AdminError(f"missing field(s): {', '.join(missing)}")


def create_app(state: EmulatorState | None = None, *, demo: bool = False,
               demo_interval_s: float = 20.0) -> FastAPI:
    state = state if state is not None else EmulatorState()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(run_publish_pushes(state))]
        if demo:
            tasks.append(asyncio.create_task(run_demo(state, interval_s=demo_interval_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            state.flush()

    app = FastAPI(title="govbot platform emulator", lifespan=lifespan, openapi_url=None,
                  docs_url=None, redoc_url=None)
    app.state.emulator = state
    app.include_router(wechat.create_router(state), prefix="/wechat")
    app.include_router(weibo.create_router(state), prefix="/weibo")

    @app.exception_handler(AdminError)
    async def admin_error(_: Request, exc: AdminError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(ValueError)
    async def value_error(_: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.get("/_emulator/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "now": state.now()}

    @app.get("/_emulator/state")
    async def get_state() -> dict[str, Any]:
        with state.lock:
            wechat.settle_publishes(state)
            state.flush()
        return state.snapshot()

    @app.post("/_emulator/reset")
    async def reset(request: Request) -> dict[str, Any]:
        payload = await _body(request)
        state.reset(keep_accounts=bool(payload.get("keep_accounts")))
        return {"status": "ok"}

    @app.post("/_emulator/accounts")
    async def register(request: Request) -> dict[str, Any]:
        payload = await _body(request)
        platform = payload.get("platform")
        if platform == "wechat":
            _require(payload, "appid", "secret")
            return state.register_wechat_account(
                appid=payload["appid"], secret=payload["secret"],
                token=payload.get("token") or "",
                encoding_aes_key=payload.get("encoding_aes_key"),
                callback_url=payload.get("callback_url"),
                encrypt=bool(payload.get("encrypt")), original_id=payload.get("original_id"))
        if platform == "weibo":
            _require(payload, "access_token")
            return state.register_weibo_account(
                access_token=payload["access_token"], uid=payload.get("uid"),
                screen_name=payload.get("screen_name"))
        raise AdminError(f"platform must be 'wechat' or 'weibo', got {platform!r}")

    @app.post("/_emulator/config")
    async def config(request: Request) -> dict[str, Any]:
        return state.update_config(await _body(request))

    @app.post("/_emulator/clock")
    async def clock(request: Request) -> dict[str, Any]:
        payload = await _body(request)
        advance = payload.get("advance_s")
        if not isinstance(advance, (int, float)) or isinstance(advance, bool):
            raise AdminError("advance_s must be a number of seconds")
        return {"now": state.advance(float(advance))}

    @app.get("/_emulator/faults")
    async def list_faults() -> dict[str, Any]:
        return {"faults": state.faults.list()}

    @app.post("/_emulator/faults")
    async def add_fault(request: Request) -> dict[str, Any]:
        payload = await _body(request)
        _require(payload, "platform", "path", "kind")
        fault = state.faults.add(platform=payload["platform"], path=payload["path"],
                                 kind=payload["kind"], count=payload.get("count", 1),
                                 delay_s=payload.get("delay_s"), status=payload.get("status"))
        return fault.to_dict()

    @app.delete("/_emulator/faults")
    async def clear_faults(platform: str | None = None) -> dict[str, Any]:
        return {"cleared": state.faults.clear(platform)}

    @app.post("/_emulator/wechat/comments")
    async def wechat_comment(request: Request) -> dict[str, Any]:
        payload = await _body(request)
        _require(payload, "openid", "content")
        if payload.get("msg_data_id") is None and not payload.get("article_id"):
            raise AdminError("give msg_data_id or article_id")
        return wechat.inject_comment(
            state, openid=payload["openid"], content=payload["content"],
            msg_data_id=payload.get("msg_data_id"), article_id=payload.get("article_id"),
            index=int(payload.get("index", 0)),
            position=None if payload.get("position") is None else int(payload["position"]))

    @app.post("/_emulator/weibo/comments")
    async def weibo_comment(request: Request) -> dict[str, Any]:
        payload = await _body(request)
        _require(payload, "status_id", "uid", "screen_name", "text")
        return weibo.inject_comment(
            state, status_id=payload["status_id"], uid=payload["uid"],
            screen_name=payload["screen_name"], text=payload["text"],
            reply_to_cid=payload.get("reply_to_cid"))

    @app.post("/_emulator/wechat/push")
    async def wechat_push(request: Request) -> dict[str, Any]:
        payload = await _body(request)
        _require(payload, "appid", "msg_type")
        fields = {k: v for k, v in payload.items() if k not in PUSH_OPTIONS}
        result = await push_message(
            state, payload["appid"], payload["msg_type"], openid=payload.get("openid"),
            timeout_s=float(payload.get("timeout_s", 5.0)),
            retries=int(payload.get("retries", 3)), **fields)
        return result.to_dict()

    @app.post("/_emulator/weibo/tokens/revoke")
    async def revoke(request: Request) -> dict[str, Any]:
        payload = await _body(request)
        _require(payload, "access_token")
        reason = payload.get("reason", "revoked")
        if reason not in ("expired", "revoked"):
            raise AdminError("reason must be 'expired' or 'revoked'")
        with state.mutate() as data:
            record = data["weibo"]["tokens"].get(payload["access_token"])
            if record is None:
                raise AdminError("unknown Weibo access_token", 404)
            record["status"] = reason
            return dict(record)

    return app
