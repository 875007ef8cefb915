"""Every console page at phone width (390 px): nothing scrolls sideways, measured in Chromium."""

from __future__ import annotations

import re

from sqlmodel import select

from bot.models import User
from bot.publishing.service import create_post
from bot.web.console import router as console_router
from tests.browser.helpers import assert_no_horizontal_scroll, login, shot
from tests.browser.seed import STREETLIGHT, weibo_comments
from tests.test_console_language import NOT_PAGES, console_routes


def test_every_page_fits_a_phone(live, phone) -> None:
    tickets = weibo_comments(live.ctx, live.emulator_url, STREETLIGHT[:2])
    with live.ctx.session() as s:
        author = s.exec(select(User).where(User.username == "xuanchuan")).one()
        post = create_post(session=s, author=author, title="关于开展秋季森林防火宣传的通知",
                           body="各村（社区）：为做好秋季森林防火工作，现将有关事项通知如下。",
                           weibo_text="秋季森林防火 http://gov.example.cn/n/1")
        # notice 1 does not exist: opening it leads back to the notice list, which is measured too.
        ids = {"post_id": post.id, "ticket_id": tickets[0], "user_id": author.id, "notice_id": 1}
    pages = sorted({re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), r.path)
                    for r in console_routes(console_router)
                    if "GET" in getattr(r, "methods", set()) and not r.path.startswith(NOT_PAGES)})
    assert len(pages) >= 15
    for username in ("admin", "zhujian"):
        login(phone, live, username)
        for url in pages:
            phone.goto(f"{live.url}{url}")
            assert_no_horizontal_scroll(phone)
            if username == "admin":
                shot(phone, "phone" + (url.replace("/", "-") if url != "/" else "-home"))
        phone.context.clear_cookies()
    phone.goto(f"{live.url}/login")
    assert_no_horizontal_scroll(phone)
    # Keyboard: the skip link comes first and lands on the content.
    login(phone, live, "zhujian")
    phone.keyboard.press("Tab")
    assert phone.evaluate("document.activeElement.textContent") == "跳到正文"
    phone.keyboard.press("Enter")
    assert phone.evaluate("document.activeElement.id") == "main"
