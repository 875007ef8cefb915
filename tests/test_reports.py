"""Report figures against a small dataset computed by hand, across the 2026 National Day holiday and its
调休 working Saturday, on SQLite and on PostgreSQL.

The 2026 State Council notice (chinesecalendar): 中秋 25–27 Sep off; 国庆 1–7 Oct off; Sat 10 Oct is a
working day (调休); Sun 11 Oct is off. Deadlines (Ticket.*_due) are "the end of the n-th working day
after the day received" (a message received on a rest day counts from the next working day), stored
as 00:00 local of the day after, exclusive. Policy: first answer 1 working day, resolution 5.

Period: October 2026, [1 Oct 00:00, 1 Nov 00:00) Shanghai; the report is made on 5 Nov, so as_of = 1 Nov 00:00.

Account 示例县住建 (wechat, 住建局) - tickets, each line: received -> first due / resolution due:
  K1 Thu 1 Oct 10:00 (holiday)  -> day 1 is Thu 8 Oct: first due end 8 Oct; resolution 8,9,10(Sat),12,13 -> end 13 Oct
     first answer 8 Oct 16:00 (on time, though 7 calendar days), resolved 13 Oct 11:00 (on time)
  K2 Wed 7 Oct 20:00 (holiday)  -> first due end 8 Oct; resolution end 13 Oct
     first answer 9 Oct 09:00 (late), resolved 14 Oct 10:00 (late: without the 调休 Saturday it would be on time)
  K3 Fri 9 Oct 15:00            -> first due end Sat 10 Oct (调休); resolution 10,12,13,14,15 -> end 15 Oct
     first answer Mon 12 Oct 09:00 (late: a Mon-Fri calendar would call it on time), resolved 15 Oct 17:00 (on time)
  K4 Thu 29 Oct 10:00           -> first due end 30 Oct (passed at as_of, unanswered: late); resolution end
     5 Nov (not due yet: not counted); open at as_of
  K5 Fri 30 Oct 14:00           -> first due end Mon 2 Nov: not due yet, not counted; open at as_of
  K6 Mon 12 Oct 09:00 spam, closed as spam: left out of every rate
  K7 Tue 20 Oct 09:00           -> automatic FAQ answer 09:01 (first answer, on time), resolved 22 Oct 10:00 (due end 27 Oct)
  K8 Tue 29 Sep 09:00 (before the period): still open at as_of -> only in the backlog
  K9 Fri 16 Oct 10:00           -> first due end 19 Oct, resolution end 23 Oct; answered 2 Nov (after as_of): both late, open at as_of
  First answer:  on time K1 K7 = 2; late K2 K3 K4 K9 = 4; K5 pending  -> 2/6 = 33.3 %
  Resolution:    on time K1 K3 K7 = 3; late K2 K9 = 2; K4 K5 pending   -> 3/5 = 60.0 %
  Backlog at as_of: K4 K5 K8 K9 = 4
  Messages in October: K1 K2 K7 private messages (3); K3 K4 K5 K6 K9 + praise P1 P2 comments (7); received 10, spam 1
  Need an answer (not spam): K1 K2 K3 K4 K5 K7 K9 = 7; answered by as_of K1 K2 K3 K7 = 4 -> reply rate 4/7
  Every non-spam message: 9, answered 5 (P1 got a thank-you) -> 5/9; automatic K7: 1 of 5 answered = 20 %
  Response hours: K7 1/60, K2 37, K3 66, K1 174 -> median (37+66)/2 = 51.5; p90 at rank 1+0.9*3 = 3.7:
    66 + 0.7*(174-66) = 141.6; mean (1/60+37+66+174)/4 = 69.2541...
  Response working days: K1 0 (received on a holiday, answered on the first working day after), K7 0,
    K2 2 (8 Oct passed, answered 9 Oct), K3 2 (Sat 10 Oct passed, answered Mon 12) -> median 1.0, p90 2.0, mean 1.0
  Posts: 20 Sep (before), 9 Oct, 12 Oct, 28 Oct, all 10:00 -> 3 posts; gaps 19 d (20 Sep -> 9 Oct, overlaps
    October: longest, over 14), 3 d, 16 d, and 3 d 14 h running at as_of -> days since last 3.5833
  Stats: 9 Oct reads 100 likes 5 shares 2 comments 3; 12 Oct reads 200 likes 10 shares 0 comments 1; 28 Oct none
    -> reads/post (100+200)/2 = 150; interaction/post (3+1 + 5+10 + 2+0)/2 = 10.5
Account 示例县发布微博 (weibo, 政务公开办): posts 26 Sep, then 1, 8, 15, 22, 29 Oct at 09:00 -> 5 posts, longest
  gap 7 d, days since 2.625. One comment K10 Thu 15 Oct 10:00 answered 11:00 (1 h, 0 working days): first due
  end 16 Oct, resolution end 22 Oct: both on time; reply rate 1/1.
Account 示例县发布 (wechat): never posted, no messages -> silent the whole 31 days: over the limit.
Organisation 示例县人民政府 (all three): posts 8, received 11, need 8, answered 5 -> 62.5 %; first answer 3 on
  time / 4 late -> 42.86 %; resolution 4 / 2 -> 66.67 %; backlog 4; automatic 1 of 6 answered; response hours
  [1/60, 1, 37, 66, 174] -> median 37, p90 at rank 4.6: 66 + 0.6*108 = 130.8; working days [0,0,0,2,2] ->
  median 0, p90 2.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.config import Config
from bot.context import Context
from bot.models import Account, Department, Message, Post, Publication, Reply, Ticket, User
from bot.oversight.reports import (
    Report,
    ReportError,
    compute_report,
    conclusions,
    interpolate,
    month_period,
    resolve_scope,
    to_csv,
    weighted_percentile,
)
from bot.seed import sync_from_config

TZ = ZoneInfo("Asia/Shanghai")
MADE_ON = datetime(2026, 11, 5, 9, 0, tzinfo=TZ)
ZJ, WB, FB = "示例县住建", "示例县发布微博", "示例县发布"


def L(m: int, d: int, h: int = 0, mi: int = 0) -> datetime:  # noqa: N802 - a local time, read like a date
    return datetime(2026, m, d, h, mi, tzinfo=TZ)


@pytest.fixture(params=["sqlite", "postgresql"])
def rctx(request: pytest.FixtureRequest, make_config: Callable[..., Config],
         open_ctx: Callable[[Config], Context]) -> Iterator[Context]:
    """A seeded context on a fresh SQLite file, or on a fresh PostgreSQL database (conftest's pg_database)."""
    if request.param == "sqlite":
        yield open_ctx(make_config())
        return
    cfg = make_config({"database": {"url": request.getfixturevalue("pg_database")}})
    ctx = Context.open(cfg)
    with ctx.session() as s:
        sync_from_config(session=s, config=cfg)
    yield ctx
    ctx.close()


class Data:
    def __init__(self, ctx: Context, session) -> None:
        self.ctx, self.s = ctx, session
        self.acc = {a.name: a for a in session.exec(select(Account))}
        self.dept = {d.name: d.id for d in session.exec(select(Department))}
        self.author = session.exec(select(User)).first()
        self.n = 0

    def message(self, account: str, kind: str, received: datetime, *, replied: datetime | None = None,
                needs: bool = True, spam: bool = False, intent: str = "complaint", auto: bool = False) -> Message:
        self.n += 1
        acc = self.acc[account]
        m = Message(account_id=acc.id, kind=kind, dedupe_key=f"r{self.n}", text="留言", received_at=received,
                    intent=intent, spam=spam, needs_answer=needs and not spam, department_id=acc.department_id,
                    replied_at=replied)
        self.s.add(m)
        self.s.flush()
        if replied is not None:
            self.s.add(Reply(message_id=m.id, account_id=acc.id, automatic=auto, channel="wechat_comment",
                             text="答复", state="sent", created_at=replied, sent_at=replied,
                             faq_rule="faq" if auto else None, author_id=None if auto else self.author.id))
        return m

    def ticket(self, m: Message, first_due: datetime, resolution_due: datetime, *, first: datetime | None = None,
               answered: datetime | None = None, closed: tuple[str, datetime] | None = None) -> None:
        cal, tz = self.ctx.calendar, self.ctx.tz
        # The hand-computed deadlines above agree with the calendar's.
        assert cal.due_at_utc(m.received_at, 1, tz) == first_due
        assert cal.due_at_utc(m.received_at, 5, tz) == resolution_due
        state = "closed" if closed else "answered" if answered and answered < MADE_ON else "new"
        self.s.add(Ticket(message_id=m.id, department_id=m.department_id, intent=m.intent, state=state,
                          created_at=m.received_at, first_response_due=first_due, resolution_due=resolution_due,
                          warn_at=first_due, first_response_at=first, answered_at=answered,
                          close_reason=closed[0] if closed else None, closed_at=closed[1] if closed else None))

    def post(self, account: str, when: datetime, **stats: int) -> None:
        p = Post(title="通知", body="正文", author_id=self.author.id, content_hash="h", status="published")
        self.s.add(p)
        self.s.flush()
        self.s.add(Publication(post_id=p.id, account_id=self.acc[account].id, state="published", due_at=when,
                               next_attempt_at=when, published_at=when, **stats))


@pytest.fixture
def dataset(rctx: Context) -> Context:
    with rctx.session() as s:
        d = Data(rctx, s)
        k1 = d.message(ZJ, "wechat_message", L(10, 1, 10), replied=L(10, 8, 16))
        d.ticket(k1, L(10, 9), L(10, 14), first=L(10, 8, 16), answered=L(10, 13, 11))
        k2 = d.message(ZJ, "wechat_message", L(10, 7, 20), replied=L(10, 9, 9))
        d.ticket(k2, L(10, 9), L(10, 14), first=L(10, 9, 9), answered=L(10, 14, 10))
        k3 = d.message(ZJ, "wechat_comment", L(10, 9, 15), replied=L(10, 12, 9))
        d.ticket(k3, L(10, 11), L(10, 16), first=L(10, 12, 9), answered=L(10, 15, 17))
        k4 = d.message(ZJ, "wechat_comment", L(10, 29, 10))
        d.ticket(k4, L(10, 31), L(11, 6))
        k5 = d.message(ZJ, "wechat_comment", L(10, 30, 14))
        d.ticket(k5, L(11, 3), L(11, 7))
        k6 = d.message(ZJ, "wechat_comment", L(10, 12, 9), spam=True)
        d.ticket(k6, L(10, 14), L(10, 20), closed=("spam", L(10, 12, 10)))
        k7 = d.message(ZJ, "wechat_message", L(10, 20, 9), replied=L(10, 20, 9, 1), intent="question", auto=True)
        d.ticket(k7, L(10, 22), L(10, 28), first=L(10, 20, 9, 1), answered=L(10, 22, 10))
        k8 = d.message(ZJ, "wechat_comment", L(9, 29, 9))
        d.ticket(k8, L(10, 1), L(10, 13))
        k9 = d.message(ZJ, "wechat_comment", L(10, 16, 10), replied=L(11, 2, 9))
        d.ticket(k9, L(10, 20), L(10, 24), first=L(11, 2, 9), answered=L(11, 2, 9))
        d.message(ZJ, "wechat_comment", L(10, 21, 12), replied=L(10, 21, 13), needs=False, intent="praise")
        d.message(ZJ, "wechat_comment", L(10, 22, 12), needs=False, intent="praise")
        d.post(ZJ, L(9, 20, 10))
        d.post(ZJ, L(10, 9, 10), reads=100, likes=5, shares=2, comments=3)
        d.post(ZJ, L(10, 12, 10), reads=200, likes=10, shares=0, comments=1)
        d.post(ZJ, L(10, 28, 10))

        k10 = d.message(WB, "weibo_comment", L(10, 15, 10), replied=L(10, 15, 11), intent="question")
        d.ticket(k10, L(10, 17), L(10, 23), first=L(10, 15, 11), answered=L(10, 15, 11))
        for day in ((9, 26), (10, 1), (10, 8), (10, 15), (10, 22), (10, 29)):
            d.post(WB, L(*day, 9))
    return rctx


def report_for(ctx: Context, **scope: str) -> Report:
    start, end = month_period("2026-10", ctx.tz)
    with ctx.session() as s:
        sc = resolve_scope(session=s, **scope)
        return compute_report(session=s, config=ctx.config, calendar=ctx.calendar, scope=sc, start=start, end=end,
                              now=MADE_ON)


def test_account_figures_by_hand(dataset: Context) -> None:
    r = report_for(dataset, account=ZJ)
    assert r.as_of == L(11, 1) and [row.name for row in r.rows] == [ZJ]
    f = r.rows[0].figures
    assert (f.messages, f.comments, f.received, f.spam) == (3, 7, 10, 1)
    assert (f.need_answer, f.replied, f.reply_rate) == (7, 4, pytest.approx(4 / 7))
    assert (f.answered, f.reply_rate_all, f.auto_answered, f.auto_share) == (5, pytest.approx(5 / 9), 1, 0.2)
    assert f.tickets == 7
    assert (f.first_on_time, f.first_late, f.first_response_on_time_rate) == (2, 4, pytest.approx(2 / 6))
    assert (f.resolution_on_time, f.resolution_late, f.resolution_on_time_rate) == (3, 2, pytest.approx(0.6))
    assert f.backlog == 4
    assert f.response_hours_median == pytest.approx(51.5)
    assert f.response_hours_p90 == pytest.approx(141.6)
    assert f.response_hours_mean == pytest.approx((1 / 60 + 37 + 66 + 174) / 4)
    assert (f.response_workdays_median, f.response_workdays_p90, f.response_workdays_mean) == (1.0, 2.0, 1.0)
    assert f.posts == 3 and f.last_post_at == L(10, 28, 10)
    assert f.days_since_last_post == pytest.approx(3 + 14 / 24)
    assert f.longest_silence_days == pytest.approx(19.0) and f.over_limit
    assert (f.posts_with_stats, f.reads_per_post, f.interaction_per_post) == (2, 150.0, 10.5)


def test_organisation_totals_and_departments(dataset: Context) -> None:
    r = report_for(dataset, organisation="示例县人民政府")
    rows = {row.name: row.figures for row in r.rows}
    wb, fb = rows[WB], rows[FB]
    assert (wb.posts, wb.longest_silence_days, wb.days_since_last_post, wb.over_limit) == (
        5, pytest.approx(7.0), pytest.approx(2.625), False)
    assert (wb.comments, wb.need_answer, wb.replied, wb.first_on_time, wb.resolution_on_time) == (1, 1, 1, 1, 1)
    assert (wb.response_hours_median, wb.response_workdays_median) == (pytest.approx(1.0), 0.0)
    assert (fb.posts, fb.last_post_at, fb.days_since_last_post, fb.longest_silence_days, fb.over_limit) == (
        0, None, None, pytest.approx(31.0), True)
    assert fb.reply_rate is None and fb.response_hours_median is None
    t = r.total
    assert (t.posts, t.received, t.need_answer, t.replied, t.reply_rate) == (8, 11, 8, 5, 0.625)
    assert (t.first_on_time, t.first_late, t.resolution_on_time, t.resolution_late) == (3, 4, 4, 2)
    assert t.first_response_on_time_rate == pytest.approx(3 / 7)
    assert t.resolution_on_time_rate == pytest.approx(4 / 6)
    assert (t.backlog, t.auto_answered, t.answered) == (4, 1, 6)
    assert t.response_hours_median == pytest.approx(37.0) and t.response_hours_p90 == pytest.approx(130.8)
    assert (t.response_workdays_median, t.response_workdays_p90) == (0.0, 2.0)
    assert t.longest_silence_days == pytest.approx(31.0)
    depts = {d.department: d for d in r.departments}
    zj = depts["住建局"]
    assert (zj.tickets, zj.first_on_time, zj.first_late, zj.resolution_on_time, zj.resolution_late, zj.backlog) == (
        7, 2, 4, 3, 2, 4)
    assert (depts["政务公开办"].tickets, depts["政务公开办"].resolution_on_time_rate) == (1, 1.0)


def test_department_scope_is_its_accounts(dataset: Context) -> None:
    r = report_for(dataset, department="政务公开办")
    assert sorted(row.name for row in r.rows) == sorted([WB, FB])
    assert r.total.received == 1 and r.total.posts == 5


def test_csv_and_conclusions(dataset: Context) -> None:
    r = report_for(dataset, organisation="示例县人民政府")
    table = list(csv.reader(io.StringIO(to_csv(r))))
    header = table[0]
    assert header[:8] == ["账号名称", "平台", "所属部门", "本月发布数", "最近更新日期", "距今天数", "最长未更新天数", "是否超过14天"]
    zj = next(row for row in table if row and row[0] == ZJ)
    col = dict(zip(header, zj, strict=True))
    assert (col["本月发布数"], col["最近更新日期"], col["最长未更新天数"], col["是否超过14天"]) == ("3", "2026-10-28", "19.0", "是")
    assert (col["回复率"], col["按时回复率"], col["按时办结率"], col["积压"]) == ("57.1%", "33.3%", "60.0%", "4")
    assert (col["中位响应时长(小时)"], col["90%响应时长(小时)"], col["自动回复占比"]) == ("51.5", "141.6", "20.0%")
    total = next(row for row in table if row and row[0] == "合计")
    assert dict(zip(header, total, strict=True))["回复率"] == "62.5%"
    lines = conclusions(r)
    assert lines[0].startswith("不合格（单项否决）：2 个账号超过 14 天未更新")
    assert any("按时答复率 42.9%，按时办结率 66.7%" in x for x in lines)
    assert any("未办结 4 件" in x for x in lines)


def test_percentile_helpers() -> None:
    vals = [1.0, 2.0, 4.0, 8.0]
    assert interpolate({2: 2.0, 3: 4.0}, 4, (1, 2)) == 3.0
    assert interpolate({3: 4.0, 4: 8.0}, 4, (9, 10)) == pytest.approx(4 + 0.7 * 4)
    assert interpolate({1: 5.0}, 1, (9, 10)) == 5.0 and interpolate({}, 0, (1, 2)) is None
    from collections import Counter
    assert weighted_percentile(Counter({0: 2, 2: 2}), (1, 2)) == 1.0
    assert weighted_percentile(Counter(int(v) for v in vals), (9, 10)) == pytest.approx(6.8)


def test_bad_periods(ctx: Context) -> None:
    for bad in ("2026-13", "2026/11", "Nov"):
        with pytest.raises(ReportError, match="expected YYYY-MM"):
            month_period(bad, "Asia/Shanghai")
    start, end = month_period("2026-12", "Asia/Shanghai")
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=TZ), datetime(2027, 1, 1, tzinfo=TZ))
    with ctx.session() as s, pytest.raises(ReportError, match="has not begun"):
        compute_report(session=s, config=ctx.config, calendar=ctx.calendar, scope=resolve_scope(session=s),
                       start=start, end=end, now=MADE_ON)


