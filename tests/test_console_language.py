"""Every console page, as every role, shows officers Chinese: no English words, no raw identifiers
(rule ids, openids, state codes). The pages are found from the app's routes, so a new page is
crawled without changing this test."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.clock import utcnow
from bot.context import Context
from bot.inbound.store import Incoming, ingest
from bot.models import Account, User
from bot.publishing.service import create_post, submit_post
from bot.web.app import create_app
from bot.web.console import router as console_router
from tests.test_console import login

ROLES_USERS = ("xuanchuan", "bianji", "fenguan", "zhuyao", "gongkai", "zhujian", "admin")
# Pages that are not pages: files, downloads, the digest's mail body (checked in the digest tests).
NOT_PAGES = ("/static/", "/reports/csv", "/reports/docx", "/digest/html", "/posts/{post_id}/cover", "/media/",
             "/inspection/annual.", "/inspection/report.")
# Words that stay in Latin letters for officers too.
ALLOWED = {"CSV", "Word", "WPS", "PDF", "WeChat", "Weibo", "HTML", "URL", "Excel", "AES", "IP", "ID", "AppID", "AppSecret",
           "JPEG", "PNG", "GIF", "BMP", "MB", "KB", "http", "https", "www", "example", "cn", "gov", "n"}
LATIN = re.compile(r"[A-Za-z][A-Za-z_.]*[A-Za-z]|[A-Za-z]")


class VisibleText(HTMLParser):
    """Text a person sees: text nodes outside script/style, plus placeholders, alt and title texts."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "textarea"):
            self._skip += 1
        for name, value in attrs:
            if name in ("placeholder", "alt", "title", "aria-label") and value:
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style", "textarea"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return "\n".join(parser.parts)


def foreign_words(text: str) -> list[str]:
    # Links shown as text (an article's address) may be Latin; so may a post's content fingerprint
    # (内容指纹, hex) and its version label (v3), which signers compare.
    text = re.sub(r"https?://\S+", "", text)
    text = re.sub(r"\b[0-9a-f]{8,64}\b|\bv\d+\b", "", text)
    return sorted({w for w in LATIN.findall(text) if w not in ALLOWED})


def seed(ctx: Context) -> dict[str, int]:
    """A little of everything, so the pages show rows, not just empty tables."""
    with ctx.session() as s:
        author = s.exec(select(User).where(User.username == "xuanchuan")).one()
        post = create_post(session=s, author=author, title="秋季防火提示", body="请注意用火安全。",  # console1 renders HTML bodies on the post page
                           digest="防火", weibo_text="秋季防火提示 http://gov.example.cn/n/1")
        submit_post(session=s, config=ctx.config, post=post, user=author, platforms=["weibo"])
        account = s.exec(select(Account).where(Account.name == "示例县住建")).one()
        ids = {"post_id": post.id}
        for i, text in enumerate(("路灯坏了一个月没人管，强烈投诉", "请问公积金怎么提取", "感谢环卫工人辛苦付出")):
            result = ingest(session=s, ctx=ctx, incoming=Incoming(
                account_id=account.id, kind="wechat_message", dedupe_key=f"lang{i}", sender_id="oAbCdEf123456",
                text=text, received_at=utcnow() - timedelta(hours=3 - i)))
            if result.ticket is not None:
                ids.setdefault("ticket_id", result.ticket.id)
        ids["user_id"] = author.id
    return ids


def console_routes(router) -> list:
    """Every route of the console, through the routers it includes."""
    out = []
    for route in router.routes:
        inner = getattr(route, "original_router", None)
        out += console_routes(inner) if inner is not None else [route]
    return out


@pytest.fixture
def pages(ctx: Context) -> list[str]:
    ids = seed(ctx)
    out = []
    for route in console_routes(console_router):
        path = getattr(route, "path", "")
        if "GET" not in getattr(route, "methods", set()) or path.startswith(NOT_PAGES):
            continue
        out.append(re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), 1)), path))
    return sorted(set(out))


@pytest.mark.parametrize("username", ROLES_USERS)
def test_every_page_is_chinese_for_every_role(ctx: Context, pages: list[str], username: str) -> None:
    client = login(TestClient(create_app(ctx)), username)
    assert "/tickets" in pages and "/admin/users" in pages and "/reports" in pages
    with ctx.session() as s:
        logins = {u.username for u in s.exec(select(User))}  # login names are typed in Latin letters
    problems = {}
    for url in pages:
        r = client.get(url)
        assert r.status_code in (200, 403, 404), (url, r.status_code)
        words = [w for w in foreign_words(visible_text(r.text)) if not (url.startswith("/admin") and w in logins)]
        if words:
            problems[url] = words
    assert problems == {}, f"{username}: {problems}"


def test_the_crawler_notices_english() -> None:
    assert foreign_words(visible_text("<p>状态：<b>published</b></p><script>var x = 1;</script>")) == ["published"]
    assert foreign_words(visible_text("<p>规则 complaint.misconduct</p>")) == ["complaint.misconduct"]
    assert foreign_words(visible_text('<input placeholder="search">')) == ["search"]
    assert foreign_words(visible_text("<p>下载 CSV 或 Word</p>")) == []
