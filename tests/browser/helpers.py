"""What browser tests share: logging in, screenshots into $GOVBOT_SCREENSHOTS, and measuring
horizontal scrolling in the browser."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SCREENSHOTS = Path(os.environ.get("GOVBOT_SCREENSHOTS") or tempfile.mkdtemp(prefix="govbot-shots-"))


def login(page, live, username: str, password: str = "demo") -> None:
    page.goto(f"{live.url}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(lambda url: "/login" not in url)


def shot(page, name: str) -> Path:
    """A full-page screenshot named `name`.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_no_horizontal_scroll(page) -> None:
    """The page is no wider than the window: nothing needs scrolling sideways (measured in the browser)."""
    widths = page.evaluate("""() => ({
        doc: document.documentElement.scrollWidth, body: document.body.scrollWidth,
        view: document.documentElement.clientWidth,
        wide: Array.from(document.querySelectorAll('body *')).filter(e => {
            const r = e.getBoundingClientRect();
            return r.right > document.documentElement.clientWidth + 1 && getComputedStyle(e).position !== 'fixed'
                && !e.closest('.table-box, .scroll, table, .skip');
        }).slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))
    })""")
    assert widths["doc"] <= widths["view"] and widths["body"] <= widths["view"], f"{page.url}: {widths}"
