"""Inspection through its edges: `govbot inspection …` (real entry point), the JSON API and the console page."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from docx import Document
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.clock import to_local, utcnow
from bot.config import load_config
from bot.context import Context
from bot.models import Account, Post, Publication, Rectification, User
from bot.web.app import create_app
from tests.test_console import login
from tests.test_reports_api import token
from tests.test_tickets_cli import govbot, write_config


def silent_account(ctx: Context, days: int = 16) -> None:
    """示例县住建 posted once, `days` days ago: the 2-week single veto has tripped."""
    with ctx.session() as s:
        acc = s.exec(select(Account).where(Account.name == "示例县住建")).one()
        author = s.exec(select(User)).first()
        p = Post(title="通知", body="<p>正文</p>", author_id=author.id, content_hash="h", status="published")
        s.add(p)
        s.flush()
        when = utcnow() - timedelta(days=days)
        s.add(Publication(post_id=p.id, account_id=acc.id, state="published", due_at=when, next_attempt_at=when,
                          published_at=when))
        s.commit()


def test_cli_status_report_annual_and_rectify(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    assert govbot(cfg, "init").exit_code == 0
    ctx = Context.open(load_config(str(cfg)))
    silent_account(ctx)
    out = govbot(cfg, "inspection", "status", "--account", "示例县住建")
    assert out.exit_code == 0 and "示例县住建（住建局）：不合格" in out.output and "天无更新" in out.output
    from bot.inspection.service import daily_check

    daily_check(ctx)
    with ctx.session() as s:
        acc = s.exec(select(Account).where(Account.name == "示例县住建")).one()
        (rect,) = s.exec(select(Rectification).where(Rectification.indicator == "no_update",
                                                     Rectification.account_id == acc.id)).all()
    listing = govbot(cfg, "inspection", "rectifications", "--open")
    assert f"#{rect.id}" in listing.output and "整改中" in listing.output
    today = to_local(utcnow(), ctx.tz).date().isoformat()
    done = govbot(cfg, "inspection", "rectify", str(rect.id), "--measure", "恢复每周更新", "--fixed-on", today,
                  "--as", "admin")
    assert done.exit_code == 0 and "已整改" in done.output
    month = today[:7]
    rep = govbot(cfg, "inspection", "report", "--month", month, "--out", str(tmp_path / "out"))
    assert rep.exit_code == 0, rep.output
    (docx,) = (tmp_path / "out").glob("selfcheck-*.docx")
    assert "恢复每周更新" in "\n".join(c.text for t in Document(docx).tables for r in t.rows for c in r.cells)
    ann = govbot(cfg, "inspection", "annual", "--year", today[:4], "--out", str(tmp_path / "out"))
    assert ann.exit_code == 0 and "名称,类型" in ann.output
    bad = govbot(cfg, "inspection", "report", "--month", "2026-13")
    assert bad.exit_code == 1 and bad.output.strip().startswith("error:") and "Traceback" not in bad.output
    both = govbot(cfg, "inspection", "report", "--month", month, "--year", today[:4])
    assert both.exit_code == 1 and "一个检查周期" in both.output


def test_api_status_report_and_rectification(ctx: Context) -> None:
    silent_account(ctx)
    client = TestClient(create_app(ctx))
    assert client.get("/api/inspection/status").status_code == 401
    body = client.get("/api/inspection/status?account=示例县住建", headers=token(ctx)).json()
    assert body["total"] == 1 and body["next"] is None and body["items"][0]["overall"] == "fail"
    assert {i["id"]: i["status"] for i in body["items"][0]["indicators"]}["no_update"] == "fail"
    month = to_local(utcnow(), ctx.tz).strftime("%Y-%m")
    docx = client.get(f"/api/inspection/report?month={month}&format=docx", headers=token(ctx))
    assert docx.status_code == 200 and Document(io.BytesIO(docx.content)).tables
    from bot.inspection.service import daily_check

    daily_check(ctx)
    rects = client.get("/api/inspection/rectifications?account=示例县住建", headers=token(ctx)).json()["items"]
    rid = rects[0]["id"]
    first = client.get("/api/inspection/rectifications?account=示例县住建&limit=1", headers=token(ctx)).json()
    assert first["items"] == rects[:1] and first["total"] == len(rects) and (first["next"] is None) == (len(rects) == 1)
    report = client.get(f"/api/inspection/report?month={month}", headers=token(ctx)).json()
    assert report["accounts"] and {r["id"] for r in report["rectifications"]} >= {rid}
    # gongkai (responder of 政务公开办) may not rectify 住建局's account; admin may.
    refused = client.post(f"/api/inspection/rectifications/{rid}", json={"measure": "补发"}, headers=token(ctx))
    assert refused.status_code == 403
    ok = client.post(f"/api/inspection/rectifications/{rid}", json={"measure": "补发"}, headers=token(ctx, "admin"))
    assert ok.status_code == 200 and ok.json()["measure"] == "补发" and ok.json()["fixed_on"] is None
    assert client.get("/api/inspection/report?month=2026-13", headers=token(ctx)).status_code in (400, 422)


def test_console_page_shows_status_and_takes_a_rectification(ctx: Context) -> None:
    silent_account(ctx)
    from bot.inspection.service import daily_check

    daily_check(ctx)
    client = TestClient(create_app(ctx))
    login(client, "admin")
    page = client.get("/inspection")
    assert page.status_code == 200
    assert "迎检自查" in page.text and "不合格" in page.text and "天无更新" in page.text and "待整改" in page.text
    with ctx.session() as s:
        acc = s.exec(select(Account).where(Account.name == "示例县住建")).one()
        rect = s.exec(select(Rectification).where(Rectification.account_id == acc.id)).first()
    from tests.test_console import csrf_of

    today = to_local(utcnow(), ctx.tz).date().isoformat()
    r = client.post(f"/inspection/rectifications/{rect.id}", data={
        "csrf_token": csrf_of(page.text), "measure": "已补发并建立更新台账", "fixed_on": today}, follow_redirects=True)
    assert r.status_code == 200 and "整改情况已保存" in r.text and "已整改" in r.text
    month = today[:7]
    dl = client.get(f"/inspection/report.docx?month={month}")
    assert dl.status_code == 200 and "已补发并建立更新台账" in "\n".join(
        c.text for t in Document(io.BytesIO(dl.content)).tables for row in t.rows for c in row.cells)
    assert client.get("/inspection/report.pdf?month=2026-11").status_code == 404
    assert client.get("/inspection/annual.csv?year=26").status_code == 422


def test_accounts_page_and_digest_show_what_needs_rectifying(ctx: Context) -> None:
    from bot.inspection.service import daily_check
    from bot.oversight.digest import collect_digest, organisation_scopes, render_html, render_markdown

    silent_account(ctx)
    daily_check(ctx)
    client = TestClient(create_app(ctx))
    login(client, "gongkai")
    page = client.get("/accounts").text
    assert "迎检" in page and "不合格" in page and "监测时间点前2周内无更新" in page
    today = to_local(utcnow(), ctx.tz).date()
    with ctx.session() as s:
        scope = organisation_scopes(session=s, config=ctx.config)[0]
        d = collect_digest(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, day=today)
    assert any(a == "示例县住建" and "天无更新" in p for a, p, _ in d.rectifications)
    assert "## 迎检问题待整改" in render_markdown(d) and "迎检问题待整改" in render_html(d)
    assert d.to_dict()["rectifications"]
