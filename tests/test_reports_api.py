"""The report through its edges: GET /api/reports, `govbot report` (real entry point) and the HTML charts."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.clock import to_local, utcnow
from bot.config import load_config
from bot.context import Context
from bot.models import User
from bot.oversight import charts
from bot.oversight.reports import compute_report, month_period, resolve_scope
from bot.users import issue_api_token
from bot.web.app import create_app
from tests.test_reports import Data
from tests.test_tickets_cli import govbot, write_config

TZ = ZoneInfo("Asia/Shanghai")


def last_month() -> tuple[str, date]:
    first_this = to_local(utcnow(), "Asia/Shanghai").date().replace(day=1)
    first_last = (first_this - timedelta(days=1)).replace(day=1)
    return first_last.strftime("%Y-%m"), first_last


def fill_last_month(ctx: Context) -> str:
    """Last month: one complaint on 示例县住建 answered after 2 hours, one praise comment, one post."""
    month, first = last_month()
    at = datetime.combine(first + timedelta(days=9), time(10), tzinfo=TZ)
    with ctx.session() as s:
        d = Data(ctx, s)
        m = d.message("示例县住建", "wechat_message", at, replied=at + timedelta(hours=2))
        cal = ctx.calendar
        d.ticket(m, cal.due_at_utc(at, 1, ctx.tz), cal.due_at_utc(at, 5, ctx.tz), first=at + timedelta(hours=2),
                 answered=at + timedelta(hours=2))
        d.message("示例县住建", "wechat_comment", at + timedelta(hours=1), needs=False, intent="praise")
        d.post("示例县住建", at - timedelta(days=1), reads=50, likes=4, shares=1, comments=1)
    return month


@pytest.fixture
def client(ctx: Context) -> TestClient:
    return TestClient(create_app(ctx))


def token(ctx: Context, username: str = "gongkai") -> dict[str, str]:
    with ctx.session() as s:
        user = s.exec(select(User).where(User.username == username)).one()
        return {"Authorization": f"Bearer {issue_api_token(session=s, user=user)}"}


def test_api_reports_json_csv_html(ctx: Context, client: TestClient) -> None:
    month = fill_last_month(ctx)
    auth = token(ctx)
    assert client.get(f"/api/reports?month={month}").status_code == 401
    body = client.get(f"/api/reports?month={month}&account=示例县住建", headers=auth).json()
    assert body["scope"] == {"kind": "account", "name": "示例县住建"}
    (acc,) = body["accounts"]
    assert (acc["posts"], acc["received"], acc["need_answer"], acc["replied"], acc["reply_rate"]) == (1, 2, 1, 1, 1.0)
    assert (acc["response_hours_median"], acc["first_response_on_time_rate"], acc["reads_per_post"]) == (2.0, 1.0, 50.0)
    assert body["total"]["reply_rate"] == 1.0 and body["conclusions"]
    org = client.get(f"/api/reports?month={month}&organisation=示例县人民政府", headers=auth).json()
    assert len(org["accounts"]) == 3 and org["departments"][0]["department"] == "住建局"
    raw = client.get(f"/api/reports?month={month}&format=csv", headers=auth)
    assert raw.content.startswith("\ufeff账号名称".encode()) and "合计" in raw.content.decode("utf-8-sig")
    html = client.get(f"/api/reports?month={month}&department=住建局&format=html", headers=auth).text
    assert "月度检查记录表" in html and html.count("data:image/png;base64,") == 3
    bad = client.get("/api/reports?month=2026-13", headers=auth)
    assert bad.status_code == 400 and "expected YYYY-MM" in bad.json()["detail"]["text"]
    assert client.get(f"/api/reports?month={month}&account=nope", headers=auth).status_code == 404
    assert client.get(f"/api/reports?month={month}&account=a&department=b", headers=auth).status_code == 400


def test_cli_report_writes_html_and_csv(tmp_path: Path, open_ctx) -> None:
    path = write_config(tmp_path)
    ctx = open_ctx(load_config(path))
    month = fill_last_month(ctx)
    out = tmp_path / "out"
    result = govbot(path, "report", "--month", month, "--organisation", "示例县人民政府", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "单位：示例县人民政府" in result.output and "合计\t\t1\t" in result.output
    html = (out / f"inspection-{month}-示例县人民政府.html").read_text(encoding="utf-8")
    assert "检查结论" in html and "data:image/png" in html
    table = list(csv.reader(io.StringIO((out / f"inspection-{month}-示例县人民政府.csv").read_text("utf-8-sig"))))
    assert table[0][0] == "账号名称" and [r[0] for r in table[1:4]] == ["示例县住建", "示例县发布", "示例县发布微博"]
    result = govbot(path, "report", "--month", month, "--from", "2026-01-01")
    assert result.exit_code == 1 and "二者选一" in result.output
    result = govbot(path, "report", "--month", "2026/11")
    assert result.exit_code == 1 and "格式不正确，应为 年-月" in result.output


def test_charts_fall_back_to_ascii_labels(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    month = fill_last_month(ctx)
    start, end = month_period(month, ctx.tz)
    with ctx.session() as s:
        report = compute_report(session=s, config=ctx.config, calendar=ctx.calendar,
                                scope=resolve_scope(session=s), start=start, end=end)
    monkeypatch.setattr(charts, "cjk_font", lambda: None)
    labels = charts.Labels(cjk=False)
    assert labels.account(report.rows[0]) == f"#{report.rows[0].account_id}"
    assert labels.text("更新间隔", "Update gaps") == "Update gaps"
    html = charts.report_html(report)
    assert "图中账号以编号（#）表示" in html and html.count("data:image/png;base64,") == 3
    png = charts.silence_chart(report, labels)
    assert png.startswith(b"\x89PNG")
