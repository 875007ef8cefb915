"""Errors nobody anticipated, answered instead of a bare 500: the JSON API answers
`{"code": ..., "message": <Chinese>, "detail": ...}`, the console a page saying the same.

Refusals raised as HTTPException (401, 403, 404 ...) take the same shape. The log gets the traceback
without local variables (bot.logs) and never the request's secrets.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from loguru import logger
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid", 429: "too_many_requests",
         500: "internal_error", 503: "unavailable"}
MESSAGES = {400: "请求格式不正确", 401: "请先登录", 403: "无权进行此操作", 404: "未找到", 405: "不支持此请求方法",
            409: "与现有数据冲突", 413: "请求内容过大", 415: "不支持此内容类型", 422: "请求内容不正确",
            429: "尝试次数过多，请稍后再试", 500: "服务器内部错误，已记录，请稍后重试或联系管理员",
            503: "数据库暂时不可用，请稍后重试"}
# A page's heading where a person reads it differently from the API's message.
PAGE_TITLES = {403: "无权进行此操作", 404: "页面不存在", 409: "当前状态不允许此操作", 422: "地址或表单内容有误"}


def error_body(code: str, message: str, detail: Any = None) -> dict:
    """The one error shape of the JSON API: a catalogue code, its Chinese text, and details for programs."""
    return {"code": code, "message": message, "detail": detail}


def page_answer(request: Request, status: int, message: str | None, headers: dict | None = None) -> Response:
    """An error as a console page (in the console's layout, with the user's menu)."""
    from bot.web.console.common import render

    title = PAGE_TITLES.get(status) or MESSAGES.get(status, "请求未完成")
    detail = message or MESSAGES.get(status, "请求未完成")
    error = {"title": title, "detail": "" if detail == title else detail, "problems": []}
    try:
        page = render(request, "notfound.html", request.scope.get("auth_user"), status_code=status, error=error)
    except Exception:  # the page itself cannot be drawn (database down ...): plain text says the same
        return HTMLResponse(f"<h1>{title}</h1><p>{html.escape(detail)}</p>", status_code=status, headers=headers)
    if headers:
        page.headers.update(headers)
    return page


def _answer(request: Request, status: int, message: str | None, detail: Any = None,
            headers: dict | None = None) -> Response:
    if request.url.path.startswith(("/api/", "/wechat/", "/healthz")):
        body = error_body(CODES.get(status, "error"), message or MESSAGES.get(status, "请求未完成"), detail)
        return JSONResponse(body, status_code=status, headers=headers)
    return page_answer(request, status, message, headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (301, 302, 303, 307, 308) or exc.status_code < 400:
            return Response(status_code=exc.status_code, headers=exc.headers)
        detail = exc.detail if isinstance(exc.detail, str) else None
        message = detail if detail and not detail.isascii() else None
        return _answer(request, exc.status_code, message, None if message else detail, headers=exc.headers)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> Response:
        logger.warning("refused a write that breaks a database constraint: {}", type(exc.orig).__name__)
        return _answer(request, 409, "与现有数据冲突，或引用的对象不存在")

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> Response:
        logger.error("database unavailable: {}", type(exc.orig).__name__)
        return _answer(request, 503, None, headers={"Retry-After": "5"})

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> Response:
        logger.error("database refused a statement: {}", type(exc.orig).__name__)
        return _answer(request, 400, "数据不符合要求（超出范围或格式不正确）")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.opt(exception=exc).error("unexpected error on {} {}", request.method, request.url.path)
        return _answer(request, 500, None)

