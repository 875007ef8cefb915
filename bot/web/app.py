"""The web service: WeChat callback, JSON API and the console, in one FastAPI app.

Bad input is refused first, then every route passes the one access check (bot.web.access). API errors
have one shape, `{"code", "message", "detail"}` (bot.web.failures.error_body): a catalogue code
(bot/errors.py), its Chinese text and details for programs. Console pages show the same message as a page.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from bot.context import Context
from bot.errors import CheckFailed, GovbotError, InvalidState, NotFound, PermissionDenied, text_zh
from bot.inbound.callback import answer_push
from bot.web.access import authorize
from bot.web.failures import error_body, install_error_handlers, page_answer
from bot.web.security import SecurityHeaders
from bot.web.sessions import ServerSessions
from bot.web.validation import refuse_bad_input

__all__ = ["create_app", "domain_error_response", "error_body"]

_STATUS = {NotFound: 404, PermissionDenied: 403, InvalidState: 409, CheckFailed: 422}
# HTTP errors raised by the framework or by dependencies, by status: the catalogue code they show as.
_HTTP_CODES = {401: "request.unauthenticated", 404: "request.not_found", 405: "request.method"}
_CJK = re.compile(r"[\u4e00-\u9fff]")


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def is_page(request: Request) -> bool:
    """A console page (a person in a browser), not the API or a platform's callback."""
    return not request.url.path.startswith(("/api/", "/wechat/", "/healthz"))


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


def install_api_errors(app: FastAPI) -> None:
    """Domain, validation and HTTP errors in the one shape (API) or as a console page."""

    @app.exception_handler(GovbotError)
    async def _domain_error(request: Request, exc: GovbotError) -> Response:
        response = domain_error_response(exc)
        return page_answer(request, response.status_code, exc.message_zh) if is_page(request) else response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"field": ".".join(str(x) for x in e.get("loc", ()) if x != "body"), "type": e.get("type"),
                   "message": e.get("msg")} for e in exc.errors()]
        fields = "、".join(e["field"] for e in errors if e["field"]) or "请求内容"
        message = text_zh("request.invalid", fields=fields)
        if is_page(request):
            return page_answer(request, 422, message)
        if not is_api(request):
            return await request_validation_exception_handler(request, exc)
        return JSONResponse(error_body("request.invalid", message, _jsonable(errors)), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code < 400:  # redirects (the console's log-in redirect) pass as they are
            return Response(status_code=exc.status_code, headers=exc.headers)
        code = _HTTP_CODES.get(exc.status_code, "request.http")
        detail = exc.detail if isinstance(exc.detail, str) else ""
        message = detail if _CJK.search(detail) else text_zh(code, path=request.url.path, method=request.method,
                                                             status=exc.status_code, reason=exc.detail)
        if is_page(request):
            return page_answer(request, exc.status_code, message, headers=exc.headers)
        if not is_api(request):
            return await http_exception_handler(request, exc)
        return JSONResponse(error_body(code, message, {"status": exc.status_code, "reason": exc.detail}),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))


class GovbotApp(FastAPI):
    """The app, whose first step answers WeChat's pushes (bot.inbound.callback.answer_push) before
    any layer of the framework; every other request goes through FastAPI as usual."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not await answer_push(self, scope, receive, send):
            await super().__call__(scope, receive, send)


def create_app(ctx: Context) -> FastAPI:
    from bot import __version__

    app = GovbotApp(title="govbot", version=__version__, docs_url="/api/docs", openapi_url="/api/openapi.json",
                  dependencies=[Depends(refuse_bad_input), Depends(authorize)])
    app.state.ctx = ctx
    app.state.ready = True
    app.add_middleware(ServerSessions, ctx=ctx)
    app.add_middleware(SecurityHeaders, config=ctx.config)
    # The database and unexpected failures first; domain, validation and HTTP errors override theirs.
    install_error_handlers(app)
    install_api_errors(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        # Ready only while the database takes writes: a load balancer then sends WeChat elsewhere.
        from bot.inbound.callback import intake_of

        if not intake_of(app).writable():
            return JSONResponse({"status": "database not writable", "worker": ctx.worker_id}, status_code=503)
        return JSONResponse({"status": "ok", "worker": ctx.worker_id})

    for router in _routers():
        app.include_router(router)
    return app


def app_from_config() -> FastAPI:
    """The app of one of several web processes (`web.workers` > 1): its own Context from $GOVBOT_CONFIG."""
    from bot import logs
    from bot.config import load_config

    logs.setup("INFO")
    config = load_config()
    logs.register_config_secrets(config)
    return create_app(Context.open(config))


def _routers() -> list:
    """Each part of the product contributes its router here."""
    from bot.inbound.callback import router as wechat_callback_router
    from bot.web.api_inspection import router as inspection_api_router
    from bot.web.api_oversight import router as oversight_api_router
    from bot.web.api_platforms import router as platforms_api_router
    from bot.web.api_posts import router as posts_api_router
    from bot.web.api_tickets import router as tickets_api_router
    from bot.web.api_users import router as users_api_router
    from bot.web.console import router as console_router

    return [wechat_callback_router, posts_api_router, tickets_api_router, oversight_api_router, users_api_router,
            inspection_api_router, platforms_api_router, console_router]
