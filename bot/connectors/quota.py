"""The quota ledger (调用额度): every platform call an account makes is spent from its budget first.

Budgets are per account and API and per window (WeChat: a day, reset at midnight Beijing time;
Weibo: an hour). They live in the QuotaUsage table, shared by every process: a call is counted by one
UPDATE that refuses to go past the limit, so several workers never overspend between them. A call
the budget cannot pay raises QuotaWait (a TransientError carrying the window's end): the caller
waits for the next window instead of failing. When the platform itself answers with its quota error
(WeChat 45009, Weibo 10022-10024) the window is closed until it ends, whatever the ledger counted.

Defaults are the platforms' documented limits; config [quotas] overrides them per platform and
accounts[].quotas per account. `budget_overview` is what the CLI, the JSON API and the console show.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.clock import utcnow
from bot.config import Config
from bot.connectors.base import TransientError
from bot.db import write_lock
from bot.models import Account, Publication, QuotaUsage

# Windows are aligned on Beijing time: a 86,400 s window starts at midnight there.
BEIJING_OFFSET_S = 8 * 3600

# API -> calls per window, with where the number comes from.
WECHAT_DEFAULTS: dict[str, int] = {
    "token": 2000,  # API_Call_Limits: 获取access_token 2000/day
    "stable_token": 2000,  # unverified: assumed to share the token's 2000/day
    "draft/add": 1000,  # API_Call_Limits: 草稿箱 - 新建草稿 1000/day
    "draft/get": 500,  # API_Call_Limits: 草稿箱 - 获取草稿 500/day
    "draft/delete": 1000,  # API_Call_Limits: 草稿箱 - 删除草稿 1000/day
    "freepublish/submit": 100,  # API_Call_Limits: 发布能力 - 发布接口 100/day
    "freepublish/get": 100,  # API_Call_Limits: 发布能力 - 发布状态轮询接口 100/day
    "freepublish/batchget": 100,  # API_Call_Limits: 发布能力 - 获取成功发布列表 100/day
    "freepublish/getarticle": 100,  # API_Call_Limits: 通过 article_id 获取已发布文章 100/day
    "comment/list": 10000,  # community reports (no official table lists 留言 APIs): unverified
    "message/custom/send": 500000,  # API_Call_Limits: 发送客服消息 500000/day
}
# Weibo budgets per user and app, per hour ("接口访问频次权限" on the open-platform wiki).
WEIBO_CALLS_PER_HOUR = {"test": 150, "normal": 1000}
WEIBO_DEFAULTS: dict[str, int] = {
    "statuses/share": 30,  # wiki 接口访问频次权限: 发微博 30/hour
    "comments": 60,  # wiki 接口访问频次权限: 发评论 60/hour
}
# What officers see next to each budget.
LABELS = {
    "token": "获取令牌", "stable_token": "获取稳定版令牌", "draft/add": "新建草稿", "draft/get": "获取草稿",
    "draft/delete": "删除草稿", "freepublish/submit": "发布", "freepublish/get": "发布状态查询",
    "freepublish/batchget": "已发布列表", "freepublish/getarticle": "获取已发布文章", "comment/list": "留言查询",
    "message/custom/send": "客服消息", "calls": "全部接口调用", "statuses/share": "发微博", "comments": "发评论",
}


class QuotaWait(TransientError):
    """The budget of `api` is spent (or closed by the platform) until `until`: wait, do not fail."""

    def __init__(self, platform: str, api: str, until: datetime, message: str, code: int | str | None = None):
        self.api, self.until = api, until
        super().__init__(platform, code, message, retry_after=max(0.0, (until - utcnow()).total_seconds()))


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def window_of(now: datetime, length_s: int) -> Window:
    """The window holding `now`: windows of `length_s` seconds aligned on Beijing midnight."""
    ts = now.timestamp() + BEIJING_OFFSET_S
    start = math.floor(ts / length_s) * length_s - BEIJING_OFFSET_S
    return Window(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + length_s, UTC))


def limits_for(config: Config, platform: str, account_name: str | None) -> dict[str, int]:
    """API -> calls per window for one account: documented defaults, then [quotas], then the account's own."""
    if platform == "wechat":
        limits = dict(WECHAT_DEFAULTS) | dict(config.quotas.wechat)
    else:
        limits = {"calls": WEIBO_CALLS_PER_HOUR[config.platforms.weibo.app_level], **WEIBO_DEFAULTS}
        limits |= dict(config.quotas.weibo)
    for acc in config.accounts:
        if acc.name == account_name:
            limits |= dict(acc.quotas)
    return limits


