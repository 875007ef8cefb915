"""The daily digest on known data: grouping by department, most overdue first, due today / next working
day, counts of the rest, silent accounts and failed publications; a past day rebuilt from timestamps."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.context import Context
from bot.models import Account, Department, DigestRun, Message, Post, Publication, Ticket, User
from bot.oversight.digest import (
    DigestError,
    collect_digest,
    digest_job,
    organisation_scopes,
    overdue_label,
    render_html,
    render_markdown,
)
from tests import test_reports

TZ = ZoneInfo("Asia/Shanghai")
# The context on SQLite and on PostgreSQL (GOVBOT_TEST_PG_URL), shared with the report tests.
rctx = test_reports.rctx
# Wednesday 18 November 2026, 09:00 in Shanghai: Mon 16 and Tue 17 are working days, as are Thu 19, Fri 20.
NOW = datetime(2026, 11, 18, 9, 0, tzinfo=TZ)
_seq = count(1)


def local(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=TZ)


def add_ticket(session, *, account: str, department: str | None, first_due: datetime, resolution_due: datetime,
               state: str = "new", created: datetime | None = None, first_response_at: datetime | None = None,
               answered_at: datetime | None = None, closed_at: datetime | None = None,
               text: str = "小区门口路灯坏了很久没人修", intent: str = "complaint") -> int:
    acc = session.exec(select(Account).where(Account.name == account)).one()
    dept = session.exec(select(Department).where(Department.name == department)).one() if department else None
    created = created or first_due - timedelta(days=2)
    n = next(_seq)
    msg = Message(account_id=acc.id, kind="wechat_comment", dedupe_key=f"d{n}", text=text, received_at=created,
                  intent=intent, needs_answer=True, department_id=dept.id if dept else None,
                  replied_at=first_response_at)
    session.add(msg)
    session.flush()
    t = Ticket(message_id=msg.id, department_id=dept.id if dept else None, intent=intent, state=state,
               created_at=created, first_response_due=first_due, resolution_due=resolution_due,
               warn_at=first_due, first_response_at=first_response_at, answered_at=answered_at, closed_at=closed_at)
    session.add(t)
    session.flush()
    return t.id


def add_publication(session, *, account: str, state: str, when: datetime, title: str = "通知",
                    error: str | None = None) -> None:
    acc = session.exec(select(Account).where(Account.name == account)).one()
    author = session.exec(select(User)).first()
    post = Post(title=title, body="正文", author_id=author.id, content_hash="h", status="published")
    session.add(post)
    session.flush()
    session.add(Publication(post_id=post.id, account_id=acc.id, state=state, due_at=when, next_attempt_at=when,
                            published_at=when if state == "published" else None, last_error=error))


@pytest.fixture
def data(ctx: Context) -> dict[str, int]:
    ids = {}
    with ctx.session() as s:
        # 住建局: three overdue (T2 most, then T1, then T3 by hours), one due today, one next working day, one later.
        ids["T1"] = add_ticket(s, account="示例县住建", department="住建局",
                               first_due=local(2026, 11, 17), resolution_due=local(2026, 11, 24))
        ids["T2"] = add_ticket(s, account="示例县住建", department="住建局",
                               first_due=local(2026, 11, 13), resolution_due=local(2026, 11, 20))
        ids["T3"] = add_ticket(s, account="示例县发布", department="住建局", state="acknowledged",
                               first_due=local(2026, 11, 12), resolution_due=local(2026, 11, 18),
                               first_response_at=local(2026, 11, 11, 10))
        ids["T4"] = add_ticket(s, account="示例县住建", department="住建局",
                               first_due=local(2026, 11, 19), resolution_due=local(2026, 11, 25))
        ids["T5"] = add_ticket(s, account="示例县住建", department="住建局", state="acknowledged",
                               first_due=local(2026, 11, 17), resolution_due=local(2026, 11, 20),
                               first_response_at=local(2026, 11, 16, 15))
        ids["T6"] = add_ticket(s, account="示例县住建", department="住建局",
                               first_due=local(2026, 11, 25), resolution_due=local(2026, 12, 2),
                               created=local(2026, 11, 17, 20))
        # Answered and closed tickets are not in the digest of today.
        ids["T7"] = add_ticket(s, account="示例县住建", department="住建局", state="answered",
                               first_due=local(2026, 11, 17), resolution_due=local(2026, 11, 20),
                               created=local(2026, 11, 13, 8), first_response_at=local(2026, 11, 17, 9),
                               answered_at=local(2026, 11, 17, 9))
        ids["T8"] = add_ticket(s, account="示例县住建", department="住建局", state="closed",
                               first_due=local(2026, 11, 16), resolution_due=local(2026, 11, 20),
                               closed_at=local(2026, 11, 14, 9))
        # 人社局: one due today, one later. A ticket with no department goes to the first organisation.
        ids["T9"] = add_ticket(s, account="示例县发布", department="人社局", intent="question",
                               first_due=local(2026, 11, 19), resolution_due=local(2026, 11, 25))
        ids["T10"] = add_ticket(s, account="示例县发布", department="人社局",
                                first_due=local(2026, 11, 27), resolution_due=local(2026, 12, 4),
                                created=local(2026, 11, 17, 10))
        ids["T11"] = add_ticket(s, account="示例县发布", department=None,
                                first_due=local(2026, 11, 18, 6), resolution_due=local(2026, 11, 25))
        # Accounts: 发布 last posted 12 days ago (warn), 住建 never (limit), 微博 yesterday (ok).
        add_publication(s, account="示例县发布", state="published", when=NOW - timedelta(days=12))
        add_publication(s, account="示例县发布微博", state="published", when=NOW - timedelta(days=1))
        add_publication(s, account="示例县住建", state="failed", when=NOW - timedelta(days=2),
                        title="供暖通知", error="errcode 45009: reach max api daily quota limit")
        add_publication(s, account="示例县住建", state="failed", when=NOW - timedelta(days=30), title="旧通知")
    return ids


def build(ctx: Context, day: date = NOW.date(), now: datetime = NOW):
    with ctx.session() as s:
        scope = organisation_scopes(session=s, config=ctx.config)[0]
        return collect_digest(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, day=day, now=now)


def test_groups_by_department_most_overdue_first(ctx: Context, data: dict[str, int]) -> None:
    d = build(ctx)
    assert [x.name for x in d.departments] == ["住建局", "未分派部门", "人社局"]
    zj = d.departments[0]
    assert [t.ticket_id for t in zj.overdue] == [data["T2"], data["T1"], data["T3"]]
    # T2 was due at the end of Thu 12 Nov: Fri 13, Mon 16 and Tue 17 have passed -> 3 working days.
    # T1 was due at the end of Mon 16: Tue 17 has passed -> 1 working day.
    # T3 (acknowledged, so the resolution deadline counts) ended at 00:00 today -> 9 hours.
    assert [overdue_label(t) for t in zj.overdue] == ["逾期 3 个工作日", "逾期 1 个工作日", "逾期 9 小时"]
    assert [t.deadline for t in zj.overdue] == ["first_response", "first_response", "resolution"]
    assert [t.ticket_id for t in zj.due_today] == [data["T4"]]
    assert [t.ticket_id for t in zj.due_next] == [data["T5"]]
    assert (zj.overdue_count, zj.due_today_count, zj.due_next_count, zj.later_count, zj.total) == (3, 1, 1, 1, 6)
    rs = d.departments[2]
    assert (rs.overdue_count, rs.due_today_count, rs.due_next_count, rs.later_count) == (0, 1, 0, 1)
    assert [t.ticket_id for t in rs.due_today] == [data["T9"]]
    assert [t.ticket_id for t in d.departments[1].overdue] == [data["T11"]]
    assert (d.unanswered, d.overdue, d.due_today, d.due_next, d.later) == (9, 4, 2, 1, 2)
    assert d.next_workday == date(2026, 11, 19)


def test_accounts_near_the_limit_and_failed_publications(ctx: Context, data: dict[str, int]) -> None:
    d = build(ctx)
    assert [(g.account_name, g.level) for g in d.accounts] == [("示例县住建", "limit"), ("示例县发布", "warn")]
    assert [(p.account, p.title) for p in d.failed_publications] == [("示例县住建", "供暖通知")]
    assert d.failed_older == 1


def test_listing_limit_keeps_counts_complete(ctx: Context, data: dict[str, int]) -> None:
    with ctx.session() as s:
        scope = organisation_scopes(session=s, config=ctx.config)[0]
        d = collect_digest(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, day=NOW.date(),
                           now=NOW, limit=2)
    zj = d.departments[0]
    assert [t.ticket_id for t in zj.overdue] == [data["T2"], data["T1"]]
    assert zj.due_today == [] and zj.overdue_count == 3 and zj.unlisted == 3
    assert "另有 1 件未列出" in render_markdown(d)


def test_past_day_rebuilt_from_timestamps(ctx: Context, data: dict[str, int]) -> None:
    # At 08:30 on Mon 16 Nov: T7 (answered on Tue 17) was still open and due that day; T8 was closed on
    # the 14th; T6 did not exist yet. T1's and T5's first-response deadlines were the end of that day
    # (T5's first answer came at 15:00, after the digest).
    d = build(ctx, day=date(2026, 11, 16))
    zj = next(x for x in d.departments if x.name == "住建局")
    assert [t.ticket_id for t in zj.overdue] == [data["T2"]]
    assert [t.ticket_id for t in zj.due_today] == [data["T1"], data["T5"], data["T7"]]
    assert zj.total == 5  # T1 T2 T3 T5 T7 (T4 arrived on the 17th)
    # T3 had its first answer on the 11th, so its resolution deadline (end of Tue 17) is the next working day.
    assert data["T3"] in [t.ticket_id for t in zj.due_next]
    with pytest.raises(DigestError, match="future"):
        build(ctx, day=date(2026, 11, 19))


def test_rendering(ctx: Context, data: dict[str, int]) -> None:
    d = build(ctx)
    md = render_markdown(d)
    assert md.startswith("# 示例县人民政府 未答复留言日报 2026-11-18\n")
    assert "未答复 **9** 件，其中逾期 **4** 件，今天到期 2 件，明天（11月19日 周四）到期 1 件，其余 2 件" in md
    assert md.index("## 住建局") < md.index("## 未分派部门") < md.index("## 人社局")
    assert md.index(f"#{data['T2']} 逾期 3 个工作日") < md.index(f"#{data['T1']} 逾期 1 个工作日")
    assert "超限：示例县住建（微信公众号）从未发布" in md
    assert "《供暖通知》" in md and "另有 1 条更早的发布失败记录" in md
    html = render_html(d)
    assert "<h2" in html and "逾期 3 个工作日" in html and "&lt;" not in md
    assert html.count("<tr style=\"border-top") == 9 - 2  # listed: every ticket but the two "later" ones


def test_job_writes_once_a_day_after_digest_time(ctx: Context, data: dict[str, int]) -> None:
    early = datetime(2026, 11, 18, 8, 0, tzinfo=TZ)  # before the 08:30 digest time
    assert digest_job(ctx, now=early) == []
    first = digest_job(ctx, now=NOW)
    assert len(first) == 1 and first[0].digest.unanswered == 9
    assert digest_job(ctx, now=NOW + timedelta(minutes=1)) == []
    with ctx.session() as s:
        runs = s.exec(select(DigestRun)).all()
    assert len(runs) == 1 and runs[0].day == "2026-11-18" and "住建局" in runs[0].markdown


def test_citizen_text_cannot_inject_markdown(ctx: Context) -> None:
    with ctx.session() as s:
        tid = add_ticket(s, account="示例县住建", department="住建局", first_due=local(2026, 11, 17),
                         resolution_due=local(2026, 11, 24), text="点[这里](http://evil.example) <font>**急**</font>")
    md = render_markdown(build(ctx))
    line = next(x for x in md.splitlines() if x.startswith(f"- #{tid} "))
    assert "[" not in line and "](" not in line and "<" not in line and "**" not in line
    assert "点［这里］(http://evil.example) ＜font＞＊＊急＊＊＜/" in line


def test_job_and_past_day_on_sqlite_and_postgresql(rctx: Context) -> None:
    with rctx.session() as s:
        t_over = add_ticket(s, account="示例县住建", department="住建局", first_due=local(2026, 11, 13),
                            resolution_due=local(2026, 11, 20))
        t_unassigned = add_ticket(s, account="示例县发布", department=None, first_due=local(2026, 11, 19),
                                  resolution_due=local(2026, 11, 25), created=local(2026, 11, 17, 9))
        add_publication(s, account="示例县住建", state="failed", when=NOW - timedelta(days=2), title="供暖通知")
    (out,) = digest_job(rctx, now=NOW)
    d = out.digest
    assert [(x.name, [t.ticket_id for t in x.overdue + x.due_today]) for x in d.departments] == [
        ("住建局", [t_over]), ("未分派部门", [t_unassigned])]
    assert [p.title for p in d.failed_publications] == ["供暖通知"]
    assert digest_job(rctx, now=NOW + timedelta(minutes=1)) == []
    past = build(rctx, day=date(2026, 11, 16))
    assert past.unanswered == 1  # the unassigned ticket arrived on the 17th
