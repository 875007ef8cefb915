"""稿件 in a real browser: write with the editor, three sign-offs, publish on the chosen accounts only;
targets changed after a signature void it; a failed publication retried without new sign-offs; the
calendar; the author told the post was sent back. Screenshots of every page visited."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlmodel import select

from bot.clock import utcnow
from bot.models import Account, Post, Publication, SignOff
from bot.publishing import service
from bot.publishing.signoff import sign
from bot.publishing.weibo_length import weibo_length
from bot.users import get_user
from tests.browser.helpers import assert_no_horizontal_scroll, login, shot
from tests.test_scheduler_support import arm, png

WECHAT, WEIBO, HOUSING = "示例县发布", "示例县发布微博", "示例县住建"
WEIBO_TEXT = "示例县2026年冬季供暖工作安排发布，详见 https://www.gov.example.cn/gn/2026"
WORD_PASTE = ('<html xmlns:o="urn:schemas-microsoft-com:office:office"><body><!--StartFragment-->'
              '<p class="MsoNormal" align="center" style="text-align:center;mso-line-height-alt:12pt">'
              '<b><span style="color:#C00000;mso-bidi-font-family:宋体">供暖时间</span></b>'
              '<span>：11月15日至次年3月15日</span><o:p></o:p></p><!--EndFragment--></body></html>')


def logout(page) -> None:
    if page.is_visible("header .menu-toggle"):  # on a phone the user's menu folds under 菜单
        page.click("header .menu-toggle")
    page.click("header .me button")
    page.wait_for_url(re.compile(r"/login"))


def wait_until(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what() if callable(what) else what}"
        time.sleep(0.2)


def account_id(live, name: str) -> int:
    with live.ctx.session() as s:
        return s.exec(select(Account).where(Account.name == name)).one().id


def submitted_post(live, title: str, accounts=(WECHAT,), signers=()) -> int:
    """A post made through the services (not what these tests look at), submitted and signed by `signers`."""
    config = live.ctx.config
    with live.ctx.session() as s:
        post = service.create_post(session=s, author=get_user(session=s, username="xuanchuan"), title=title,
                                   body="<p>为保障群众温暖过冬，示例县对今冬供暖工作作出安排。</p>", digest="今冬供暖安排",
                                   weibo_text=WEIBO_TEXT, cover=("cover.png", png(64, 32), "image/png"))
        service.submit_post(session=s, config=config, post=post, user=get_user(session=s, username="xuanchuan"),
                            accounts=list(accounts), decide_time_later=True)
        post_id = post.id
    for name in signers:
        with live.ctx.session() as s:
            sign(session=s, config=config, post=s.get(Post, post_id), user=get_user(session=s, username=name),
                 version=s.get(Post, post_id).version)
    return post_id


def post_status(live, post_id: int) -> str:
    with live.ctx.session() as s:
        return s.get(Post, post_id).status


def publications(live, post_id: int) -> dict[str, Publication]:
    with live.ctx.session() as s:
        names = {a.id: a.name for a in s.exec(select(Account))}
        return {names[p.account_id]: p for p in s.exec(select(Publication).where(Publication.post_id == post_id))}


def test_three_signoffs_publish_on_the_chosen_accounts_only(live, page, phone, tmp_path: Path):
    image = tmp_path / "photo.png"
    image.write_bytes(png(120, 80))
    login(page, live, "xuanchuan")
    page.goto(f"{live.url}/posts/new")
    # The checks run while typing; a sensitive word is marked where it is, in the preview.
    page.fill("input[name=title]", "内部资料：示例县2026年冬季供暖工作安排")
    page.wait_for_selector(".preview .wx-title mark.problem:has-text('内部资料')")
    assert "内部资料" in page.inner_text("#live-problems")
    shot(page, "posts-editor-live-check-laptop")
    page.fill("input[name=title]", "示例县2026年冬季供暖工作安排")
    page.wait_for_selector(".preview mark.problem", state="detached")
    page.click(".ql-editor")
    page.keyboard.type("为保障群众温暖过冬，示例县对今冬供暖工作作出安排。")
    page.keyboard.press("Enter")
    # Pasted from Word: bold, colour and centring stay; Office markup goes.
    page.evaluate("""html => {
        const data = new DataTransfer();
        data.setData('text/html', html);
        data.setData('text/plain', '供暖时间');
        document.querySelector('.ql-editor').dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
    }""", WORD_PASTE)
    page.wait_for_selector(".wx-body strong:has-text('供暖时间')")
    pasted = page.inner_html(".wx-body")
    assert "color: rgb(192, 0, 0)" in pasted and "text-align: center" in pasted
    assert "mso" not in pasted and "MsoNormal" not in pasted and "o:p" not in pasted
    with page.expect_file_chooser() as chooser:
        page.click(".ql-toolbar .ql-image")
    chooser.value.set_files(str(image))
    page.wait_for_selector(".ql-editor img")
    page.wait_for_selector(".wx-body img")  # the phone preview follows the editor
    page.fill("textarea[name=digest]", "今冬供暖安排")
    page.fill("textarea[name=weibo_text]", WEIBO_TEXT)
    count = page.inner_text(".wb-count")
    assert f"{int(-(-weibo_length(WEIBO_TEXT) // 1))} / 140" in count
    # The page's counter is the Python function mirrored: both agree on these strings.
    for sample in ("政务公开", "abc 中文", WEIBO_TEXT, "两个链接 http://a.cn https://b.cn/x?y=1 完", "emoji 👍 好"):
        assert page.evaluate("s => window.weiboLength(s)", sample) == weibo_length(sample), sample
    page.set_input_files("input[name=cover]", str(image))
    # The chosen cover shows in the preview before it is uploaded (the CSP lets the blob: image in).
    page.wait_for_function("() => document.querySelector('.wx-card img[data-live=cover]').naturalWidth > 0")
    # The live check runs once typing pauses: the list then says what is wrong with the text as it is now.
    page.wait_for_function("() => !/内部资料|正文为空/.test(document.getElementById('live-problems').innerText)")
    shot(page, "posts-editor-laptop")
    assert_no_horizontal_scroll(page)
    page.click("form.card button.primary")
    page.wait_for_selector("text=草稿已保存")
    post_id = int(re.search(r"/posts/(\d+)", page.url).group(1))

    # 送审: only the department's accounts are offered; the editor picks the WeChat account only.
    form = page.locator("form[action$='/submit']")
    assert HOUSING not in form.inner_text()
    form.locator(f"input[value='{account_id(live, WEIBO)}']").uncheck()
    form.locator("input[name=when][value=later]").check()
    form.locator("button.primary").click()
    page.wait_for_selector("text=已送审")
    shot(page, "posts-submitted-laptop")
    logout(page)

    login(page, live, "bianji")
    page.goto(f"{live.url}/posts/{post_id}")
    assert WECHAT in page.inner_text(".targets") and WEIBO not in page.inner_text(".targets")
    page.click("text=签署通过")
    page.wait_for_selector(".flash.ok")

    for leader in ("fenguan", "zhuyao"):  # leaders sign on their phones
        login(phone, live, leader)
        phone.goto(f"{live.url}/posts/{post_id}")
        assert "示例县2026年冬季供暖工作安排" in phone.inner_text(".phone")
        shot(phone, f"posts-signoff-phone-{leader}")
        assert_no_horizontal_scroll(phone)
        phone.click("text=签署通过")
        phone.wait_for_selector(".flash.ok")
        logout(phone)

    login(page, live, "xuanchuan")
    page.goto(f"{live.url}/posts/{post_id}")
    schedule = page.locator("form[action$='/schedule']")
    assert "现在是" in schedule.inner_text()
    schedule.locator("input[name=when][value=now]").check()
    schedule.locator("button.primary").click()
    page.wait_for_selector("text=已安排立即发布")
    wait_until(lambda: post_status(live, post_id) == "published", "the post to be published")
    page.reload()
    shot(page, "posts-published-laptop")
    assert set(publications(live, post_id)) == {WECHAT}
    state = httpx.get(f"{live.emulator_url}/_emulator/state", timeout=10).json()
    assert not [s for s in state["weibo"]["statuses"].values() if s["original_text"] == WEIBO_TEXT]
    articles = [i for a in state["wechat"]["articles"].values() for i in a["news_item"]
                if i["title"] == "示例县2026年冬季供暖工作安排"]
    # The body's image went to WeChat's own image host, not as a link to the console.
    assert len(articles) == 1 and 'src="http://mmbiz.qpic.cn/' in articles[0]["content"]
    assert "/media/" not in articles[0]["content"]


def test_changing_targets_after_a_signature_voids_it(live, page):
    post_id = submitted_post(live, "示例县冬季供暖服务热线公布", signers=("bianji",))
    login(page, live, "xuanchuan")
    page.goto(f"{live.url}/posts/{post_id}")
    page.click("text=修改发布账号或时间")
    form = page.locator("form[action$='/retarget']")
    form.locator(f"input[value='{account_id(live, WEIBO)}']").check()
    form.locator("input[name=when][value=later]").check()
    form.locator("button.danger").click()
    page.wait_for_selector("text=原有审签已作废")
    assert "已作废" in page.inner_text("body")
    shot(page, "posts-retargeted-laptop")
    with live.ctx.session() as s:
        post = s.get(Post, post_id)
        assert (post.status, post.version) == ("draft", 2)
        assert all(so.voided_at is not None for so in s.exec(select(SignOff).where(SignOff.post_id == post_id)))
    with live.ctx.session() as s:
        service.edit_post(session=s, post=s.get(Post, post_id), user=get_user(session=s, username="xuanchuan"),
                          body="<p>为保障群众温暖过冬，示例县开通供暖服务热线 12345，全天受理。</p>")
    # Sent again, the first reviewer sees what changed since they signed: words and the added account.
    page.reload()
    page.locator("form[action$='/submit'] button.primary").click()
    page.wait_for_selector("text=已送审")
    logout(page)
    login(page, live, "bianji")
    page.goto(f"{live.url}/posts/{post_id}")
    diff = page.inner_text(".diff")
    assert f"增加 {WEIBO}" in diff and page.locator(".diff ins", has_text="12345").count() == 1
    assert page.locator(".diff del", has_text="作出安排").count() == 1
    shot(page, "posts-diff-laptop")


def test_failed_publication_is_retried_without_new_signoffs(live, page, phone):
    post_id = submitted_post(live, "示例县供暖收费标准公示", signers=("bianji", "fenguan", "zhuyao"))
    arm(live.emulator_url, "wechat", "freepublish/submit", "reject")
    with live.ctx.session() as s:
        service.schedule_post(session=s, config=live.ctx.config, post=s.get(Post, post_id),
                              user=get_user(session=s, username="xuanchuan"), accounts=[])
    wait_until(lambda: publications(live, post_id)[WECHAT].state == "failed", "the failure")
    wait_until(lambda: post_status(live, post_id) == "failed", "the post to settle")
    login(page, live, "xuanchuan")
    page.goto(f"{live.url}/posts/{post_id}")
    reason = page.inner_text(".reason")
    assert "公众号平台审核未通过" in reason and "处理办法" in reason
    shot(page, "posts-failed-laptop")
    page.goto(f"{live.url}/posts?status=failed")
    assert "示例县供暖收费标准公示" in page.inner_text("table")
    shot(page, "posts-list-failed-laptop")
    page.goto(f"{live.url}/posts/{post_id}")
    page.locator("form[action$='/retry'] button.primary").click()
    page.wait_for_selector("text=已安排重新发布")
    wait_until(lambda: publications(live, post_id)[WECHAT].state == "published",
               lambda: f"the retry ({publications(live, post_id)[WECHAT]})")
    with live.ctx.session() as s:
        signoffs = s.exec(select(SignOff).where(SignOff.post_id == post_id)).all()
        assert len(signoffs) == 3 and all(so.voided_at is None for so in signoffs)
    # The department lead was told of the failure, with the reason.
    login(phone, live, "gongkai")
    phone.goto(f"{live.url}/notices")
    assert "发布失败" in phone.inner_text("ul.notices") and "公众号平台审核未通过" in phone.inner_text("ul.notices")
    shot(phone, "notices-phone-lead")
    assert_no_horizontal_scroll(phone)


def test_calendar_shows_the_post_and_the_gap_warning(live, page, phone):
    post_id = submitted_post(live, "示例县冬季安全用电提示", signers=("bianji", "fenguan", "zhuyao"))
    with live.ctx.session() as s:
        wechat = s.exec(select(Account).where(Account.name == WECHAT)).one()
        # The account last posted 12 days ago: past the 10-day warning.
        old = service.create_post(session=s, author=get_user(session=s, username="xuanchuan"), title="十二天前的稿件",
                                  body="<p>旧稿。</p>")
        old.status = "published"
        s.add(Publication(post_id=old.id, account_id=wechat.id, state="published",
                          due_at=utcnow() - timedelta(days=12), next_attempt_at=utcnow() - timedelta(days=12),
                          published_at=utcnow() - timedelta(days=12)))
        s.add(old)
    with live.ctx.session() as s:
        service.schedule_post(session=s, config=live.ctx.config, post=s.get(Post, post_id),
                              user=get_user(session=s, username="xuanchuan"), accounts=[],
                              at=(utcnow() + timedelta(days=2)).astimezone().replace(tzinfo=None) + timedelta(hours=8)
                              - timedelta(seconds=utcnow().astimezone().utcoffset().total_seconds()))
    login(page, live, "xuanchuan")
    page.goto(f"{live.url}/calendar")
    body = page.inner_text("main")
    assert "示例县冬季安全用电提示" in body and "满 14 天" in body and "预警" in body
    shot(page, "calendar-month-laptop")
    assert_no_horizontal_scroll(page)
    page.click("text=周")
    page.wait_for_url(re.compile(r"view=week"))
    shot(page, "calendar-week-laptop")
    login(phone, live, "xuanchuan")
    phone.goto(f"{live.url}/calendar")
    shot(phone, "calendar-month-phone")
    assert_no_horizontal_scroll(phone)
    phone.click("a.cal-item:has-text('示例县冬季安全用电提示')")
    phone.wait_for_url(re.compile(rf"/posts/{post_id}$"))


def test_author_sees_the_sent_back_notice(live, page, phone):
    post_id = submitted_post(live, "示例县供暖投诉渠道公布")
    login(page, live, "bianji")
    page.goto(f"{live.url}/posts/{post_id}")
    page.fill("textarea[name=reason]", "请补充投诉电话的服务时间")
    page.click("text=退回修改")
    page.wait_for_selector("text=已退回编辑修改")
    login(phone, live, "xuanchuan")
    assert phone.inner_text("header .notice-link .count") == "1"
    shot(phone, "home-phone-with-notice")
    assert_no_horizontal_scroll(phone)
    phone.click("header .notice-link")
    text = phone.inner_text("ul.notices")
    assert "已退回" in text and "请补充投诉电话的服务时间" in text
    shot(phone, "notices-phone-author")
    phone.click("ul.notices a.subject")
    phone.wait_for_url(re.compile(rf"/posts/{post_id}$"))
    assert "请补充投诉电话的服务时间" in phone.inner_text(".flash.error")
    assert phone.locator("header .notice-link .count").count() == 0
    shot(phone, "posts-rejected-phone")
    assert_no_horizontal_scroll(phone)
    phone.click("text=编辑内容")
    phone.wait_for_selector(".ql-editor")
    shot(phone, "posts-editor-phone")
    assert_no_horizontal_scroll(phone)
    phone.goto(f"{live.url}/posts")
    shot(phone, "posts-list-phone")
    assert_no_horizontal_scroll(phone)
