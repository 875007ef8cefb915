"""Pure: an account's facts for a period held against every indicator of the checklist.

Each indicator gets a status — 合格 (pass), 风险 (risk: it would fail soon), 不合格 (fail) or 需人工核查
(manual: not measurable from platform data) — with the evidence that made it: which post, which message,
which days. The account fails as a whole when a single-veto item (单项否决) fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.clock import to_local
from bot.inspection.checklist import Checklist, Indicator

DAY = timedelta(days=1)
STATUS_ZH = {"pass": "合格", "risk": "风险", "fail": "不合格", "manual": "需人工核查"}
# Worst first: the account's overall status is the worst of its measured indicators.
_RANK = {"fail": 0, "risk": 1, "pass": 2, "manual": 3}


@dataclass(frozen=True)
class Evidence:
    kind: str  # gap | post | message | publication
    ref: int | None  # post, message (ticket) or publication id
    text: str  # in Chinese, for the page and the report
    day: str = ""  # local day it refers to (YYYY-MM-DD)


@dataclass(frozen=True)
class PostFacts:
    post_id: int
    title: str
    published_at: datetime
    # (check code, Chinese description) for every text check the published post fails now.
    problems: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TicketFacts:
    ticket_id: int
    message_id: int
    received_at: datetime
    first_response_due: datetime
    first_response_at: datetime | None
    open: bool
    # Working days left before the first-response deadline (0: due today), for open unanswered tickets.
    workdays_left: int | None = None


@dataclass(frozen=True)
class FailedPublication:
    publication_id: int
    post_id: int
    title: str
    due_at: datetime
    state: str  # failed | missed


@dataclass(frozen=True)
class AccountFacts:
    account_id: int
    name: str
    platform: str
    department: str
    start: datetime  # aware UTC, period start
    as_of: datetime  # aware UTC, min(now, period end)
    # Every publish time up to as_of, oldest first, including the last one before `start` if any.
    publish_times: tuple[datetime, ...]
    posts: tuple[PostFacts, ...] = ()  # published in the period
    tickets: tuple[TicketFacts, ...] = ()  # opened in the period, or still open at as_of
    received: int = 0  # non-spam messages and comments received in the period
    answered: int = 0  # of those, answered by as_of
    failed: tuple[FailedPublication, ...] = ()


@dataclass(frozen=True)
class Result:
    indicator: Indicator
    status: str
    summary: str
    evidence: tuple[Evidence, ...] = ()

    @property
    def status_zh(self) -> str:
        return STATUS_ZH[self.status]


@dataclass(frozen=True)
class AccountStatus:
    facts: AccountFacts
    results: tuple[Result, ...]

    @property
    def overall(self) -> str:
        """不合格 when a single-veto item fails; otherwise the worst measured status (a failed scored item: 风险)."""
        if any(r.status == "fail" and r.indicator.veto for r in self.results):
            return "fail"
        if any(r.status in ("fail", "risk") for r in self.results):
            return "risk"
        return "pass"

    @property
    def overall_zh(self) -> str:
        return STATUS_ZH[self.overall]

    def result(self, indicator_id: str) -> Result | None:
        return next((r for r in self.results if r.indicator.id == indicator_id), None)


@dataclass(frozen=True)
class Gap:
    begin: datetime
    end: datetime
    running: bool  # still running at as_of
    known_start: bool  # False: no post before the period, the gap is counted from its start

    @property
    def days(self) -> float:
        return (self.end - self.begin) / DAY


def gaps_in_period(publish_times: tuple[datetime, ...], start: datetime, as_of: datetime) -> list[Gap]:
    """The silences between consecutive posts that overlap [start, as_of], the running one included."""
    times = sorted(t for t in publish_times if t <= as_of)
    before = [t for t in times if t < start]
    inside = [t for t in times if t >= start]
    points = ([before[-1]] if before else []) + inside
    gaps: list[Gap] = []
    if not before:
        first = inside[0] if inside else as_of
        gaps.append(Gap(start, first, running=not inside, known_start=False))
    for a, b in zip(points, points[1:], strict=False):
        gaps.append(Gap(a, b, running=False, known_start=True))
    if points:
        gaps.append(Gap(points[-1], as_of, running=True, known_start=True))
    return [g for g in gaps if g.end > start or g.running]


def _day(t: datetime, tz: str) -> str:
    return to_local(t, tz).date().isoformat()


def _deadline_day(t: datetime, tz: str) -> str:
    """A deadline as officers count it: one ending at local midnight is the day before."""
    local = to_local(t, tz)
    return ((local - DAY).date() if (local.hour, local.minute) == (0, 0) else local.date()).isoformat()


def _gap_text(g: Gap, tz: str) -> str:
    begin = _day(g.begin, tz) + ("（周期开始，此前无发布记录）" if not g.known_start else "")
    end = "至今" if g.running else f"至 {_day(g.end, tz)}"
    return f"{begin} {end}，{g.days:.0f} 天无更新" if g.days >= 1 else f"{begin} {end}，不足 1 天"


def _longest_gap(ind: Indicator, f: AccountFacts, tz: str) -> Result:
    fail_at, warn_at = ind.param("fail_at"), ind.param("warn_at")
    gaps = gaps_in_period(f.publish_times, f.start, f.as_of)
    over = [g for g in gaps if g.days >= fail_at]
    if over:
        ev = tuple(Evidence("gap", None, _gap_text(g, tz), _day(g.begin, tz)) for g in over)
        worst = max(g.days for g in over)
        return Result(ind, "fail", f"最长 {worst:.0f} 天无更新（上限 {fail_at} 天）", ev)
    running = next((g for g in gaps if g.running), None)
    if running is not None and running.days >= warn_at:
        left = fail_at - running.days
        return Result(ind, "risk", f"已 {running.days:.0f} 天未更新，再过 {left:.0f} 天将超过 {fail_at} 天上限",
                      (Evidence("gap", None, _gap_text(running, tz), _day(running.begin, tz)),))
    longest = max((g.days for g in gaps), default=0.0)
    return Result(ind, "pass", f"最长间隔 {longest:.0f} 天")


def _published_problems(ind: Indicator, f: AccountFacts, tz: str) -> Result:
    codes = set(ind.param("codes"))
    ev = []
    for p in f.posts:
        for code, text in p.problems:
            if code in codes:
                ev.append(Evidence("post", p.post_id, f"稿件 #{p.post_id}《{p.title}》（{_day(p.published_at, tz)} 发布）：{text}",
                                   _day(p.published_at, tz)))
    if ev:
        n = len({e.ref for e in ev})
        return Result(ind, "fail", f"{n} 篇已发布稿件复查发现问题", tuple(ev))
    return Result(ind, "pass", f"复查已发布稿件 {len(f.posts)} 篇，未发现问题")


def _overdue_messages(ind: Indicator, f: AccountFacts, tz: str) -> Result:
    warn = ind.param("warn_workdays")
    overdue = [t for t in f.tickets if t.open and t.first_response_at is None and t.first_response_due <= f.as_of]
    if overdue:
        ev = tuple(Evidence("message", t.ticket_id,
                            f"工单 #{t.ticket_id}：{_day(t.received_at, tz)} 收到，答复时限 {_deadline_day(t.first_response_due, tz)}，至今未答复",
                            _day(t.received_at, tz)) for t in overdue)
        return Result(ind, "fail", f"{len(overdue)} 条留言超过时限未答复", ev)
    soon = [t for t in f.tickets if t.open and t.first_response_at is None and t.workdays_left is not None
            and t.workdays_left <= warn]
    if soon:
        ev = tuple(Evidence("message", t.ticket_id,
                            f"工单 #{t.ticket_id}：{_day(t.received_at, tz)} 收到，距答复时限还有 {t.workdays_left} 个工作日",
                            _day(t.received_at, tz)) for t in soon)
        return Result(ind, "risk", f"{len(soon)} 条留言临近答复时限", ev)
    return Result(ind, "pass", "无超期未答复留言")


def _late_answers(ind: Indicator, f: AccountFacts, tz: str) -> Result:
    late = [t for t in f.tickets if t.first_response_at is not None and t.first_response_at > t.first_response_due
            and t.first_response_at >= f.start]
    ev = tuple(Evidence("message", t.ticket_id,
                        f"工单 #{t.ticket_id}：时限 {_deadline_day(t.first_response_due, tz)}，{_day(t.first_response_at, tz)} 才答复",
                        _day(t.received_at, tz)) for t in late)
    if len(late) >= ind.param("fail_at") and late:
        return Result(ind, "fail", f"{len(late)} 条留言超时答复", ev)
    return Result(ind, "pass", "留言均在时限内答复" if f.tickets else "周期内无需答复的留言")


def _none_answered(ind: Indicator, f: AccountFacts, tz: str) -> Result:
    if f.received and not f.answered:
        return Result(ind, "fail", f"收到留言 {f.received} 条，均未回应")
    return Result(ind, "pass", f"收到留言 {f.received} 条，已回应 {f.answered} 条")


def _posts_in_period(ind: Indicator, f: AccountFacts, tz: str) -> Result:
    days = max(1, round((f.as_of - f.start) / DAY))  # whole days, as officers count the period
    needed = ind.param("min_posts") * days / 30
    n = len(f.posts)
    if n < needed:
        return Result(ind, "fail", f"{days:.0f} 天内发布 {n} 篇，低于 {needed:.3g} 篇的要求")
    return Result(ind, "pass", f"{days:.0f} 天内发布 {n} 篇")


def _failed_publications(ind: Indicator, f: AccountFacts, tz: str) -> Result:
    if not f.failed:
        return Result(ind, "pass", "无发布失败")
    ev = tuple(Evidence("publication", p.post_id,
                        f"稿件 #{p.post_id}《{p.title}》原定 {_day(p.due_at, tz)} 发布，{'发布失败' if p.state == 'failed' else '错过排期'}",
                        _day(p.due_at, tz)) for p in f.failed)
    return Result(ind, "fail", f"{len(f.failed)} 次发布未成功", ev)


def _manual(ind: Indicator, f: AccountFacts, tz: str) -> Result:
    return Result(ind, "manual", ind.note or "需人工核查")


_MEASURES = {
    "longest_gap": _longest_gap,
    "published_problems": _published_problems,
    "overdue_messages": _overdue_messages,
    "late_answers": _late_answers,
    "none_answered": _none_answered,
    "posts_in_period": _posts_in_period,
    "failed_publications": _failed_publications,
    "manual": _manual,
}


def evaluate_account(checklist: Checklist, facts: AccountFacts, tz: str) -> AccountStatus:
    return AccountStatus(facts, tuple(_MEASURES[i.measure](i, facts, tz) for i in checklist.indicators))


@dataclass
class Summary:
    """Per indicator over many accounts: how many pass, are at risk, fail."""

    indicator: Indicator
    counts: dict[str, int] = field(default_factory=lambda: {"pass": 0, "risk": 0, "fail": 0, "manual": 0})
    failing: list[tuple[str, Result]] = field(default_factory=list)  # (account name, result) at risk or failing


def summarise(checklist: Checklist, statuses: list[AccountStatus]) -> list[Summary]:
    out = []
    for ind in checklist.indicators:
        s = Summary(ind)
        for st in statuses:
            r = st.result(ind.id)
            s.counts[r.status] += 1
            if r.status in ("fail", "risk"):
                s.failing.append((st.facts.name, r))
        s.failing.sort(key=lambda nr: _RANK[nr[1].status])
        out.append(s)
    return out