def _chart_report(n_accounts: int):
    from datetime import datetime

    from bot.oversight.reports import AccountRow, Figures, Report, Scope

    rows = []
    for i in range(1, n_accounts + 1):
        never = i % 2 == 0
        f = Figures(days_since_last_post=None if never else float(i % 17),
                    longest_silence_days=None if never else float(i % 17), need_answer=0 if i % 3 else 4,
                    replied=0 if i % 3 else 4, tickets=0)
        rows.append(AccountRow(account_id=i, name=f"账号{i}", platform="wechat", department="", figures=f))
    start = datetime(2026, 11, 1)
    return Report(scope=Scope("all", "全部账号", tuple(range(1, n_accounts + 1))), start=start,
                  end=datetime(2026, 12, 1), as_of=datetime(2026, 12, 1), timezone="Asia/Shanghai", limit_days=14,
                  warn_days=10, rows=rows, total=Figures())


def test_charts_draw_no_data_as_no_data_and_say_the_cut() -> None:
    from bot.oversight.charts import MAX_BARS, Labels, rates_figure, silence_figure

    labels = Labels(cjk=True)
    few = _chart_report(4)
    ax = silence_figure(few, labels).axes[0]
    assert len(ax.patches) == 2  # the two accounts that never posted get no bar at 0 days...
    assert sum("从未发布（无数据）" in t.get_text() for t in ax.texts) == 2  # ...but say so
    assert "共" not in ax.get_title()  # every account is drawn
    many = _chart_report(MAX_BARS + 10)
    assert f"{MAX_BARS} 个，共 {MAX_BARS + 10} 个账号" in silence_figure(many, labels).axes[0].get_title()
    rates = rates_figure(many, labels).axes[0]
    assert any(t.get_text() == "无数据" for t in rates.texts)  # on-time rates without tickets


def test_accounts_sort_by_the_numbers_in_their_names() -> None:
    from bot.oversight.reports import natural_key

    assert sorted(["#10", "#1", "#100", "#2", "账号9", "账号10"], key=natural_key) == [
        "#1", "#2", "#10", "#100", "账号9", "账号10"]