def window_length(config: Config, platform: str) -> int:
    return config.quotas.wechat_window_s if platform == "wechat" else config.quotas.weibo_window_s


def _insert(session: Session):
    return {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[session.get_bind().dialect.name]


def _ensure_row(session: Session, account_id: int, api: str, window: Window, limit: int) -> None:
    session.execute(_insert(session)(QuotaUsage).values(
        account_id=account_id, api=api, window_start=window.start, window_end=window.end, used=0, limit=limit,
        closed=False, updated_at=utcnow()).on_conflict_do_nothing(index_elements=["account_id", "api", "window_start"]))


@functools.cache
def _spend_statement(dialect: str) -> Any:
    """Count one call: insert the window's row with it, or add it unless the window is closed or the
    cap reached; returns the row's id when counted. Built once: a platform call must not pay for it."""
    usage = QuotaUsage.__table__.c
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect](QuotaUsage.__table__).values(
        account_id=bindparam("p_account"), api=bindparam("p_api"), window_start=bindparam("p_start"),
        window_end=bindparam("p_end"), used=1, limit=bindparam("p_limit"), closed=False, updated_at=bindparam("p_now"))
    return insert.on_conflict_do_update(
        index_elements=["account_id", "api", "window_start"],
        set_={"used": usage.used + 1, "limit": insert.excluded.limit, "updated_at": insert.excluded.updated_at},
        where=and_(usage.closed.is_(False), usage.used < bindparam("p_cap")),
    ).returning(usage.id)


_usage = QuotaUsage.__table__.c
# Which of some APIs the platform closed in a window.
_CLOSED = select(_usage.api).where(_usage.account_id == bindparam("p_account"),
                                   _usage.api.in_(bindparam("p_apis", expanding=True)),
                                   _usage.window_start == bindparam("p_start"), _usage.closed.is_(True))


