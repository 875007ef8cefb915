"""What the web layer needs to be safe behind a browser: the secret key, HTTPS and client address
detection (directly or behind a trusted proxy), and the security headers of every answer."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.config import Config
from bot.errors import ConfigError

SECRET_KEY_FILE = "secret_key"

# Scripts and styles only from this origin; inline styles allowed because rich-text bodies carry them;
# blob: images are the cover the officer just chose, shown in the preview before it is uploaded.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors {ancestors}")
# The API documentation pages load Swagger UI / ReDoc from their CDN with an inline bootstrap script.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; font-src 'self' https:; "
            "worker-src 'self' blob:; frame-ancestors 'none'")
DOCS_PATHS = ("/api/docs", "/redoc", "/docs/oauth2-redirect")
# Pages that may be shown in a frame of this origin (the digest embeds its mail-exact rendering).
SAME_ORIGIN_FRAMES = ("/digest",)


def secret_key_path(config: Config) -> Path:
    return config.path(config.data_dir) / SECRET_KEY_FILE


def ensure_secret_key(config: Config) -> str:
    """The configured key, or the one in the data directory (written with a fresh random key if absent)."""
    if config.web.secret_key:
        return config.web.secret_key
    path = secret_key_path(config)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 32:
        raise ConfigError(str(path), "web.secret_key", "the generated key file is damaged; delete it to make a new one")
    return key


def is_https(conn: HTTPConnection, config: Config) -> bool:
    if config.web.public_url.startswith("https://"):
        return True
    if config.web.trust_proxy_headers:
        return conn.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() == "https"
    return conn.url.scheme == "https"


def client_address(conn: HTTPConnection, config: Config) -> str:
    if config.web.trust_proxy_headers:
        forwarded = conn.headers.get("x-forwarded-for", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:100]
    return conn.client.host if conn.client else ""


class SecurityHeaders:
    """CSP, X-Frame-Options, nosniff, Referrer-Policy and (unless the route says otherwise) no-store on
    every answer; HSTS when served over HTTPS."""

    def __init__(self, app: ASGIApp, config: Config):
        self.app, self.config = app, config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        same_origin = path.startswith(SAME_ORIGIN_FRAMES)
        https = is_https(HTTPConnection(scope), self.config)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if path in DOCS_PATHS:
                    headers["Content-Security-Policy"] = DOCS_CSP
                elif "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = CSP.format(ancestors="'self'" if same_origin else "'none'")
                headers["X-Frame-Options"] = "SAMEORIGIN" if same_origin else "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                if "cache-control" not in headers:  # pages with citizens' messages stay out of shared caches
                    headers["Cache-Control"] = "no-store"
                if https:
                    headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
            await send(message)

        await self.app(scope, receive, send_with_headers)
