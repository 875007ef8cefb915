"""The digest through its edges: GET /api/digest and `govbot digest` (real entry point)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import select

from bot.clock import to_local, utcnow
from bot.config import load_config
from bot.context import Context
from bot.models import DigestRun
from bot.web.app import create_app
from tests.test_digest import add_ticket
from tests.test_reports_api import token
from tests.test_tickets_cli import govbot, write_config


def overdue_ticket(ctx: Context) -> int:
    now = utcnow()
    with ctx.session() as s:
        return add_ticket(s, account="示例县住建", department="住建局", text="楼道灯坏了三个月",
                          created=now - timedelta(days=6), first_due=now - timedelta(days=4),
                          resolution_due=now + timedelta(days=1))


def test_api_digest(ctx: Context) -> None:
    tid = overdue_ticket(ctx)
    client = TestClient(create_app(ctx))
    auth = token(ctx)
    today = to_local(utcnow(), ctx.tz).date().isoformat()
    assert client.get("/api/digest").status_code == 401
    body = client.get(f"/api/digest?date={today}", headers=auth).json()
    assert body["organisation"] == "示例县人民政府" and body["day"] == today
    assert body["totals"]["overdue"] == 1 and body["stored"] is None
    (dept,) = body["departments"]
    assert dept["name"] == "住建局" and dept["overdue"][0]["ticket_id"] == tid
    assert dept["overdue"][0]["excerpt"] == "楼道灯坏了三个月" and dept["overdue"][0]["overdue_label"].startswith("逾期")
    md = client.get("/api/digest?format=markdown", headers=auth)
    assert md.headers["content-type"].startswith("text/markdown") and f"#{tid}" in md.text
    assert "<h2" in client.get("/api/digest?format=html", headers=auth).text
    assert client.get("/api/digest?date=2026-02-30", headers=auth).status_code == 400
    assert client.get("/api/digest?organisation=无此单位", headers=auth).status_code == 404
    future = (to_local(utcnow(), ctx.tz).date() + timedelta(days=2)).isoformat()
    assert "future" in client.get(f"/api/digest?date={future}", headers=auth).json()["detail"]["text"]


def test_cli_digest_prints_writes_and_stores(tmp_path: Path, open_ctx) -> None:
    path = write_config(tmp_path)
    ctx = open_ctx(load_config(path))
    tid = overdue_ticket(ctx)
    today = to_local(utcnow(), ctx.tz).date().isoformat()
    result = govbot(path, "digest", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"# 示例县人民政府 未答复留言日报 {today}") and f"#{tid} 逾期" in result.output
    assert (tmp_path / "out" / f"digest-示例县人民政府-{today}.html").exists()
    with ctx.session() as s:
        assert s.exec(select(DigestRun)).all() == []  # a preview stores nothing
    result = govbot(path, "digest", "--send")
    assert result.exit_code == 0 and "no digest_channels configured; stored, nothing sent" in result.output
    with ctx.session() as s:
        (run,) = s.exec(select(DigestRun)).all()
    assert run.day == today and f"#{tid}" in run.markdown
    result = govbot(path, "digest", "--organisation", "无此单位")
    assert result.exit_code == 1 and "没有名为“无此单位”的单位" in result.output
