"""Response models of the platforms' limits: call budgets (调用额度) per account and Weibo's length counter."""

from __future__ import annotations

from pydantic import Field

from bot.web.schemas.common import Out


class BudgetOut(Out):
    api: str
    label: str = Field(description="What the budget is for, in Chinese")
    limit: int
    used: int
    remaining: int
    closed: bool = Field(description="The platform declared it exhausted")
    window_start: str
    window_end: str
    waiting: int = Field(description="Publications waiting for this budget")


class AccountBudgetsOut(Out):
    account: str
    platform: str
    budgets: list[BudgetOut]


class WeiboLengthOut(Out):
    length: int = Field(description="As Weibo counts it: ASCII is half a character, a link 10")
    limit: int
    remaining: int
    hashtags: list[str] = Field(description="#话题# found (refused by the checks)")
