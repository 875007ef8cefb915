"""Inspection readiness on a hand-built month (November 2026, made on 2 Dec 09:00, so as_of = 1 Dec 00:00):

  示例县住建 (wechat): posts 30 Oct, 3 Nov, 18 Nov (its body says “付县长”, a typo the checks catch now),
      21, 25, 28 Nov, all 10:00 -> a 15-day gap 3 -> 18 Nov (single veto: fails); 5 posts in the month.
  示例县发布微博 (weibo): posts 29 Oct, then every 4 days 2 ... 30 Nov at 09:00 (8 in Nov); one comment Mon
      16 Nov 10:00, first answer due end of Tue 17 Nov, answered Thu 19 Nov 09:00: late (scored item).
  示例县发布 (wechat): posts 28 Oct, then every 4 days 1 ... 29 Nov at 10:00 (8 in Nov); one message Tue 10 Nov
      10:00 answered 15:00 the same day: clean.
"""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from docx import Document
from sqlmodel import select

from bot.context import Context
from bot.errors import GovbotError, PermissionDenied
from bot.inspection.checklist import ChecklistError, parse_checklist
from bot.inspection.documents import annual_docx, selfcheck_docx, selfcheck_html
from bot.inspection.evaluate import AccountFacts, TicketFacts, evaluate_account
from bot.inspection.selfcheck import annual_rows, build_selfcheck, public_reply_counts
from bot.inspection.service import complete_rectification, load, record_findings, status_for
from bot.models import Account, Message, Post, Publication, Rectification, Reply, Ticket, User
from bot.oversight.reports import compute_report, month_period, resolve_scope

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=TZ)
ZJ, WB, FB = "示例县住建", "示例县发布微博", "示例县发布"


def L(m: int, d: int, h: int = 0, mi: int = 0) -> datetime:  # noqa: N802 - a local time, read like a date
    return datetime(2026, m, d, h, mi, tzinfo=TZ)


@pytest.fixture
def month(ctx: Context) -> dict[str, int]:
    ids: dict[str, int] = {}
    with ctx.session() as s:
        acc = {a.name: a for a in s.exec(select(Account))}
        author = s.exec(select(User)).first()

        def post(account: str, when: datetime, body: str = "<p>本周政务动态。</p>") -> int:
            p = Post(title="政务动态", body=body, author_id=author.id, content_hash="h", status="published")
            s.add(p)
            s.flush()
            s.add(Publication(post_id=p.id, account_id=acc[account].id, state="published", due_at=when,
                              next_attempt_at=when, published_at=when))
            return p.id

        def message(account: str, kind: str, received: datetime, answered: datetime) -> int:
            a = acc[account]
            m = Message(account_id=a.id, kind=kind, dedupe_key=f"m{received:%d%H}", text="路灯坏了", intent="complaint",
                        received_at=received, needs_answer=True, department_id=a.department_id, replied_at=answered)
            s.add(m)
            s.flush()
            s.add(Reply(message_id=m.id, account_id=a.id, channel="weibo_comment" if kind == "weibo_comment"
                        else "wechat_custom", text="已转相关部门处理", state="sent", created_at=answered,
                        sent_at=answered, author_id=author.id))
            t = Ticket(message_id=m.id, department_id=a.department_id, intent="complaint", state="answered",
                       created_at=received, first_response_due=ctx.calendar.due_at_utc(received, 1, TZ),
                       resolution_due=ctx.calendar.due_at_utc(received, 5, TZ), warn_at=received,
                       first_response_at=answered, answered_at=answered)
            s.add(t)
            s.flush()
            return t.id

        for when in (L(10, 30, 10), L(11, 3, 10), L(11, 21, 10), L(11, 25, 10), L(11, 28, 10)):
            post(ZJ, when)
        ids["typo_post"] = post(ZJ, L(11, 18, 10), "<p>付县长主持召开专题会议。</p>")
        for when in [L(10, 29, 9)] + [L(11, d, 9) for d in range(2, 31, 4)]:
            post(WB, when)
        for when in [L(10, 28, 10)] + [L(11, d, 10) for d in range(1, 30, 4)]:
            post(FB, when)
        assert ctx.calendar.due_at_utc(L(11, 16, 10), 1, TZ) == L(11, 18)  # end of Tue 17 Nov
        ids["late"] = message(WB, "weibo_comment", L(11, 16, 10), L(11, 19, 9))
        ids["on_time"] = message(FB, "wechat_message", L(11, 10, 10), L(11, 10, 15))
        s.commit()
    return ids


