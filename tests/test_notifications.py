"""Ticket warnings and escalations delivered: a real SMTP server (aiosmtpd) and a WeCom robot stand-in on
loopback. Each notification is sent once (several checks, several workers); a failed one is retried
after a pause and given up after scheduler.max_attempts; with no channel configured nothing is queued."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from loguru import logger
from sqlmodel import select

from bot.config import Config
from bot.context import Context
from bot.models import Department, Notification, Ticket, User
from bot.outbox.sending import SendReport, send_due
from bot.tickets.notifications import TicketFacts, compose, deadline_label
from bot.tickets.service import check_deadlines, open_ticket
from tests.test_delivery import Mailbox, Robot, free_port, robot, smtp_server  # noqa: F401  (fixtures)
from tests.test_tickets import message

SHANGHAI = ZoneInfo("Asia/Shanghai")
TZ = "Asia/Shanghai"


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)


def delivery(smtp_port: int | None = None, webhook: str = "", *, login: bool = True, **scheduler) -> dict:
    over: dict = {"delivery": {"wecom": {"webhook_url": webhook, "timeout_s": 5}}}
    if smtp_port is not None:
        over["delivery"]["smtp"] = {"host": "127.0.0.1", "port": smtp_port, "from_addr": "govbot@gov.example.cn",
                                    "timeout_s": 3, **({"username": "govbot", "password": "s3cret"} if login else {})}
    if scheduler:
        over["scheduler"] = scheduler
    return over


def setup_people(ctx: Context) -> None:
    """住建局: zhujian (responder and lead) and zj2 with addresses, zj3 without one."""
    with ctx.session() as s:
        dept = s.exec(select(Department).where(Department.name == "住建局")).one()
        lead = s.exec(select(User).where(User.username == "zhujian")).one()
        lead.email = "zhujian@gov.example.cn"
        s.add(lead)
        s.add(User(username="zj2", display_name="住建局 钱", roles="responder", department_id=dept.id,
                   email="zj2@gov.example.cn"))
        s.add(User(username="zj3", display_name="住建局 孙", roles="responder", department_id=dept.id))


def new_ticket(ctx: Context, *, key: str = "a", answered_first: bool = False, dept: str = "住建局") -> Ticket:
    with ctx.session() as s:
        t = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="complaint", topic="城乡建设", dept=dept, received_at=local(2026, 3, 2, 9, 0), key=key))
        if answered_first:
            t.first_response_at = local(2026, 3, 2, 10, 0)
            s.add(t)
        return t


def rows(ctx: Context) -> list[Notification]:
    with ctx.session() as s:
        return list(s.exec(select(Notification).order_by(Notification.id)))


def mails(box: Mailbox) -> list[tuple[list[str], object]]:
    return [(rcpts, message_from_bytes(raw, policy=policy.default)) for rcpts, raw in box.messages]


def text_of(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


# -- texts (pure) --------------------------------------------------------------------------------


def test_deadline_reads_as_its_last_day() -> None:
    assert deadline_label(local(2026, 11, 24), TZ) == "11月23日（周一）当日内"
    assert deadline_label(local(2026, 3, 10), TZ) == "3月9日（周一）当日内"
    assert deadline_label(local(2026, 3, 10, 17, 30), TZ) == "3月10日（周二）17:30 前"


def test_texts_name_ticket_department_deadline_and_link() -> None:
    facts = TicketFacts(ticket_id=7, department="住建局", account="示例县发布", received="3月2日 09:00",
                        excerpt="路灯坏了 [点我](http://x) **急**", deadline="first_response", due="3月3日（周二）当日内",
                        resolution_due="3月9日（周一）当日内", link="http://127.0.0.1:8600/tickets/7")
    warn = compose("warning", facts, ["住建局 赵（zhujian）"])
    assert warn.subject == "【工单即将到期】#7 住建局：首次答复期限 3月3日（周二）当日内"
    assert "首次答复期限：3月3日（周二）当日内" in warn.body and "办结期限：3月9日（周一）当日内" in warn.body
    assert "提醒：住建局 赵（zhujian）" in warn.body and "http://127.0.0.1:8600/tickets/7" in warn.body
    # Citizen text cannot become links or emphasis in the officers' group.
    assert "［点我］" in warn.markdown and "＊＊急＊＊" in warn.markdown
    esc = compose("escalation", facts, [])
    assert esc.subject == "【工单已逾期】#7 住建局：已超过首次答复期限（3月3日（周二）当日内）"
    assert "督办：（本部门未设负责人）" in esc.body and "[在控制台处理](http://127.0.0.1:8600/tickets/7)" in esc.markdown


# -- end to end ----------------------------------------------------------------------------------


@pytest.fixture
def nctx(make_config: Callable[..., Config], open_ctx: Callable[[Config], Context],
         smtp_server: tuple[Mailbox, int], robot: tuple[Robot, str]) -> Context:  # noqa: F811
    ctx = open_ctx(make_config(delivery(smtp_server[1], robot[1])))
    setup_people(ctx)
    return ctx


def test_warning_then_escalation_are_delivered_once(
    nctx: Context, smtp_server: tuple[Mailbox, int], robot: tuple[Robot, str]  # noqa: F811
) -> None:
    box, _ = smtp_server
    state, _ = robot
    t = new_ticket(nctx, answered_first=True)  # answered by FAQ: working towards the resolution deadline
    warn_now = t.warn_at + timedelta(seconds=1)
    assert check_deadlines(nctx, now=warn_now).warned == [t.id]
    assert check_deadlines(nctx, now=warn_now + timedelta(minutes=1)).warned == []
    assert [(n.kind, n.channel, n.recipient, n.address) for n in rows(nctx)] == [
        ("warning", "email", "zhujian", "zhujian@gov.example.cn"),
        ("warning", "email", "zj2", "zj2@gov.example.cn"),  # zj3 has no address
        ("warning", "wecom", "", ""),
    ]
    assert send_due(nctx, now=warn_now) == SendReport(attempted=3, sent=3, failed=0, retrying=0)
    assert send_due(nctx, now=warn_now + timedelta(minutes=1)).attempted == 0
    got = mails(box)
    assert sorted(r for rcpts, _ in got for r in rcpts) == ["zhujian@gov.example.cn", "zj2@gov.example.cn"]
    msg = got[0][1]
    assert msg["Subject"] == f"【工单即将到期】#{t.id} 住建局：办结期限 3月9日（周一）当日内"
    body = text_of(msg)
    assert "小区门口的路灯坏了一个月没人管" in body and "示例县发布，3月2日 09:00 收到" in body
    assert f"http://127.0.0.1:8600/tickets/{t.id}" in body
    assert "住建局 赵（zhujian）、住建局 钱（zj2）、住建局 孙（zj3）" in body  # everyone told is named
    (post,) = state.posts
    assert post["body"]["msgtype"] == "markdown"
    assert post["body"]["markdown"]["content"].startswith(f"**工单即将到期** #{t.id} · 住建局")

    missed_now = t.resolution_due + timedelta(minutes=5)
    for _ in range(2):
        check_deadlines(nctx, now=missed_now)
    escalations = [n for n in rows(nctx) if n.kind == "escalation"]
    assert [(n.channel, n.recipient) for n in escalations] == [("email", "zhujian"), ("wecom", "")]
    assert send_due(nctx, now=missed_now).sent == 2
    assert send_due(nctx, now=missed_now + timedelta(hours=1)).attempted == 0
    rcpts, msg = mails(box)[-1]
    assert rcpts == ["zhujian@gov.example.cn"]
    assert msg["Subject"] == f"【工单已逾期】#{t.id} 住建局：已超过办结期限（3月9日（周一）当日内）"
    assert len(box.messages) == 3 and len(state.posts) == 2
    assert "工单已逾期，请督办" in state.posts[1]["body"]["markdown"]["content"]
    assert all(n.state == "sent" and n.attempts == 1 and n.sent_at == (warn_now if n.kind == "warning" else missed_now)
               for n in rows(nctx))


def test_missed_first_response_escalates_to_the_lead(
    nctx: Context, smtp_server: tuple[Mailbox, int], robot: tuple[Robot, str]  # noqa: F811
) -> None:
    box, _ = smtp_server
    state, _ = robot
    t = new_ticket(nctx)
    now = t.first_response_due + timedelta(minutes=1)
    assert check_deadlines(nctx, now=now).escalated == [t.id]
    send_due(nctx, now=now)
    ((rcpts, msg),) = mails(box)
    assert rcpts == ["zhujian@gov.example.cn"]
    assert msg["Subject"] == f"【工单已逾期】#{t.id} 住建局：已超过首次答复期限（3月3日（周二）当日内）"
    assert "督办：住建局 赵（zhujian）" in text_of(msg)
    assert "督办：住建局 赵（zhujian）" in state.posts[0]["body"]["markdown"]["content"]
    # The warning that follows is about the resolution deadline, the first response being already late.
    check_deadlines(nctx, now=t.warn_at + timedelta(seconds=1))
    send_due(nctx, now=t.warn_at + timedelta(seconds=1))
    assert mails(box)[-1][1]["Subject"] == f"【工单即将到期】#{t.id} 住建局：办结期限 3月9日（周一）当日内"


def test_two_workers_send_each_notification_once(
    make_config: Callable[..., Config], open_ctx: Callable[[Config], Context],
    smtp_server: tuple[Mailbox, int], robot: tuple[Robot, str],  # noqa: F811
) -> None:
    box, port = smtp_server
    state, url = robot
    ctx = open_ctx(make_config(delivery(port, url, batch_size=3)))
    setup_people(ctx)
    ids = [new_ticket(ctx, key=f"k{i}").id for i in range(4)]
    now = local(2026, 3, 20)
    result = check_deadlines(ctx, now=now)
    assert sorted(result.warned) == sorted(result.escalated) == ids
    # Per ticket: warning to zhujian and zj2 + WeCom, escalation to zhujian + WeCom.
    assert len(rows(ctx)) == 4 * 5
    workers = [Context(config=ctx.config, engine=ctx.engine, worker_id=f"w{i}") for i in range(2)]
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(w: Context) -> None:
        try:
            barrier.wait()
            for _ in range(12):
                send_due(w, now=now)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert all(n.state == "sent" and n.attempts == 1 for n in rows(ctx))
    sent = sorted((rcpts[0], msg["Subject"]) for rcpts, msg in mails(box))
    assert len(sent) == len(set(sent)) == 4 * 3
    assert len(state.posts) == 4 * 2
    assert len({p["body"]["markdown"]["content"] for p in state.posts}) == 8


def test_smtp_down_is_retried_after_a_pause_then_sent(
    make_config: Callable[..., Config], open_ctx: Callable[[Config], Context]
) -> None:
    port = free_port()
    ctx = open_ctx(make_config(delivery(port, login=False)))  # e-mail only, nothing listening yet
    setup_people(ctx)
    t = new_ticket(ctx)
    now = t.first_response_due + timedelta(minutes=1)
    check_deadlines(ctx, now=now)
    assert send_due(ctx, now=now) == SendReport(attempted=1, sent=0, failed=0, retrying=1)
    (row,) = rows(ctx)
    assert (row.state, row.attempts, row.lease_owner) == ("pending", 1, None)
    assert f"127.0.0.1:{port}" in row.last_error
    assert row.next_attempt_at == now + timedelta(minutes=5)
    assert send_due(ctx, now=now + timedelta(minutes=4)).attempted == 0

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert send_due(ctx, now=now + timedelta(minutes=5)).sent == 1
    finally:
        controller.stop()
    (row,) = rows(ctx)
    assert (row.state, row.attempts, row.last_error) == ("sent", 2, None)
    assert box.messages[0][0] == ["zhujian@gov.example.cn"]


def test_gives_up_after_max_attempts_and_keeps_the_row(
    make_config: Callable[..., Config], open_ctx: Callable[[Config], Context], robot: tuple[Robot, str]  # noqa: F811
) -> None:
    state, url = robot
    state.answer = {"errcode": 93000, "errmsg": "invalid webhook url"}
    ctx = open_ctx(make_config(delivery(None, url, max_attempts=3)))  # WeCom only
    t = new_ticket(ctx, dept="教育局")  # no lead
    now = t.first_response_due + timedelta(minutes=1)
    check_deadlines(ctx, now=now)
    (row,) = rows(ctx)
    assert (row.kind, row.channel) == ("escalation", "wecom") and "（本部门未设负责人）" in row.body
    at = now
    for pause in (5, 10):
        assert send_due(ctx, now=at).retrying == 1
        at += timedelta(minutes=pause)
    assert send_due(ctx, now=at).failed == 1
    assert send_due(ctx, now=at + timedelta(days=1)).attempted == 0
    (row,) = rows(ctx)
    assert (row.state, row.attempts) == ("failed", 3)
    assert "错误码 93000：invalid webhook url" in row.last_error
    assert len(state.posts) == 3


def test_no_channel_configured_queues_nothing_and_says_so_once(
    make_config: Callable[..., Config], open_ctx: Callable[[Config], Context]
) -> None:
    ctx = open_ctx(make_config())  # the example: no SMTP host, no webhook
    setup_people(ctx)
    said: list[str] = []
    sink = logger.add(lambda m: said.append(m.record["message"]), level="WARNING")
    try:
        new_ticket(ctx, key="a")
        new_ticket(ctx, key="b")
        result = check_deadlines(ctx, now=local(2026, 3, 20))
    finally:
        logger.remove(sink)
    assert len(result.warned) == len(result.escalated) == 2
    assert rows(ctx) == []
    assert len([m for m in said if "no delivery channel" in m]) == 1
    assert send_due(ctx, now=local(2026, 3, 20)).attempted == 0


def test_dashboard_lists_my_notifications(
    nctx: Context, smtp_server: tuple[Mailbox, int], robot: tuple[Robot, str]  # noqa: F811
) -> None:
    from fastapi.testclient import TestClient

    from bot.web.app import create_app
    from tests.test_console import login

    t = new_ticket(nctx)
    now = t.first_response_due + timedelta(minutes=1)
    check_deadlines(nctx, now=now)
    send_due(nctx, now=now)
    page = login(TestClient(create_app(nctx)), "zhujian").get("/").text
    assert "我的提醒" in page and "超期督办" in page and "已发送" in page
    assert f'<a href="/tickets/{t.id}">【工单已逾期】#{t.id} 住建局' in page
    # Not addressed to gongkai (政务公开办): no list.
    assert "我的提醒" not in login(TestClient(create_app(nctx)), "gongkai").get("/").text


def test_failed_notification_is_queued_again_from_the_cli(
    make_config: Callable[..., Config], open_ctx: Callable[[Config], Context], robot: tuple[Robot, str]  # noqa: F811
) -> None:
    from click.testing import CliRunner

    from bot.cli import CliState, main

    state, url = robot
    state.answer = {"errcode": 93000, "errmsg": "invalid webhook url"}
    ctx = open_ctx(make_config(delivery(None, url, max_attempts=1)))
    t = new_ticket(ctx, dept="教育局")
    now = t.first_response_due + timedelta(minutes=1)
    check_deadlines(ctx, now=now)
    assert send_due(ctx, now=now).failed == 1

    cli = CliState(None)
    cli._config, cli._ctx = ctx.config, ctx
    listed = CliRunner().invoke(main, ["tickets", "notifications", "--state", "failed"], obj=cli)
    assert listed.exit_code == 0 and "escalation" in listed.output and "93000" in listed.output
    retried = CliRunner().invoke(main, ["tickets", "retry-notifications"], obj=cli)
    assert retried.exit_code == 0 and "1 notification(s) queued again" in retried.output
    (row,) = rows(ctx)
    assert (row.state, row.attempts) == ("pending", 0)
    state.answer = {"errcode": 0, "errmsg": "ok"}
    assert send_due(ctx).sent == 1
