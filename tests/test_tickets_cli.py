"""`govbot tickets ...` and `govbot templates ...` through the real entry point, on a config file in a temp dir."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlmodel import select

from bot.cli import main
from bot.clock import utcnow
from bot.config import REPO_ROOT
from bot.emulator.testing import EmulatorAdmin
from bot.models import Account, AuditEvent, Department, Message, Reply, ReplyTemplate, Ticket
from bot.tickets.service import open_ticket


def write_config(tmp_path: Path, emulator_url: str | None = None) -> Path:
    """config.example.toml with the database and emulator of this test."""
    text = (REPO_ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///data/govbot.db"', f'url = "sqlite:///{tmp_path / "govbot.db"}"')
    text = text.replace('state_file = "data/emulator.json"', f'state_file = "{tmp_path / "emulator.json"}"')
    if emulator_url:
        wechat, weibo = f'api_base = "{emulator_url}/wechat/cgi-bin/"', f'api_base = "{emulator_url}/weibo/2/"'
        text = text.replace('api_base = ""', wechat, 1).replace('api_base = ""', weibo, 1)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def govbot(config: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def new_ticket(ctx, *, kind: str, account_name: str, received_ago: timedelta, key: str = "k1",
               remote_ref: str | None = None, raw: str = "", sender: str = "o-citizen") -> int:
    with ctx.session() as s:
        dept = s.exec(select(Department).where(Department.name == "政务公开办")).one()
        acc = s.exec(select(Account).where(Account.name == account_name)).one()
        msg = Message(account_id=acc.id, kind=kind, dedupe_key=key, sender_id=sender, text="路灯坏了一个月了，没人管",
                      received_at=utcnow() - received_ago, intent="complaint", needs_answer=True,
                      department_id=dept.id, remote_ref=remote_ref, raw=raw)
        s.add(msg)
        s.flush()
        return open_ticket(session=s, ctx=ctx, message=msg).id


@pytest.fixture
def setup(tmp_path, make_config, open_ctx):
    ctx = open_ctx(make_config())
    return ctx, write_config(tmp_path)


def test_list_show_and_the_closed_channel(setup):
    ctx, config = setup
    ticket_id = new_ticket(ctx, kind="wechat_message", account_name="示例县发布", received_ago=timedelta(days=10))
    listed = govbot(config, "tickets", "list")
    assert listed.exit_code == 0
    assert re.search(rf"^ *{ticket_id}  ", listed.output, re.M) and "OVERDUE" in listed.output and "路灯坏了" in listed.output
    assert "no tickets" in govbot(config, "tickets", "list", "--department", "住建局").output
    assert "OVERDUE" in govbot(config, "tickets", "list", "--overdue", "--department", "政务公开办").output
    bad = govbot(config, "tickets", "list", "--department", "nope")
    assert bad.exit_code == 1 and "部门“nope”不存在" in bad.output

    shown = govbot(config, "tickets", "show", str(ticket_id))
    assert shown.exit_code == 0
    assert "channel wechat_custom: CLOSED" in shown.output and "48 小时时限" in shown.output
    assert "still possible:" in shown.output and "ticket.opened" in shown.output

    answered = govbot(config, "tickets", "answer", str(ticket_id), "--as", "gongkai", "--text", "您好，已修复。")
    assert answered.exit_code == 1 and "未能发送" in answered.output and "48 小时时限" in answered.output

    offline = govbot(config, "tickets", "record-offline", str(ticket_id), "--as", "gongkai", "--how", "phone",
                     "--text", "电话告知已修复")
    assert offline.exit_code == 0, offline.output
    with ctx.session() as s:
        assert s.get(Ticket, ticket_id).state == "answered"
    assert "answered" in govbot(config, "tickets", "list", "--state", "answered").output


def test_acknowledge_note_reassign_close(setup):
    ctx, config = setup
    ticket_id = new_ticket(ctx, kind="wechat_message", account_name="示例县发布", received_ago=timedelta(hours=1))
    assert govbot(config, "tickets", "acknowledge", str(ticket_id), "--as", "gongkai").exit_code == 0
    noted = govbot(config, "tickets", "note", str(ticket_id), "已联系", "物业", "--as", "gongkai")
    assert noted.exit_code == 0
    denied = govbot(config, "tickets", "note", str(ticket_id), "x", "--as", "zhujian")
    assert denied.exit_code == 1 and "不能处理工单" in denied.output
    unknown = govbot(config, "tickets", "note", str(ticket_id), "x", "--as", "nobody")
    assert unknown.exit_code == 1 and "没有用户名为“nobody”的用户" in unknown.output
    moved = govbot(config, "tickets", "reassign", str(ticket_id), "--to", "住建局", "--reason", "路灯归住建", "--as", "gongkai")
    assert moved.exit_code == 0
    closed = govbot(config, "tickets", "close", str(ticket_id), "--reason", "duplicate", "--note", "同12号",
                    "--as", "zhujian")
    assert closed.exit_code == 0
    bad = govbot(config, "tickets", "close", str(ticket_id), "--reason", "boring", "--as", "zhujian")
    assert bad.exit_code == 2
    shown = govbot(config, "tickets", "show", str(ticket_id)).output
    assert "closed (duplicate)" in shown and "已联系 物业" in shown and "转办 政务公开办 → 住建局" in shown
    with ctx.session() as s:
        actions = [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.subject_type == "ticket")
                                            .order_by(AuditEvent.id))]
    assert actions == ["ticket.opened", "ticket.acknowledged", "ticket.note_added", "ticket.reassigned",
                       "ticket.note_added", "ticket.closed", "ticket.note_added"]


def test_check_deadlines_command(setup):
    ctx, config = setup
    new_ticket(ctx, kind="wechat_message", account_name="示例县发布", received_ago=timedelta(days=20))
    assert govbot(config, "tickets", "check-deadlines").stdout.strip() == "1 warned, 1 escalated"
    assert govbot(config, "tickets", "check-deadlines").stdout.strip() == "0 warned, 0 escalated"


def test_templates_and_answering_with_one(tmp_path, make_config, open_ctx, emulator):
    from bot.service import register_emulator_accounts

    ctx = open_ctx(make_config(emulator_url=emulator))
    register_emulator_accounts(ctx, emulator_url=emulator)
    config = write_config(tmp_path, emulator)
    added = govbot(config, "templates", "add", "--department", "政务公开办", "--name", "已转办", "--text", "您好，已转相关部门。",
                   "--as", "gongkai")
    assert added.exit_code == 0, added.output
    assert "已转办" in govbot(config, "templates", "list", "--department", "政务公开办").output
    with ctx.session() as s:
        template_id = s.exec(select(ReplyTemplate.id)).one()
    assert govbot(config, "templates", "edit", str(template_id), "--text", "您好，已转城管部门处理。",
                  "--as", "gongkai").exit_code == 0

    status = httpx.post(f"{emulator}/weibo/2/statuses/share.json",
                        data={"access_token": "demo-weibo-token-0001", "status": "通知 http://gov.example.cn/1", "rip": "203.0.113.7"}).json()
    with EmulatorAdmin(emulator) as admin:
        c = admin.weibo_comment(status_id=status["id"], uid=6000000009, screen_name="小李", text="垃圾没人收")
        admin.fault("weibo", "comments/reply.json", "reject")
    ticket_id = new_ticket(ctx, kind="weibo_comment", account_name="示例县发布微博", received_ago=timedelta(hours=1),
                           key=str(c["id"]), remote_ref=str(status["id"]),
                           raw=json.dumps({"reply_target": {"cid": str(c["id"]), "id": str(status["id"])}}))
    missing = govbot(config, "tickets", "answer", str(ticket_id), "--as", "gongkai", "--template", "没有")
    assert missing.exit_code == 1 and "没有名为“没有”的答复模板" in missing.output
    failed = govbot(config, "tickets", "answer", str(ticket_id), "--as", "gongkai", "--template", "已转办")
    assert failed.exit_code == 1 and "未能发送" in failed.output
    with ctx.session() as s:
        reply = s.exec(select(Reply)).one()
        assert reply.text == "您好，已转城管部门处理。" and reply.state == "failed"
    retried = govbot(config, "tickets", "retry", str(reply.id), "--as", "gongkai")
    assert retried.exit_code == 0 and f"reply #{reply.id} sent via weibo_comment" in retried.output
    assert govbot(config, "templates", "delete", str(template_id), "--as", "gongkai").exit_code == 0
    assert "has no reply templates" in govbot(config, "templates", "list", "--department", "政务公开办").output