def statuses(ctx: Context):
    start, end = month_period("2026-11", ctx.tz)
    with ctx.session() as s:
        return status_for(session=s, config=ctx.config, calendar=ctx.calendar, scope=resolve_scope(session=s),
                          start=start, end=end, now=NOW)


EXPECTED = {
    ZJ: ("fail", {"no_update": "fail", "serious_wording_error": "fail"}),
    WB: ("risk", {"late_answers": "fail"}),
    FB: ("pass", {}),
}


def test_status_per_indicator_and_account(ctx: Context, month: dict[str, int]) -> None:
    got = {st.facts.name: st for st in statuses(ctx)}
    checklist = load(ctx.config)
    manual = {i.id for i in checklist.indicators if i.measure == "manual"}
    assert manual == {"secret_leak", "no_interaction_function"}
    for name, (overall, failing) in EXPECTED.items():
        st = got[name]
        assert st.overall == overall, name
        for r in st.results:
            want = failing.get(r.indicator.id, "manual" if r.indicator.id in manual else "pass")
            assert r.status == want, (name, r.indicator.id, r.summary)
    gap = got[ZJ].result("no_update")
    assert [e.text for e in gap.evidence] == ["2026-11-03 至 2026-11-18，15 天无更新"]
    (typo,) = got[ZJ].result("serious_wording_error").evidence
    assert typo.ref == month["typo_post"] and "付县长" in typo.text and "副县长" in typo.text
    (late,) = got[WB].result("late_answers").evidence
    assert late.ref == month["late"] and "2026-11-17" in late.text and "2026-11-19" in late.text


def test_warnings_before_a_single_veto_trips(ctx: Context) -> None:
    checklist = load(ctx.config)
    start, as_of = L(11, 1), L(11, 25, 12)
    facts = AccountFacts(1, "甲", "wechat", "住建局", start, as_of, publish_times=(L(11, 14, 12),),
                         tickets=(TicketFacts(7, 70, L(11, 23, 9), L(11, 27), None, True, workdays_left=1),))
    st = evaluate_account(checklist, facts, "Asia/Shanghai")
    assert st.result("no_update").status == "risk" and "11 天" in st.result("no_update").summary
    assert st.result("unanswered_overdue").status == "risk"
    assert st.overall == "risk"
    overdue = AccountFacts(1, "甲", "wechat", "住建局", start, as_of, publish_times=(L(11, 24),),
                           tickets=(TicketFacts(7, 70, L(11, 20, 9), L(11, 24), None, True, workdays_left=None),))
    st = evaluate_account(checklist, overdue, "Asia/Shanghai")
    assert st.result("unanswered_overdue").status == "fail" and st.overall == "fail"


def test_findings_become_rectifications_once_and_are_completed(ctx: Context, month: dict[str, int]) -> None:
    sts = statuses(ctx)
    with ctx.session() as s:
        new = record_findings(session=s, statuses=sts, day=L(12, 2).date())
        again = record_findings(session=s, statuses=sts, day=L(12, 3).date())
        s.commit()
        assert sorted(r.indicator for r in new) == ["late_answers", "no_update", "serious_wording_error"]
        assert again == []
        rect = next(r for r in new if r.indicator == "no_update")
        editor = s.exec(select(User).where(User.username == "xuanchuan")).one()  # 政务公开办, not 住建局
        admin = s.exec(select(User).where(User.username == "admin")).one()
        with pytest.raises(PermissionDenied) as refused:
            complete_rectification(session=s, rectification_id=rect.id, user=editor, measure="补发", fixed_on=None)
        assert "只有管理员" in refused.value.message_zh
        with pytest.raises(GovbotError) as too_early:
            complete_rectification(session=s, rectification_id=rect.id, user=admin, measure="补发",
                                   fixed_on=L(11, 1).date())
        assert "不能早于" in too_early.value.message_zh
        complete_rectification(session=s, rectification_id=rect.id, user=admin, measure="建立更新台账，每周至少发布两篇",
                               fixed_on=L(12, 2).date())
        s.commit()
        assert s.get(Rectification, rect.id).fixed_by == "admin"


