"""The web service: WeChat callback, JSON API and the console, in one FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.middleware.sessions import SessionMiddleware

from bot.context import Context
from bot.errors import CheckFailed, GovbotError, InvalidState, NotFound, PermissionDenied

_STATUS = {NotFound: 404, PermissionDenied: 403, InvalidState: 409, CheckFailed: 422}


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(title="govbot", version="0.1.0", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.ctx = ctx
    app.state.ready = True
    app.add_middleware(SessionMiddleware, secret_key=ctx.config.web.secret_key, session_cookie="govbot_session",
                       same_site="lax", https_only=False)

    @app.exception_handler(GovbotError)
    async def _domain_error(_request: Request, exc: GovbotError) -> JSONResponse:
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
        body: dict = {"error": type(exc).__name__, "detail": str(exc)}
        if isinstance(exc, CheckFailed):
            body["problems"] = [str(p) for p in exc.problems]
        return JSONResponse(body, status_code=status)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        # Ready only while the database takes writes: a load balancer then sends WeChat elsewhere.
        from bot.inbound.callback import intake_of

        if not intake_of(app).writable():
            return JSONResponse({"status": "database not writable", "worker": ctx.worker_id}, status_code=503)
        return JSONResponse({"status": "ok", "worker": ctx.worker_id})

    for router in _routers():
        app.include_router(router)
    from bot.inbound.callback import CallbackFastPath

    app.add_middleware(CallbackFastPath)  # last added: outermost, before the session middleware
    return app


def app_from_config() -> FastAPI:
    """The app of one of several web processes (`web.workers` > 1): its own Context from $GOVBOT_CONFIG."""
    import sys

    from loguru import logger

    from bot.config import load_config

    logger.remove()
    logger.add(sys.stderr, level="INFO", diagnose=False)
    return create_app(Context.open(load_config()))


def _routers() -> list:
    """Each part of the product contributes its router here."""
    from bot.inbound.callback import router as wechat_callback_router
    from bot.web.api_oversight import router as oversight_api_router
    from bot.web.api_posts import router as posts_api_router
    from bot.web.api_tickets import router as tickets_api_router
    from bot.web.console import router as console_router

    return [wechat_callback_router, posts_api_router, tickets_api_router, oversight_api_router, console_router]
