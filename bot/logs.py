"""Logging that never writes a secret or a citizen's openid (日志脱敏).

Every sink govbot adds goes through `add_sink`: tracebacks without local variables (`diagnose=False`:
loguru would otherwise print the AES key, tokens and passwords held in local variables), and the
whole formatted line, traceback included, passed through `redact`:
- the configured secrets (AppSecrets, callback tokens, EncodingAESKeys, Weibo tokens, the web secret
  key, SMTP password, WeCom webhook key, the database password), registered from the config by
  Context.open;
- secrets in URLs: passwords (scheme://user:password@host) and query values such as secret=, token=;
- WeChat openids, replaced by a short hash so that lines about one citizen can still be matched up.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from loguru import logger

MASK = "***"
# Shorter strings are too likely to be ordinary words to mask everywhere.
MIN_SECRET_LENGTH = 6
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<at>@)")
_QUERY_SECRET = re.compile(
    r"(?P<key>\b(?:secret|appsecret|access_token|token|key|password|passwd|pwd|encoding_aes_key|signature)"
    r"[\"']?\s*[=:]\s*[\"']?)(?P<value>[^&\s\"',;)}\]]+)", re.I)
_OPENID = re.compile(r"(?<![A-Za-z0-9_-])o[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-])")

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def register_config_secrets(config: Any) -> None:
    """Every secret the config holds, so that no log line can carry one."""
    from sqlalchemy.engine import make_url

    register_secret(config.web.secret_key)
    for account in config.accounts:
        for name in ("secret", "token", "encoding_aes_key", "access_token"):
            register_secret(getattr(account, name, ""))
    register_secret(config.delivery.smtp.password)
    webhook = config.delivery.wecom.webhook_url
    register_secret(webhook.partition("key=")[2] if "key=" in webhook else "")
    for user in config.users:
        register_secret(user.password)
    try:
        register_secret(make_url(config.database_url).password)
    except Exception:  # an unparsable URL has no password to hide; the engine refuses it elsewhere
        pass


def openid_tag(openid: str) -> str:
    return "openid#" + hashlib.sha256(openid.encode()).hexdigest()[:10]


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["at"], text)
    text = _QUERY_SECRET.sub(lambda m: m["key"] + MASK, text)
    return _OPENID.sub(lambda m: openid_tag(m.group(0)), text)


def safe_url(url: str) -> str:
    """A database URL as it may be shown: the password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["at"], url)


def _redacting(stream: TextIO) -> Callable[[Any], None]:
    def write(message: Any) -> None:
        stream.write(redact(str(message)))
        stream.flush()

    return write


def add_sink(sink: TextIO | Callable[[Any], None] = sys.stderr, **options: Any) -> int:
    """Add a log sink the only safe way: no local variables in tracebacks, every line redacted."""
    target = _redacting(sink) if hasattr(sink, "write") else (lambda m, f=sink: f(redact(str(m))))
    return logger.add(target, diagnose=False, **options)


class _ToLoguru(logging.Handler):
    """Records of the standard `logging` module (uvicorn, SQLAlchemy, APScheduler) into the redacted sinks."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info).log(level, "{}: {}", record.name, record.getMessage())


def setup(level: str = "INFO") -> None:
    """The process's logging: one redacted stderr sink, which the standard `logging` records join too
    (run uvicorn with log_config=None so that it keeps no stream of its own)."""
    logger.remove()
    add_sink(sys.stderr, level=level)
    logging.basicConfig(handlers=[_ToLoguru()], level=logging.getLevelName(level), force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # streams of their own, if configured before
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
