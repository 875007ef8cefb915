"""The web service: WeChat callback, JSON API and the console, in one FastAPI app.

API errors have one shape, `error_body(code, message, detail)`: a catalogue code (bot/errors.py), its
Chinese text and details for programs; `domain_error_response(exc)` turns a GovbotError into it with
its HTTP status. Console pages (not /api/) keep their own handling: redirects and HTML pages.
"""

from __future__ import annotations

import html
import re

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware

from bot.context import Context
from bot.errors import CheckFailed, GovbotError, InvalidState, NotFound, PermissionDenied, text_zh

_STATUS = {NotFound: 404, PermissionDenied: 403, InvalidState: 409, CheckFailed: 422}
# HTTP errors raised by the framework or by dependencies, by status: the catalogue code they show as.
_HTTP_CODES = {401: "request.unauthenticated", 404: "request.not_found", 405: "request.method"}


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def is_page(request: Request) -> bool:
    """A console page (a person in a browser), not the API or a platform's callback."""
    return not request.url.path.startswith(("/api/", "/wechat/", "/healthz"))


_PAGE_TITLES = {403: "无权进行此操作", 404: "页面不存在", 409: "当前状态不允许此操作", 422: "地址或表单内容有误"}
_CJK = re.compile(r"[\u4e00-\u9fff]")


def error_page(status: int, message: str) -> HTMLResponse:
    """A plain Chinese page for an error outside the console's own pages (a mistyped address, a bad id)."""
    title = _PAGE_TITLES.get(status, "操作未完成")
    body = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{title}</title></head><body>'
            f'<main style="max-width:40rem;margin:3rem auto;padding:0 1rem;font-family:sans-serif">'
            f"<h1>{title}</h1><p>{html.escape(message)}</p><p><a href=\"/\">返回首页</a></p></main></body></html>")
    return HTMLResponse(body, status_code=status)


def error_body(code: str, message: str, detail: object = None) -> dict:
    """The one error shape of the JSON API: a catalogue code, its Chinese text, and details for programs."""
    return {"code": code, "message": message, "detail": detail}


def domain_error_response(exc: GovbotError) -> JSONResponse:
    status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
    detail: dict = {**{k: v for k, v in exc.params.items() if not k.endswith("_zh")}, "text": str(exc)}
    if isinstance(exc, CheckFailed):
        detail["problems"] = [p.as_dict() if hasattr(p, "as_dict") else {"text": str(p)} for p in exc.problems]
    if getattr(exc, "platform", None):
        detail["platform"] = exc.platform
    return JSONResponse(error_body(exc.error_code, exc.message_zh, _jsonable(detail)), status_code=status)


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def install_error_handlers(app: FastAPI) -> None:
    """Every API error in one shape; console pages keep their own handling (redirects, HTML pages)."""

    @app.exception_handler(GovbotError)
    async def _domain_error(request: Request, exc: GovbotError):
        response = domain_error_response(exc)
        return error_page(response.status_code, exc.message_zh) if is_page(request) else response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errors = [{"field": ".".join(str(x) for x in e.get("loc", ()) if x != "body"), "type": e.get("type"),
                   "message": e.get("msg")} for e in exc.errors()]
        fields = "、".join(e["field"] for e in errors if e["field"]) or "请求内容"
        message = text_zh("request.invalid", fields=fields)
        if is_page(request):
            return error_page(422, message)
        if not is_api(request):
            return await request_validation_exception_handler(request, exc)
        return JSONResponse(error_body("request.invalid", message, _jsonable(errors)), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        code = _HTTP_CODES.get(exc.status_code, "request.http")
        message = text_zh(code, path=request.url.path, method=request.method, status=exc.status_code,
                          reason=exc.detail)
        if is_page(request) and exc.status_code >= 400:
            detail = str(exc.detail or "")
            return error_page(exc.status_code, detail if _CJK.search(detail) else message)
        if not is_api(request):
            return await http_exception_handler(request, exc)
        return JSONResponse(error_body(code, message, {"status": exc.status_code, "reason": exc.detail}),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(title="govbot", version="0.1.0", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.ctx = ctx
    app.state.ready = True
    app.add_middleware(SessionMiddleware, secret_key=ctx.config.web.secret_key, session_cookie="govbot_session",
                       same_site="lax", https_only=False)

    install_error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        with ctx.engine.connect():
            pass
        return JSONResponse({"status": "ok", "worker": ctx.worker_id})

    for router in _routers():
        app.include_router(router)
    return app


def _routers() -> list:
    """Each part of the product contributes its router here."""
    from bot.inbound.callback import router as wechat_callback_router
    from bot.web.api_oversight import router as oversight_api_router
    from bot.web.api_posts import router as posts_api_router
    from bot.web.api_tickets import router as tickets_api_router
    from bot.web.console import router as console_router

    return [wechat_callback_router, posts_api_router, tickets_api_router, oversight_api_router, console_router]