class Ledger:
    """The budgets of one account, spent through the shared table."""

    def __init__(self, engine: Engine, *, account_id: int, platform: str, limits: dict[str, int], window_s: int):
        self.engine, self.account_id, self.platform = engine, account_id, platform
        self.limits, self.window_s = dict(limits), window_s

    def spend(self, *apis: str, now: datetime | None = None, share: float = 1.0) -> None:
        """Count one call against each of `apis` (one request can count against several budgets: Weibo's
        posting limit and its limit of all calls), all or none, or raise QuotaWait. `share` < 1 caps what
        this use may take of each budget.

        One transaction, one statement per budget: insert the window's row with this call, or add the
        call to it unless the window is closed or the cap reached (on SQLite under the process's writer
        lock: no busy-handler sleeps). A request runs per call: no ORM session here.
        """
        now = now or utcnow()
        window = window_of(now, self.window_s)
        unlimited = [api for api in apis if api not in self.limits]
        if unlimited:
            self._check_open(unlimited, window)
        counted = [api for api in apis if api in self.limits]
        if not counted:
            return
        with write_lock(self.engine), self.engine.begin() as conn:
            statement = _spend_statement(conn.dialect.name)
            for api in counted:
                limit = self.limits[api]
                cap = math.floor(limit * share)
                spent = None
                if cap >= 1:
                    spent = conn.execute(statement, {
                        "p_account": self.account_id, "p_api": api, "p_start": window.start, "p_end": window.end,
                        "p_limit": limit, "p_now": now, "p_cap": cap}).scalar_one_or_none()
                if spent is None:
                    # Raised inside the transaction: the budgets counted before this one are given back.
                    why = f"{cap} of {limit} calls" if share < 1 else f"{limit} calls"
                    raise self._wait(api, window, f"budget of {why} spent")

    def _check_open(self, apis: list[str], window: Window) -> None:
        """APIs without a budget of their own: only a window the platform closed stops them."""
        with self.engine.connect() as conn:
            closed = conn.execute(_CLOSED, {"p_account": self.account_id, "p_apis": apis,
                                            "p_start": window.start}).first()
        if closed:
            raise self._wait(closed.api, window, "closed by the platform")

    def close(self, api: str, *, now: datetime | None = None) -> Window:
        """The platform says the budget of `api` is exhausted: nothing more until the window ends."""
        now = now or utcnow()
        window = window_of(now, self.window_s)
        with write_lock(self.engine), Session(self.engine) as session:
            _ensure_row(session, self.account_id, api, window, self.limits.get(api, 0))
            session.execute(update(QuotaUsage).where(
                QuotaUsage.account_id == self.account_id, QuotaUsage.api == api,
                QuotaUsage.window_start == window.start).values(closed=True, updated_at=now)
                .execution_options(synchronize_session=False))
            session.commit()
        return window

    def closed_error(self, api: str, code: int | str, message: str, *, now: datetime | None = None) -> QuotaWait:
        """Close the window of `api` and return the QuotaWait to raise for the platform's quota error."""
        window = self.close(api, now=now)
        return QuotaWait(self.platform, api, window.end, f"{api}: quota exhausted by the platform ({message}); "
                         f"waiting for the next window at {window.end.isoformat()}", code=code)

    def _wait(self, api: str, window: Window, why: str) -> QuotaWait:
        return QuotaWait(self.platform, api, window.end,
                         f"{api}: {why} for this window; waiting until {window.end.isoformat()}")


# ---- what people see ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """One API's budget of one account in the current window."""

    api: str
    label: str  # Chinese, for officers
    limit: int
    used: int
    remaining: int
    closed: bool  # the platform declared it exhausted
    window_start: datetime
    window_end: datetime
    waiting: int  # publications waiting for this budget

    def as_dict(self) -> dict:
        return {"api": self.api, "label": self.label, "limit": self.limit, "used": self.used,
                "remaining": self.remaining, "closed": self.closed, "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(), "waiting": self.waiting}


WAITING_STEP = "quota:"  # Publication.step of a publication waiting for a budget: "quota:<api>"


def budget_overview(session: Session, account_id: int, *, config: Config,
                    now: datetime | None = None) -> list[Budget]:
    """Every budget of the account in its current window: limit, used, remaining, closed, waiting work."""
    account = session.get(Account, account_id)
    if account is None:
        return []
    now = now or utcnow()
    window = window_of(now, window_length(config, account.platform))
    limits = limits_for(config, account.platform, account.name)
    rows = {r.api: r for r in session.execute(select(QuotaUsage).where(
        QuotaUsage.account_id == account_id, QuotaUsage.window_start == window.start)).scalars()}
    waiting = dict(session.execute(
        select(Publication.step, func.count()).where(
            Publication.account_id == account_id, Publication.state.in_(("pending", "publishing")),
            Publication.step.like(f"{WAITING_STEP}%")).group_by(Publication.step)).all())
    out = []
    for api in sorted(set(limits) | set(rows)):
        row = rows.get(api)
        limit = limits.get(api, row.limit if row else 0)
        used = row.used if row else 0
        closed = bool(row and row.closed)
        out.append(Budget(api=api, label=LABELS.get(api, api), limit=limit, used=used,
                          remaining=0 if closed else max(0, limit - used), closed=closed,
                          window_start=window.start, window_end=window.end,
                          waiting=int(waiting.get(f"{WAITING_STEP}{api}", 0))))
    return out


# The budgets always shown to people (others only once used, closed or waited for).
SHOWN_BUDGETS = ("freepublish/submit", "freepublish/get", "comment/list", "calls", "statuses/share")
