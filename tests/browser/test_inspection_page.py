"""The 迎检 page in Chromium, as the transparency office sees it: a silent account fails the 2-week single veto
with its evidence, the rectification is recorded from the page, the 自查报告 downloads, and the page fits a phone."""

from __future__ import annotations

import io
from datetime import timedelta

from docx import Document
from sqlmodel import select

from bot.clock import utcnow
from bot.inspection.service import daily_check
from bot.models import Account, Post, Publication, Rectification, User
from tests.browser.helpers import assert_no_horizontal_scroll, login, shot


def test_inspection_page_evidence_rectification_and_download(live, page, phone) -> None:
    with live.ctx.session() as s:
        acc = s.exec(select(Account).where(Account.name == "示例县住建")).one()
        author = s.exec(select(User).where(User.username == "xuanchuan")).one()
        post = Post(title="政务动态", body="<p>本周政务动态。</p>", author_id=author.id, content_hash="h",
                    status="published")
        s.add(post)
        s.flush()
        when = utcnow() - timedelta(days=16)
        s.add(Publication(post_id=post.id, account_id=acc.id, state="published", due_at=when, next_attempt_at=when,
                          published_at=when))
        s.commit()
    daily_check(live.ctx)

    login(page, live, "admin")
    page.goto(f"{live.url}/inspection")
    row = page.locator(f"#a{acc.id}")
    assert "不合格" in row.inner_text()
    assert "天无更新" in page.locator(".findings").inner_text()
    shot(page, "inspection-laptop")

    with live.ctx.session() as s:
        rect = s.exec(select(Rectification).where(Rectification.account_id == acc.id,
                                                  Rectification.indicator == "no_update")).one()
    form = page.locator(f"#r{rect.id} form")
    form.locator("textarea[name=measure]").fill("已补发并建立更新台账，每周至少发布两篇")
    form.locator("button").click()
    page.wait_for_load_state()
    assert "整改措施已保存" in page.content()
    with live.ctx.session() as s:
        assert s.get(Rectification, rect.id).measure.startswith("已补发")

    with page.expect_download() as dl:
        page.locator("form[action='/inspection/report.docx'] button").first.click()
    doc = Document(io.BytesIO(open(dl.value.path(), "rb").read()))
    cells = "\n".join(c.text for t in doc.tables for r in t.rows for c in r.cells)
    assert "已补发并建立更新台账" in cells and "示例县住建" in cells

    login(phone, live, "admin")
    phone.goto(f"{live.url}/inspection")
    assert_no_horizontal_scroll(phone)
    shot(phone, "inspection-phone")
