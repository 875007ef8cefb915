"""The 自查报告 draft and the 年度报表 figures, computed from the data (never typed).

A self-inspection report has the structure offices use: overview figures (基本情况), what each indicator
found with its evidence (检查发现的问题), the rectification list (整改情况) and the accounts suggested for
closing or merging (关停整合建议). Its figures come from the monthly report's computation over the same period
(bot/oversight/reports.compute_report), so both always agree.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session, select

from bot.clock import to_local, to_utc, utcnow
from bot.config import Config
from bot.inspection.checklist import Checklist
from bot.inspection.evaluate import STATUS_ZH, AccountStatus, Summary, summarise
from bot.inspection.service import list_rectifications, load, status_for
from bot.models import Account, Rectification
from bot.oversight.reports import (
    PLATFORM_ZH,
    AccountRow,
    Report,
    ReportError,
    Scope,
    compute_report,
    num,
    pct,
)
from bot.tickets.calendar import WorkCalendar

_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
_YEAR = re.compile(r"^(\d{4})$")


def quarter_period(text: str, tz: str) -> tuple[datetime, datetime]:
    """"2026Q4" (or 2026-Q4) -> [1 Oct, 1 Jan) local, as aware UTC."""
    m = _QUARTER.match(text.strip())
    if not m or not 1900 < int(m.group(1)) < 9999:
        raise ReportError("inspection.bad_quarter", value=text)
    year, q = int(m.group(1)), int(m.group(2))
    first = date(year, 3 * q - 2, 1)
    nxt = date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1)
    return to_utc(datetime.combine(first, time(0)), tz), to_utc(datetime.combine(nxt, time(0)), tz)


def year_period(text: str, tz: str) -> tuple[datetime, datetime]:
    m = _YEAR.match(text.strip())
    if not m or not 1900 < int(m.group(1)) < 9999:
        raise ReportError("inspection.bad_year", value=text)
    year = int(m.group(1))
    return (to_utc(datetime.combine(date(year, 1, 1), time(0)), tz),
            to_utc(datetime.combine(date(year + 1, 1, 1), time(0)), tz))


@dataclass
class MergeCandidate:
    name: str
    platform: str
    posts_per_30: float
    messages_per_30: float


@dataclass
class SelfCheck:
    report: Report  # the monthly report's figures over the same period and scope
    checklist: Checklist
    statuses: list[AccountStatus]
    summaries: list[Summary]
    rectifications: list[tuple[Rectification, str]]  # with the account's name
    merge: list[MergeCandidate]
    made_at: datetime  # local

    @property
    def failing_accounts(self) -> list[AccountStatus]:
        return [s for s in self.statuses if s.overall == "fail"]

    def overview(self) -> list[tuple[str, str]]:
        t = self.report.total
        by_platform = {}
        for r in self.report.rows:
            by_platform[r.platform] = by_platform.get(r.platform, 0) + 1
        platforms = "，".join(f"{PLATFORM_ZH.get(p, p)} {n} 个" for p, n in sorted(by_platform.items()))
        return [
            ("检查账号", f"{len(self.report.rows)} 个（{platforms}）" if platforms else "0 个"),
            ("发布信息", f"{t.posts} 篇"),
            ("收到留言、评论", f"{t.received - t.spam} 条（不含垃圾信息 {t.spam} 条）"),
            ("需答复留言", f"{t.need_answer} 条，已答复 {t.replied} 条"),
            ("回复率", pct(t.reply_rate)),
            ("按时答复率", pct(t.first_response_on_time_rate)),
            ("按时办结率", pct(t.resolution_on_time_rate)),
            ("平均办理时长", f"{num(t.response_workdays_mean)} 个工作日（{num(t.response_hours_mean)} 小时）"
             if t.replied else "—"),
            ("单项否决不合格账号", f"{len(self.failing_accounts)} 个"),
        ]

    def findings_text(self) -> list[str]:
        """One sentence per indicator, as the report states it."""
        out = []
        n = len(self.statuses)
        for s in self.summaries:
            ind = s.indicator
            label = f"{ind.group}·{ind.name}" + ("（单项否决）" if ind.veto else "")
            if ind.measure == "manual":
                out.append(f"{label}：{ind.note or '需人工核查'}")
            elif s.counts["fail"]:
                names = "、".join(name for name, r in s.failing if r.status == "fail")
                out.append(f"{label}：{s.counts['fail']} 个账号不合格（{names}）。")
            elif s.counts["risk"]:
                names = "、".join(name for name, _r in s.failing)
                out.append(f"{label}：未发现不合格；{s.counts['risk']} 个账号存在风险（{names}）。")
            else:
                out.append(f"{label}：{n} 个账号均合格。")
        return out


def merge_candidates(report: Report, config: Config) -> list[MergeCandidate]:
    days = max(1.0, (report.as_of - report.start).total_seconds() / 86400)
    out = []
    for r in report.rows:
        posts = r.figures.posts * 30 / days
        msgs = (r.figures.received - r.figures.spam) * 30 / days
        if posts < config.inspection.merge_min_posts and msgs < config.inspection.merge_min_messages:
            out.append(MergeCandidate(r.name, r.platform, round(posts, 1), round(msgs, 1)))
    return out


def build_selfcheck(*, session: Session, config: Config, calendar: WorkCalendar, scope: Scope, start: datetime,
                    end: datetime, now: datetime | None = None) -> SelfCheck:
    now = now or utcnow()
    report = compute_report(session=session, config=config, calendar=calendar, scope=scope, start=start, end=end,
                            now=now)
    statuses = status_for(session=session, config=config, calendar=calendar, scope=scope, start=start, end=end,
                          now=now)
    checklist = load(config)
    tz = config.timezone
    names = dict(session.exec(select(Account.id, Account.name)).all())
    # Problems found from the period's start until the report is made (a month's last days are checked after it).
    rects = list_rectifications(session=session, account_ids=scope.account_ids, since=to_local(start, tz).date(),
                                until=to_local(now, tz).date() + timedelta(days=1))
    return SelfCheck(report, checklist, statuses, summarise(checklist, statuses),
                     [(r, names.get(r.account_id, "")) for r in rects], merge_candidates(report, config),
                     to_local(now, tz))


# -- 年度报表 (the new-media part of 政府网站与政务新媒体工作年度报表) --------------------------------------

ANNUAL_HEADER = ("名称", "类型", "所属部门", "信息发布总数（条）", "其中：主动公开政府信息数（条）", "关注量/订阅数（个）",
                 "收到留言数（条）", "已答复留言数（条）", "公开答复数（条）", "平均办理时间（工作日）", "按时答复率")
# Not in any platform API govbot uses: the office fills them in (the document says so).
MANUAL = "需人工填写"


def annual_rows(report: Report, public_replies: dict[int, int]) -> list[list[str]]:
    rows = []
    for r in sorted(report.rows, key=lambda r: (r.platform, r.name)):
        f = r.figures
        rows.append([r.name, PLATFORM_ZH.get(r.platform, r.platform), r.department, str(f.posts), MANUAL, MANUAL,
                     str(f.received - f.spam), str(f.answered), str(public_replies.get(r.account_id, 0)),
                     num(f.response_workdays_mean), pct(f.first_response_on_time_rate)])
    return rows


def public_reply_counts(*, session: Session, report_rows: list[AccountRow], start: datetime,
                        end: datetime) -> dict[int, int]:
    """Replies sent publicly (comment replies, seen by everyone) per account over [start, end)."""
    from sqlalchemy import func

    from bot.models import Reply

    ids = [r.account_id for r in report_rows]
    if not ids:
        return {}
    q = (select(Reply.account_id, func.count()).where(
        Reply.account_id.in_(ids), Reply.state == "sent", Reply.channel.in_(("wechat_comment", "weibo_comment")),
        Reply.sent_at >= start, Reply.sent_at < end).group_by(Reply.account_id))
    return dict(session.exec(q).all())


def annual_csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(ANNUAL_HEADER)
    w.writerows(rows)
    return buf.getvalue()


def status_rows(statuses: list[AccountStatus]) -> list[dict[str, Any]]:
    """JSON-ready status of each account and indicator."""
    return [{
        "account_id": s.facts.account_id, "account": s.facts.name, "platform": s.facts.platform,
        "department": s.facts.department, "overall": s.overall, "overall_zh": s.overall_zh,
        "indicators": [{"id": r.indicator.id, "name": r.indicator.name, "group": r.indicator.group,
                        "veto": r.indicator.veto, "status": r.status, "status_zh": STATUS_ZH[r.status],
                        "summary": r.summary,
                        "evidence": [{"kind": e.kind, "ref": e.ref, "text": e.text, "day": e.day} for e in r.evidence]}
                       for r in s.results],
    } for s in statuses]
