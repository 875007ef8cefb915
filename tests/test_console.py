"""The web console through its forms: login, CSRF, role-aware pages, domain errors shown on the page."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from bot.context import Context
from bot.web.app import create_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "page has no CSRF field"
    return m.group(1)


def login(client: TestClient, username: str, password: str = "demo") -> TestClient:
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": token, "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def post_form(client: TestClient, url: str, data: dict | None = None, *, page: str | None = None, **kw):
    """POST a console form with the CSRF token taken from `page` (default: the form's own URL)."""
    token = csrf_of(client.get(page or url).text)
    return client.post(url, data={**(data or {}), "csrf_token": token}, **kw)


@pytest.fixture
def app(ctx: Context):
    return create_app(ctx)


@pytest.fixture
def client(app) -> TestClient:
    return TestClient(app)


def test_pages_require_login(client: TestClient) -> None:
    for url in ("/", "/accounts", "/rules"):
        r = client.get(url, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login?next=")
    r = client.get("/accounts")
    assert "登录" in r.text and 'name="next" value="/accounts"' in r.text


def test_wrong_password_is_refused_with_a_message(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"username": "xuanchuan", "password": "wrong", "csrf_token": token})
    assert r.status_code == 401
    assert "用户名或密码错误" in r.text
    assert 'value="xuanchuan"' in r.text  # the name typed is kept
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_follows_only_local_next(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"username": "admin", "password": "demo", "csrf_token": token,
                                    "next": "//evil.example/x"}, follow_redirects=False)
    assert r.headers["location"] == "/"


def test_csrf_refused(client: TestClient) -> None:
    r = client.post("/login", data={"username": "admin", "password": "demo", "csrf_token": "forged"})
    assert r.status_code == 403
    login(client, "admin")
    assert client.post("/rules", data={"text": "垃圾清运"}).status_code == 403
    assert client.post("/logout", data={"csrf_token": "nope"}).status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 200


def test_logout(client: TestClient) -> None:
    login(client, "admin")
    r = post_form(client, "/logout", page="/", follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_navigation_follows_roles(client: TestClient) -> None:
    html = login(client, "zhujian").get("/").text
    assert 'href="/tickets"' in html and 'href="/posts"' not in html
    client.cookies.clear()
    html = login(client, "fenguan").get("/").text
    assert 'href="/posts"' in html and 'href="/tickets"' not in html


def test_rules_test_page_explains(client: TestClient) -> None:
    login(client, "gongkai")
    r = post_form(client, "/rules", {"text": "小区门口的垃圾好几天没人清运，臭气熏天，希望尽快处理"})
    assert r.status_code == 200
    assert "诉求类型" in r.text and "为什么" in r.text
    result = r.text.split("修改规则文件")[0]  # the rules file itself follows, in its own words
    assert "诉求判为“投诉”" in result and "complaint." not in result


def test_accounts_and_dashboard_show_update_gaps(client: TestClient) -> None:
    login(client, "xuanchuan")
    html = client.get("/accounts").text
    for name in ("示例县发布", "示例县住建", "示例县发布微博"):
        assert name in html
    assert "从未发布" in html
    assert "账号更新情况" in client.get("/").text


def test_every_post_status_has_a_chinese_label():
    from bot.labels import LABELS
    from bot.publishing.service import POST_STATUSES

    assert set(POST_STATUSES) <= set(LABELS["post"])
