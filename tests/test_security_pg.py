"""Sessions and the log-in lock-out on PostgreSQL, shared by two web processes' apps (scale-out)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from bot.context import Context
from bot.seed import sync_from_config
from bot.web.app import create_app
from bot.web.sessions import COOKIE
from tests.test_login_sessions import CSRF_META, logged_in, try_login


def test_lockout_and_logout_shared_on_postgresql(make_config, pg_database) -> None:
    ctx = Context.open(make_config({"database": {"url": pg_database}}))
    try:
        with ctx.session() as s:
            sync_from_config(session=s, config=ctx.config)
        one, two = create_app(ctx), create_app(ctx)
        desk = logged_in(TestClient(one), "gongkai")
        token = desk.cookies[COOKIE]
        other_process = TestClient(two, cookies={COOKIE: token})
        assert other_process.get("/tickets", follow_redirects=False).status_code == 200
        csrf = CSRF_META.search(desk.get("/").text).group(1)
        assert desk.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
        assert other_process.get("/tickets", follow_redirects=False).status_code == 303
        for _ in range(5):
            assert try_login(TestClient(one), "zhuyao", "wrong").status_code == 401
        assert try_login(TestClient(two), "zhuyao", "demo").status_code == 429
    finally:
        ctx.close()
