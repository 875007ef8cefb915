"""No secret and no openid in the log or the output, on each failure path the attack report named: a
delivery with CreateTime 99999999999999999999, a failed comment poll, a PostgreSQL outage, and the
output of `govbot init` and `check-config`."""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from loguru import logger
from sqlmodel import select

from bot import logs
from bot.cli import main
from bot.clock import utcnow
from bot.config import REPO_ROOT
from bot.context import Context
from bot.db import make_engine
from bot.inbound.callback import sign
from bot.inbound.polling import poll_comments
from bot.models import Account, Post, Publication, User
from bot.web.app import create_app
from bot.worker import _guarded, job_specs

DB_PASSWORD = "Pg-Passw0rd-never-logged"
OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxYz1"  # the shape of a WeChat openid
WEB_KEY = "k" * 20 + "-web-secret-key-for-the-test"


def secrets_of(config) -> list[str]:
    out = [config.web.secret_key, DB_PASSWORD, OPENID]
    for a in config.accounts:
        out += [v for v in (a.secret, a.token, a.encoding_aes_key, a.access_token) if v]
    return out


@pytest.fixture
def log() -> io.StringIO:
    buffer = io.StringIO()
    sink = logs.add_sink(buffer, level="DEBUG", backtrace=True)
    yield buffer
    logger.remove(sink)


def assert_clean(text: str, config) -> None:
    leaked = [s for s in secrets_of(config) if s in text]
    assert not leaked, f"secrets in the log: {leaked}\n{text[-3000:]}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_createtime_overflow_delivery(make_config, open_ctx, log) -> None:
    ctx = open_ctx(make_config({"web": {"secret_key": WEB_KEY}}))
    account = next(a for a in ctx.config.accounts if a.message_mode == "plain")
    ts, nonce = str(int(time.time())), "1234"
    xml = (f"<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>"
           "<CreateTime>99999999999999999999</CreateTime><MsgType><![CDATA[text]]></MsgType>"
           "<Content><![CDATA[投诉]]></Content><MsgId>1</MsgId></xml>")
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        r = client.post(f"/wechat/callback/{account.appid}", content=xml.encode(),
                        params={"signature": sign(account.token, ts, nonce), "timestamp": ts, "nonce": nonce,
                                "openid": OPENID}, headers={"Content-Type": "text/xml"})
    assert r.status_code < 600
    assert_clean(log.getvalue() + r.text, ctx.config)


class Failing(BaseHTTPRequestHandler):
    """A platform API that fails every call (the URL, with its secret= or access_token=, is in the error)."""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(500)
        self.end_headers()
        self.wfile.write(b"upstream error")

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args) -> None:
        pass


def test_failed_comment_poll(make_config, open_ctx, log) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        ctx = open_ctx(make_config({"web": {"secret_key": WEB_KEY}}, emulator_url=base))
        now = utcnow()
        with ctx.session() as s:
            author = s.exec(select(User)).first()
            post = Post(title="t", body="b", author_id=author.id, content_hash="h", status="published")
            s.add(post)
            s.flush()
            for acc in s.exec(select(Account)):
                s.add(Publication(post_id=post.id, account_id=acc.id, state="published", due_at=now,
                                  next_attempt_at=now, published_at=now, remote_id="100", remote_msg_data_id="100"))
        report = poll_comments(ctx)
    finally:
        server.shutdown()
    assert report.errors, "the poll should have failed"
    text = log.getvalue()
    assert "comment polling" in text
    assert_clean(text + "\n".join(report.errors), ctx.config)


def test_postgresql_outage(make_config, tmp_path, log) -> None:
    url = f"postgresql+psycopg://govbot:{DB_PASSWORD}@127.0.0.1:{closed_port()}/govbot"
    config = make_config({"database": {"url": url}, "web": {"secret_key": WEB_KEY}})
    logs.register_config_secrets(config)
    ctx = Context(config=config, engine=make_engine(config.database_url))
    try:
        for spec in job_specs(ctx)[:4]:
            _guarded(spec, ctx)()
        with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
            r = client.get("/api/tickets", headers={"Authorization": "Bearer x"})
            assert r.status_code == 503 and r.json()["code"] == "unavailable"
            page = client.get("/login")  # the console still draws its login page
            assert page.status_code == 200
    finally:
        ctx.close()
    text = log.getvalue()
    assert "job" in text and "failed" in text
    assert_clean(text + r.text + page.text, config)


def write_config(tmp_path: Path, url: str) -> Path:
    text = (REPO_ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///data/govbot.db"', f'url = "{url}"')
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_init_and_check_config_output(tmp_path) -> None:
    url = f"postgresql+psycopg://govbot:{DB_PASSWORD}@127.0.0.1:{closed_port()}/govbot"
    config = write_config(tmp_path, url)
    runner = CliRunner()
    out = runner.invoke(main, ["--config", str(config), "check-config"], catch_exceptions=False)
    # An unreachable database is one of the problems check-config lists (exit 1), named without its password.
    assert out.exit_code == 1 and "无法连接数据库 postgresql+psycopg://govbot:***@127.0.0.1" in out.output
    assert DB_PASSWORD not in out.output
    out = runner.invoke(main, ["--config", str(config), "init"], catch_exceptions=False)
    assert out.exit_code == 1 and "无法连接数据库" in out.output
    assert DB_PASSWORD not in out.output
    sqlite = write_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}")
    out = runner.invoke(main, ["--config", str(sqlite), "init"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    key = (tmp_path / "data" / "secret_key").read_text()
    assert key not in out.output


def test_redaction_rules() -> None:
    logs.register_secret("an-app-secret-value")
    line = ("GET https://api.weixin.qq.com/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=abc123 "
            "postgresql://u:pw0rd@h/db access_token=2.00xyz an-app-secret-value from " + OPENID)
    out = logs.redact(line)
    for secret in ("abc123", "pw0rd", "2.00xyz", "an-app-secret-value", OPENID):
        assert secret not in out
    assert logs.openid_tag(OPENID) in out and "appid=wx1" in out


def test_standard_logging_records_are_redacted_too(capfd) -> None:
    import logging
    import logging.config

    from uvicorn.config import LOGGING_CONFIG

    root, uv = logging.getLogger(), logging.getLogger("uvicorn")
    saved = root.handlers[:], root.level, uv.handlers[:], uv.propagate
    logs.register_secret(DB_PASSWORD)
    try:
        logging.config.dictConfig(LOGGING_CONFIG)  # as an earlier uvicorn in this process leaves it
        logs.setup("INFO")
        try:
            raise RuntimeError(f"connect to postgresql://govbot:{DB_PASSWORD}@db/govbot for {OPENID}")
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        err = capfd.readouterr().err
    finally:
        logger.remove()
        logs.add_sink(sys.stderr, level="DEBUG")
        root.handlers[:], root.level, uv.handlers[:], uv.propagate = saved
    assert "uvicorn.error: Exception in ASGI application" in err and "RuntimeError" in err
    assert DB_PASSWORD not in err and OPENID not in err
