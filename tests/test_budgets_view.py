"""Each account's remaining budgets, as `govbot accounts list` and the JSON API show them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.cli import main
from bot.clock import utcnow
from bot.connectors.registry import ledger_for
from bot.models import Account, Publication, User
from bot.users import issue_api_token
from bot.web.app import create_app
from tests.test_posts_cli import config_file  # noqa: F401 - the fixture
from tests.test_scheduler_support import schedule, signed_post


def _spend(ctx, name: str, api: str, n: int) -> Account:
    with ctx.session() as s:
        account = s.exec(select(Account).where(Account.name == name)).one()
    ledger = ledger_for(ctx, account)
    for _ in range(n):
        ledger.spend(api)
    return account


def test_api_shows_remaining_budget_waiting_work_and_a_closed_window(ctx):
    account = _spend(ctx, "示例县发布", "freepublish/get", 7)
    _spend(ctx, "示例县发布", "freepublish/submit", 1)
    ledger_for(ctx, account).close("freepublish/submit")
    with ctx.session() as s:
        post = signed_post(s, ctx.config, title="等待额度")
        pub = schedule(s, post, account)
        s.get(Publication, pub.id).step = "quota:freepublish/submit"
        token = issue_api_token(session=s, user=s.exec(select(User).where(User.username == "admin")).one())
    with TestClient(create_app(ctx)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        body = client.get("/api/accounts/示例县发布/budgets", headers=headers).json()
        budgets = {b["api"]: b for b in body["budgets"]}
        assert budgets["freepublish/get"] | {"window_start": None, "window_end": None} == {
            "api": "freepublish/get", "label": "发布状态查询", "limit": 100, "used": 7, "remaining": 93,
            "closed": False, "waiting": 0, "window_start": None, "window_end": None}
        assert budgets["freepublish/submit"]["closed"] and budgets["freepublish/submit"]["remaining"] == 0
        assert budgets["freepublish/submit"]["waiting"] == 1
        weibo = client.get("/api/accounts/示例县发布微博/budgets", headers=headers).json()
        assert {b["api"]: b["limit"] for b in weibo["budgets"]}["calls"] == 150  # a test-level app
        assert client.get("/api/accounts/budgets", headers=headers).json()["total"] == 3
        assert client.get("/api/accounts/nope/budgets", headers=headers).status_code == 404
        assert client.get("/api/accounts/budgets").status_code == 401
        counted = client.post("/api/weibo/length", headers=headers,
                              json={"text": "Notice " + "x" * 243 + " https://gov.example.cn/a #话题#"}).json()
        # 251 ASCII bytes, a link 20, " #话题#" 7: 278 bytes, 139 characters.
        assert counted == {"length": 139, "limit": 140, "remaining": 1, "hashtags": ["#话题#"]}


def test_budget_windows_follow_the_beijing_day(ctx):
    account = _spend(ctx, "示例县发布", "freepublish/get", 1)
    from bot.connectors.quota import budget_overview

    with ctx.session() as s:
        [today] = [b for b in budget_overview(s, account.id, config=ctx.config) if b.api == "freepublish/get"]
        [tomorrow] = [b for b in budget_overview(s, account.id, config=ctx.config, now=today.window_end)
                      if b.api == "freepublish/get"]
    assert today.used == 1 and tomorrow.used == 0 and today.window_end - today.window_start == timedelta(days=1)
    assert today.window_start <= utcnow() < today.window_end


@pytest.mark.usefixtures("config_file")
def test_accounts_list_shows_budgets(config_file):  # noqa: F811
    runner = CliRunner()
    assert runner.invoke(main, ["--config", str(config_file), "init"], catch_exceptions=False).exit_code == 0
    result = runner.invoke(main, ["--config", str(config_file), "accounts", "list"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "freepublish/get" in result.output and "100/100 left" in result.output
    assert "calls" in result.output and "150/150 left" in result.output
