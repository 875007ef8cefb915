"""An administrator adds a user who then logs in; the transparency office reads the report page with
its charts and downloads the printable inspection record."""

from __future__ import annotations

import io

from docx import Document

from tests.browser.helpers import assert_no_horizontal_scroll, login, shot


def test_admin_adds_a_user_who_then_logs_in(live, page, phone) -> None:
    login(page, live, "admin")
    page.get_by_role("link", name="管理", exact=True).click()
    page.wait_for_url("**/admin/users")
    form = page.locator("#add form")
    form.get_by_label("用户名（登录用）").fill("xiaoli")
    form.get_by_label("姓名").fill("李晓")
    form.get_by_role("combobox", name="部门").select_option(label="住建局")
    form.get_by_label("初始密码（至少 8 位）").fill("Zhujian-2026")
    form.get_by_label("答复人").check()
    shot(page, "admin-users-laptop")
    form.get_by_role("button", name="添加用户").click()
    page.get_by_text("已添加用户 xiaoli").wait_for()
    assert page.locator("table").get_by_text("李晓").count() == 1

    login(phone, live, "xiaoli", "Zhujian-2026")
    phone.get_by_role("button", name="菜单").click()
    phone.get_by_role("link", name="工单", exact=True).wait_for()
    assert phone.get_by_role("link", name="管理", exact=True).count() == 0
    assert "李晓" in phone.locator("header").inner_text()
    assert_no_horizontal_scroll(phone)
    shot(phone, "menu-open-phone")


def test_report_page_shows_charts_and_downloads_the_record(live, page, phone) -> None:
    login(page, live, "gongkai")
    page.get_by_role("link", name="报表").click()
    page.wait_for_url("**/reports")
    charts = page.locator(".charts img")
    assert charts.count() >= 1
    assert all(charts.nth(i).evaluate("img => img.complete && img.naturalWidth > 300") for i in range(charts.count()))
    box = page.locator(".scroll.table-box")
    assert box.evaluate("b => b.scrollWidth >= b.clientWidth && b.getBoundingClientRect().right <= innerWidth")
    shot(page, "reports-laptop")
    with page.expect_download() as info:
        page.get_by_role("link", name="下载检查记录表（Word）").click()
    download = info.value
    assert download.suggested_filename.endswith(".docx") and "月度检查记录表" in download.suggested_filename
    doc = Document(io.BytesIO(open(download.path(), "rb").read()))
    assert "月度检查记录表" in doc.paragraphs[0].text
    assert len(doc.inline_shapes) >= 1  # the charts

    login(phone, live, "gongkai")
    phone.goto(f"{live.url}/reports")
    assert_no_horizontal_scroll(phone)
    shot(phone, "reports-phone")
    page.emulate_media(media="print")
    assert page.locator("header.top").is_hidden() and page.locator("form.no-print").is_hidden()