def test_selfcheck_report_states_the_findings_and_matches_the_monthly_report(ctx: Context, month) -> None:
    start, end = month_period("2026-11", ctx.tz)
    with ctx.session() as s:
        record_findings(session=s, statuses=statuses(ctx), day=L(12, 2).date())
        s.commit()
        scope = resolve_scope(session=s, organisation="示例县人民政府")
        sc = build_selfcheck(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, start=start, end=end,
                             now=NOW)
        report = compute_report(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, start=start,
                                end=end, now=NOW)
    text = "\n".join(sc.findings_text())
    assert "监测时间点前2周内无更新（单项否决）：1 个账号不合格（示例县住建）" in text
    assert "出现严重表述错误（单项否决）：1 个账号不合格（示例县住建）" in text
    assert "留言答复不及时：1 个账号不合格（示例县发布微博）" in text
    assert "泄露国家秘密" in text and "人工核查" in text
    html = selfcheck_html(sc)
    for needle in ("2026-11-03 至 2026-11-18，15 天无更新", "付县长", "单项否决不合格账号", "整改中"):
        assert needle in html
    doc = Document(io.BytesIO(selfcheck_docx(sc)))
    overview = {row.cells[0].text: row.cells[1].text for row in doc.tables[0].rows[1:]}
    t = report.total
    assert overview["发布信息"] == f"{t.posts} 篇" == "21 篇"
    assert overview["需答复留言"] == f"{t.need_answer} 条，已答复 {t.replied} 条" == "2 条，已答复 2 条"
    assert overview["按时答复率"] == "50.0%" and overview["单项否决不合格账号"] == "1 个"
    body = "\n".join(p.text for p in doc.paragraphs)
    assert "2026-11-03 至 2026-11-18，15 天无更新" in body and "付县长" in body
    results = {row.cells[0].text: row.cells[2].text for row in doc.tables[1].rows[1:]}
    assert results == {ZJ: "不合格", WB: "风险", FB: "合格"}
    rect_rows = [[c.text for c in row.cells] for row in doc.tables[2].rows[1:]]
    assert len(rect_rows) == 3 and all(r[3] == "整改中" for r in rect_rows)


def test_annual_figures_equal_the_reports(ctx: Context, month) -> None:
    from bot.inspection.selfcheck import year_period

    start, end = year_period("2026", ctx.tz)
    with ctx.session() as s:
        scope = resolve_scope(session=s)
        report = compute_report(session=s, config=ctx.config, calendar=ctx.calendar, scope=scope, start=start,
                                end=end, now=NOW)
        rows = annual_rows(report, public_reply_counts(session=s, report_rows=report.rows, start=start, end=end))
    by_name = {r[0]: r for r in rows}
    assert by_name[WB][3] == "9" and by_name[WB][6:9] == ["1", "1", "1"]  # 9 posts in 2026, 1 public comment reply
    assert by_name[FB][8] == "0"  # a private message answer is not a public reply
    doc = Document(io.BytesIO(annual_docx(rows, year="2026", scope_name="示例县人民政府")))
    assert [c.text for c in doc.tables[0].rows[1].cells] == rows[0]


@pytest.mark.parametrize("bad, reason", [
    ({"meta": {"name": "x"}}, "needs name and source"),
    ({"meta": {"name": "x", "source": "y"}, "indicator": [{"id": "a", "group": "g", "name": "n", "veto": True,
                                                             "measure": "weather", "source": "s"}]}, "unknown measure"),
    ({"meta": {"name": "x", "source": "y"}, "indicator": [{"id": "a", "group": "g", "name": "n", "veto": True,
                                                             "measure": "longest_gap", "source": "s", "fail_at": 10,
                                                             "warn_at": 14}]}, "warn_at must be smaller"),
    ({"meta": {"name": "x", "source": "y"}, "indicator": [{"id": "a", "group": "g", "name": "n", "veto": "yes",
                                                             "measure": "manual", "source": "s"}]}, "veto must be"),
    ({"meta": {"name": "x", "source": "y"}, "indicator": [{"id": "a", "group": "g", "name": "n", "veto": True,
                                                             "measure": "late_answers", "source": "s"}]}, "needs fail_at"),
])
def test_a_bad_checklist_names_the_file_the_indicator_and_the_reason(bad, reason) -> None:
    with pytest.raises(ChecklistError, match=reason) as exc:
        parse_checklist(bad, file="rules/inspection.toml")
    assert str(exc.value).startswith("rules/inspection.toml")


def test_the_shipped_checklist_loads(ctx: Context) -> None:
    checklist = load(ctx.config)
    assert {i.id for i in checklist.indicators if i.veto} >= {"no_update", "serious_wording_error", "unanswered_overdue"}
    assert all(i.source for i in checklist.indicators)
