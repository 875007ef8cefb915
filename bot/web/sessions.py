"""Console sessions kept in the database (bot.models.WebSession), offered to the app as `request.session`.

The cookie holds only a random token; the row holds the data (user_id, csrf, flashes), so logging out,
changing a password or an admin ending a user's sessions takes effect at once in every process.
A session ends after `web.session_idle_minutes` without a request and `web.session_max_hours` after
it began. A new token is issued whenever the logged-in user changes (no session fixation), and when
the user changed their own password (`renew`: the other sessions ended, this one goes on under a new token).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
from loguru import logger
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, delete, select
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.clock import utcnow
from bot.context import Context
from bot.models import WebSession
from bot.web.security import client_address, ensure_secret_key, is_https

COOKIE = "govbot_session"
RENEW = "govbot.session_renew"  # scope key set by `renew`
# last_seen_at is written at most this often (not on every request).
TOUCH_EVERY = timedelta(seconds=60)


@dataclass
class Loaded:
    row_id: int | None
    user_id: int | None
    data: dict[str, Any]


class SessionStore:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.key = ensure_secret_key(ctx.config).encode()
        self.idle = timedelta(minutes=ctx.config.web.session_idle_minutes)
        self.max_age = timedelta(hours=ctx.config.web.session_max_hours)

    def token_hash(self, token: str) -> str:
        return hmac.new(self.key, token.encode(), hashlib.sha256).hexdigest()

    def load(self, token: str | None) -> Loaded:
        if not token or len(token) > 100:
            return Loaded(None, None, {})
        now = utcnow()
        with self.ctx.session() as s:
            row = s.exec(select(WebSession).where(WebSession.token_hash == self.token_hash(token))).first()
            if row is None:
                return Loaded(None, None, {})
            if now - row.last_seen_at > self.idle or now - row.created_at > self.max_age:
                s.delete(row)
                return Loaded(None, None, {})
            if now - row.last_seen_at > TOUCH_EVERY:
                row.last_seen_at = now
                s.add(row)
            return Loaded(row.id, row.user_id, dict(row.data))

    def save(self, loaded: Loaded, data: dict[str, Any], address: str, renew: bool = False) -> tuple[str | None, bool]:
        """Store the session's new data: (new token to set or None, whether to clear the cookie)."""
        user_id = data.get("user_id")
        with self.ctx.session() as s:
            if loaded.row_id is not None and (not data or user_id != loaded.user_id or renew):
                s.exec(delete(WebSession).where(WebSession.id == loaded.row_id))
            elif loaded.row_id is not None:
                row = s.get(WebSession, loaded.row_id)
                if row is None:  # ended meanwhile (logout elsewhere, password changed): stays ended
                    return None, True
                row.data = data
                s.add(row)
                return None, False
            if not data:
                return None, loaded.row_id is not None
            token = secrets.token_urlsafe(32)
            s.add(WebSession(token_hash=self.token_hash(token), user_id=user_id if isinstance(user_id, int) else None,
                             data=data, address=address))
            self.expire_old(s)
            return token, False

    def expire_old(self, s: Session) -> None:
        now = utcnow()
        s.exec(delete(WebSession).where((WebSession.last_seen_at < now - self.idle)
                                        | (WebSession.created_at < now - self.max_age)))


class ServerSessions:
    """ASGI middleware: `scope["session"]` is the stored data; changes are saved before the answer goes."""

    def __init__(self, app: ASGIApp, ctx: Context):
        self.app, self.ctx = app, ctx
        self.store = SessionStore(ctx)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        try:
            loaded = await anyio.to_thread.run_sync(self.store.load, conn.cookies.get(COOKIE))
        except OperationalError:  # database down: no session; the route answers 503 when it needs the database
            loaded = Loaded(None, None, {})
        scope["session"] = dict(loaded.data)
        before = json.dumps(loaded.data, sort_keys=True, default=str)
        secure = is_https(conn, self.ctx.config)
        address = client_address(conn, self.ctx.config)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                data = scope["session"]
                renew = bool(scope.get(RENEW))
                if renew or json.dumps(data, sort_keys=True, default=str) != before:
                    try:
                        token, clear = await anyio.to_thread.run_sync(self.store.save, loaded, data, address, renew)
                    except OperationalError:  # database down: the answer still goes out, unchanged session
                        logger.warning("console session not saved: database unavailable")
                        token, clear = None, False
                    headers = MutableHeaders(scope=message)
                    flags = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
                    if token:
                        headers.append("Set-Cookie", f"{COOKIE}={token}{flags}")
                    elif clear:
                        headers.append("Set-Cookie", f"{COOKIE}=; Max-Age=0{flags}")
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def renew(conn: HTTPConnection) -> None:
    """Go on under a new session token (and a new row) when this answer is sent, even though the row
    the request came with was ended meanwhile (the user's own password change ends every session)."""
    conn.scope[RENEW] = True
