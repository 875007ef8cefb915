"""The full inbound path over real HTTP: the emulator pushes signed (and encrypted) messages to our
callback served by uvicorn on loopback -> stored -> classified -> passive auto-reply or a ticket with
the right department and working-day deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from bot.context import Context
from bot.inbound.processing import process_pending
from bot.models import Department, Message, Reply, Ticket
from bot.service import register_emulator_accounts
from bot.web.app import create_app

PLAIN_APPID, AES_APPID = "wxdemo0000000001", "wxdemo0000000002"
BEIJING = ZoneInfo("Asia/Shanghai")


@contextmanager
def serving(app, sock: socket.socket) -> Iterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "govbot web did not start"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def live(make_config, open_ctx, emulator) -> Iterator[tuple[Context, str]]:
    """govbot's web app on a free loopback port, its accounts registered in the emulator with that callback."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # Tests move the emulator's clock (deadlines over holidays): the replay window and the CreateTime
    # plausibility check are opened wide here and tested in test_callback_durability.py.
    wide = 10**9
    ctx = open_ctx(make_config({"web": {"port": port, "public_url": f"http://127.0.0.1:{port}"},
                                "callback": {"timestamp_window_s": wide, "create_time_past_s": wide,
                                             "create_time_future_s": wide}}, emulator_url=emulator))
    register_emulator_accounts(ctx, emulator_url=emulator)
    with serving(create_app(ctx), sock):
        yield ctx, emulator
    sock.close()


def set_emulator_clock(emulator: str, when: datetime) -> None:
    now = httpx.get(f"{emulator}/_emulator/health").json()["now"]
    httpx.post(f"{emulator}/_emulator/clock", json={"advance_s": when.timestamp() - now}).raise_for_status()


def push(emulator: str, appid: str, msg_type: str = "text", **fields) -> dict:
    r = httpx.post(f"{emulator}/_emulator/wechat/push", json={"appid": appid, "msg_type": msg_type, **fields},
                   timeout=30)
    r.raise_for_status()
    return r.json()


def faq_answer(ctx: Context, rule_id: str) -> str:
    return next(r.answer for r in ctx.rules.current_faq().rules if r.id == rule_id)


def only(ctx: Context, model, *where):
    process_pending(ctx)  # the worker's part, after the callback answered
    with ctx.session() as s:
        return s.execute(select(model).where(*where)).scalars().one()


def count(ctx: Context, model) -> int:
    process_pending(ctx)
    with ctx.session() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


@pytest.mark.parametrize("appid", [PLAIN_APPID, AES_APPID])
def test_faq_question_is_answered_in_the_passive_reply(live, appid):
    ctx, emulator = live
    result = push(emulator, appid, content="请问社保卡丢了怎么补办？", openid="oE2eCitizen00000000000000001")
    assert result["ok"] and result["attempts"] == 1, result
    assert result["reply"]["MsgType"] == "text"
    assert result["reply"]["Content"] == faq_answer(ctx, "faq.social_security_card")
    message = only(ctx, Message)
    assert message.dedupe_key == f"msg:{result['msg_id']}" and message.sender_id == "oE2eCitizen00000000000000001"
    assert message.intent == "question" and message.topic == "劳动和社会保障" and message.replied_at is not None
    reply = only(ctx, Reply)
    assert reply.faq_rule == "faq.social_security_card" and reply.state == "sent" and reply.text == result["reply"]["Content"]
    assert count(ctx, Ticket) == 0


def test_complaint_becomes_a_ticket_with_department_and_working_day_deadlines(live):
    ctx, emulator = live
    # Wednesday 30 September 2026, 10:00 in Beijing: National Day (1-7 October) follows; 10 October is a 调休 Saturday.
    set_emulator_clock(emulator, datetime(2026, 9, 30, 10, 0, tzinfo=BEIJING))
    result = push(emulator, PLAIN_APPID, content="我们小区门口的路灯坏了一个多月了，一直没人管，晚上很不安全，请尽快维修！")
    assert result["ok"] and result["reply"] is None  # "success": a person answers
    message = only(ctx, Message)
    assert message.intent == "complaint" and message.topic == "城乡建设"
    assert message.received_at == datetime(2026, 9, 30, 2, 0, tzinfo=UTC)
    ticket = only(ctx, Ticket)
    with ctx.session() as s:
        assert s.get(Department, ticket.department_id).name == "住建局"
    assert ticket.intent == "complaint" and ticket.priority == 1
    # 1 working day: Thursday 8 October; 5 working days: 8, 9, 10 (调休), 12, 13 October - ends of day in Beijing.
    assert ticket.first_response_due == datetime(2026, 10, 9, 0, 0, tzinfo=BEIJING)
    assert ticket.resolution_due == datetime(2026, 10, 14, 0, 0, tzinfo=BEIJING)


@pytest.mark.parametrize(("msg_type", "fields", "intent"), [
    ("image", {}, "other"),
    ("voice", {"recognition": "我家楼下的垃圾好几天没人清运了，臭气熏天"}, "complaint"),
    ("location", {"label": "示例县人民路1号"}, "other"),
    ("link", {"title": "社保卡补办", "description": "请问社保卡丢了怎么补办？", "url": "https://example.cn"}, "question"),
    ("click", {"event_key": "MENU_1"}, None),
    ("unsubscribe", {}, None),
])
def test_every_type_over_the_wire(live, msg_type, fields, intent):
    ctx, emulator = live
    result = push(emulator, AES_APPID, msg_type, **fields)
    assert result["ok"], result
    message = only(ctx, Message)
    assert message.intent == intent


def test_subscribe_gets_the_welcome(live):
    ctx, emulator = live
    result = push(emulator, PLAIN_APPID, "subscribe")
    assert result["ok"] and result["reply"]["Content"] == ctx.config.autoreply.welcome


def test_retry_after_a_slow_first_answer_is_stored_once_and_answered_identically(live, monkeypatch):
    """WeChat gives up on the first delivery and retries: the retry waits for the first, then gets its reply."""
    ctx, emulator = live
    clf = ctx.rules.current()
    real: Callable = clf.classify
    slow_once = threading.Event()

    def slow(text, subject=None, **kw):
        if not slow_once.is_set():
            slow_once.set()
            time.sleep(1.3)  # longer than WeChat's patience below; the retry then waits about 0.3 s
        return real(text, subject, **kw)

    monkeypatch.setattr(clf, "classify", slow)
    result = push(emulator, PLAIN_APPID, content="请问社保卡丢了怎么补办？", timeout_s=1.0, retries=3)
    assert result["ok"] and result["attempts"] == 2, result
    assert result["reply"]["Content"] == faq_answer(ctx, "faq.social_security_card")
    message = only(ctx, Message)
    assert message.reply_xml == result["reply_xml"]
    assert count(ctx, Reply) == 1
