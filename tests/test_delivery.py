"""Digest delivery against real servers on loopback: an aiosmtpd SMTP server and a small HTTP server
standing in for the WeCom group robot. A failing channel is recorded and retried; a channel that got
the digest is never sent it again; several workers deliver once."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlmodel import select

from bot.config import Config, SmtpConfig, WecomConfig
from bot.context import Context
from bot.models import DigestRun, KeyValue
from bot.outbox.channels import (
    WECOM_MAX_BYTES,
    DeliveryError,
    fit_wecom_markdown,
    retry_after,
    send_email,
    send_wecom,
)
from bot.oversight.digest import digest_job
from tests.test_digest import NOW, add_ticket, local

TZ = ZoneInfo("Asia/Shanghai")
ORG = "示例县人民政府"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """aiosmtpd handler: keeps every message; refuses the addresses in `refuse`."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse: set[str] = set()
        self.logins: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = auth_data.login == b"govbot" and auth_data.password == b"s3cret"
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=box.authenticate,
                            auth_require_tls=False)
    controller.start()
    yield box, port
    controller.stop()


class Robot:
    """The WeCom robot's webhook: records each POST and answers with `answer` (or HTTP `status`)."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.answer: dict = {"errcode": 0, "errmsg": "ok"}
        self.status = 200
        self.lock = threading.Lock()


@pytest.fixture
def robot() -> Iterator[tuple[Robot, str]]:
    state = Robot()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.posts.append({"path": self.path, "body": json.loads(body), "bytes": len(body)})
                payload = json.dumps(state.answer).encode()
                status = state.status
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/webhook/send?key=test-key"
    server.shutdown()
    server.server_close()


def smtp_config(port: int, **over) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, username="govbot", password="s3cret",
                      from_addr="govbot@gov.example.cn", timeout_s=5, **over)


# -- the channels on their own -------------------------------------------------------------------


def test_email_is_multipart_text_and_html(smtp_server: tuple[Mailbox, int]) -> None:
    box, port = smtp_server
    got = send_email(smtp=smtp_config(port), recipients=["a@gov.example.cn", "b@gov.example.cn"],
                     subject="日报 2026-11-18", text="# 日报\n- 逾期 1 件", html="<h1>日报</h1>")
    assert got == ["a@gov.example.cn", "b@gov.example.cn"]
    assert box.logins == ["govbot"]
    (rcpts, raw), = box.messages
    assert rcpts == ["a@gov.example.cn", "b@gov.example.cn"]
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "日报 2026-11-18" and msg["From"] == "govbot@gov.example.cn"
    assert msg.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    assert parts["text/plain"].startswith("# 日报") and "<h1>日报</h1>" in parts["text/html"]


def test_email_errors_are_delivery_errors(smtp_server: tuple[Mailbox, int]) -> None:
    box, port = smtp_server
    box.refuse = {"a@x.cn"}
    with pytest.raises(DeliveryError, match=r"every recipient refused: a@x.cn \(550"):
        send_email(smtp=smtp_config(port), recipients=["a@x.cn"], subject="s", text="t", html="<p>t</p>")
    with pytest.raises(DeliveryError, match=f"127.0.0.1:{free_port()}|ConnectionRefused"):
        send_email(smtp=SmtpConfig(host="127.0.0.1", port=free_port(), timeout_s=2),
                   recipients=["a@x.cn"], subject="s", text="t", html="<p>t</p>")


def test_wecom_posts_markdown_and_checks_errcode(robot: tuple[Robot, str]) -> None:
    state, url = robot
    send_wecom(wecom=WecomConfig(webhook_url=url, timeout_s=5), content="# 日报\n**逾期 1 件**")
    assert state.posts[0]["path"] == "/cgi-bin/webhook/send?key=test-key"
    assert state.posts[0]["body"] == {"msgtype": "markdown", "markdown": {"content": "# 日报\n**逾期 1 件**"}}
    state.answer = {"errcode": 93000, "errmsg": "invalid webhook url"}
    with pytest.raises(DeliveryError, match="errcode 93000: invalid webhook url"):
        send_wecom(wecom=WecomConfig(webhook_url=url, timeout_s=5), content="x")
    state.status = 502
    with pytest.raises(DeliveryError, match="HTTP 502"):
        send_wecom(wecom=WecomConfig(webhook_url=url, timeout_s=5), content="x")


def test_wecom_markdown_is_cut_at_a_line_within_4096_bytes() -> None:
    lines = [f"- #{i} 逾期 {i} 个工作日 · 投诉 · 示例县住建 · 小区门口路灯坏了很久没人修" for i in range(200)]
    md = "# 日报\n" + "\n".join(lines) + "\n"
    link = "http://127.0.0.1:8600/digest?day=2026-11-18&org=%E7%A4%BA"
    out = fit_wecom_markdown(md, link=link)
    assert len(out.encode()) <= WECOM_MAX_BYTES < len(md.encode())
    body, _, tail = out.partition("\n…\n")
    assert tail == f"> 内容过长，已截断。完整清单请在控制台查看：[{link}]({link})"
    assert md.startswith(body + "\n")  # whole lines only
    assert fit_wecom_markdown("# short\n", link=link) == "# short\n"
    one_long = "长" * 3000  # 9000 bytes on one line: cut between characters
    cut = fit_wecom_markdown(one_long, link=link)
    assert len(cut.encode()) <= WECOM_MAX_BYTES and cut.startswith("长" * 100) and "\ufffd" not in cut


def test_retry_pause_grows_to_an_hour() -> None:
    assert [retry_after(n) for n in (1, 2, 3, 5, 9)] == [
        timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=20), timedelta(hours=1), timedelta(hours=1)]


# -- the digest job end to end -------------------------------------------------------------------


@pytest.fixture
def delivering_ctx(make_config: Callable[..., Config], open_ctx: Callable[[Config], Context],
                   smtp_server: tuple[Mailbox, int], robot: tuple[Robot, str]) -> Context:
    _box, port = smtp_server
    _state, url = robot
    cfg = make_config({
        "organisations": [{"name": ORG, "digest_time": "08:30:00", "digest_channels": ["email", "wecom"],
                           "digest_to": ["office@gov.example.cn", "lead@gov.example.cn"]}],
        "delivery": {"smtp": {"host": "127.0.0.1", "port": port, "username": "govbot", "password": "s3cret",
                              "from_addr": "govbot@gov.example.cn", "timeout_s": 5},
                     "wecom": {"webhook_url": url, "timeout_s": 5}},
    })
    ctx = open_ctx(cfg)
    with ctx.session() as s:
        add_ticket(s, account="示例县住建", department="住建局", first_due=local(2026, 11, 13),
                   resolution_due=local(2026, 11, 20))
        add_ticket(s, account="示例县发布", department="人社局", first_due=local(2026, 11, 19),
                   resolution_due=local(2026, 11, 25))
    return ctx


def deliveries(ctx: Context) -> dict:
    with ctx.session() as s:
        (run,) = s.exec(select(DigestRun)).all()
        return run.deliveries


def test_failed_channel_is_recorded_and_retried_alone(
    delivering_ctx: Context, smtp_server: tuple[Mailbox, int], robot: tuple[Robot, str]
) -> None:
    box, _ = smtp_server
    state, _ = robot
    state.answer = {"errcode": 45009, "errmsg": "api freq out of limit"}
    box.refuse = {"lead@gov.example.cn"}

    (first,) = digest_job(delivering_ctx, now=NOW)
    assert first.sent_now == [] and first.failed_now == ["email", "wecom"]
    rec = deliveries(delivering_ctx)
    assert rec["wecom"]["state"] == "failed" and "错误码 45009" in rec["wecom"]["error"]
    assert rec["email"]["state"] == "failed" and "lead@gov.example.cn (550" in rec["email"]["error"]
    assert rec["email"]["delivered_to"] == ["office@gov.example.cn"]
    assert rec["wecom"]["next_attempt_at"] == (NOW + timedelta(minutes=5)).isoformat()
    assert len(box.messages) == 1 and len(state.posts) == 1
    assert state.posts[0]["body"]["markdown"]["content"].startswith(f"# {ORG} 未答复留言日报 2026-11-18")

    # Within the pause nothing is tried again.
    assert digest_job(delivering_ctx, now=NOW + timedelta(minutes=2)) == []
    assert len(state.posts) == 1

    state.answer = {"errcode": 0, "errmsg": "ok"}
    box.refuse = set()
    (second,) = digest_job(delivering_ctx, now=NOW + timedelta(minutes=6))
    assert sorted(second.sent_now) == ["email", "wecom"]
    rec = deliveries(delivering_ctx)
    assert rec["wecom"] == {**rec["wecom"], "state": "sent", "attempts": 2, "error": None}
    assert rec["email"]["delivered_to"] == ["office@gov.example.cn", "lead@gov.example.cn"]
    # The retry went only to the recipient who had not had it.
    assert [rcpts for rcpts, _ in box.messages] == [["office@gov.example.cn"], ["lead@gov.example.cn"]]

    # Everything sent: later ticks, and a re-run of the day, send nothing more.
    assert digest_job(delivering_ctx, now=NOW + timedelta(hours=3)) == []
    assert len(box.messages) == 2 and len(state.posts) == 2


def test_smtp_server_down_then_up(make_config: Callable[..., Config], open_ctx: Callable[[Config], Context],
                                  robot: tuple[Robot, str]) -> None:
    port = free_port()
    _state, url = robot
    ctx = open_ctx(make_config({
        "organisations": [{"name": ORG, "digest_channels": ["email"], "digest_to": ["office@gov.example.cn"]}],
        "delivery": {"smtp": {"host": "127.0.0.1", "port": port, "timeout_s": 2}, "wecom": {"webhook_url": url}},
    }))
    (out,) = digest_job(ctx, now=NOW)
    assert out.failed_now == ["email"]
    assert deliveries(ctx)["email"]["state"] == "failed"
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        (out,) = digest_job(ctx, now=NOW + timedelta(minutes=5))
    finally:
        controller.stop()
    assert out.sent_now == ["email"] and len(box.messages) == 1
    assert deliveries(ctx)["email"]["attempts"] == 2


def test_several_workers_deliver_once(delivering_ctx: Context, smtp_server: tuple[Mailbox, int],
                                      robot: tuple[Robot, str]) -> None:
    box, _ = smtp_server
    state, _ = robot
    workers = [Context(config=delivering_ctx.config, engine=delivering_ctx.engine, worker_id=f"w{i}")
               for i in range(4)]
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(w: Context) -> None:
        try:
            barrier.wait()
            for minute in range(3):
                digest_job(w, now=NOW + timedelta(minutes=minute))
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(box.messages) == 1 and len(state.posts) == 1
    rec = deliveries(delivering_ctx)
    assert rec["email"]["state"] == rec["wecom"]["state"] == "sent"
    with delivering_ctx.session() as s:
        assert s.exec(select(KeyValue).where(KeyValue.key.like("lease:digest:%"))).all() == []
