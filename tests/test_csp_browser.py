"""The console under its Content-Security-Policy in a real Chromium (Debian's, never a downloaded one):
no page breaks a rule of the policy, and the page behaviour of /static/console.js and posts.js runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.emulator.testing import serve_app
from bot.web.app import create_app

CHROMIUM = "/usr/bin/chromium"
PAGES = ("/", "/posts", "/posts/new", "/tickets", "/tickets/templates", "/messages", "/digest", "/reports",
         "/accounts", "/rules", "/tickets/999999", "/calendar", "/notices", "/inspection", "/admin/users",
         "/admin/departments", "/account/password")


def test_console_pages_keep_to_the_csp_in_chromium(ctx) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    with serve_app(create_app(ctx)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(f"{url}/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "demo")
            page.click("button[type=submit], button.primary")
            page.wait_for_url(f"{url}/")
            for path in PAGES:
                page.goto(url + path)
            page.goto(f"{url}/reports")
            assert page.is_disabled("#scope-name")  # console.js ran: "all" needs no name
            page.select_option("#scope-kind", "department")
            assert not page.is_disabled("#scope-name")
            page.goto(f"{url}/posts/new")
            page.fill("textarea[name=weibo_text]", "你好")
            # posts.js ran: Weibo's own count (bot/publishing/weibo_length.py mirrored) under the text.
            assert "按微博规则计 2 / 140 字" in page.text_content(".wb-count")
            assert page.evaluate("document.querySelector('meta[name=csrf-token]').content")
        finally:
            browser.close()
    assert problems == []
