"""Response models of /api/inspection (迎检): status per account, the 自查报告, the 年度报表, the 整改台账."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bot.web.schemas.common import Out


class EvidenceOut(Out):
    kind: str = Field(description="gap | post | message | publication")
    ref: int | None = Field(None, description="The post, message or publication id")
    text: str
    day: str = Field("", description="Local day it refers to (YYYY-MM-DD)")


class IndicatorStatusOut(Out):
    id: str
    name: str
    group: str
    veto: bool = Field(description="单项否决: failing it fails the account")
    status: str = Field(description="pass | risk | fail | manual")
    status_zh: str
    summary: str
    evidence: list[EvidenceOut]


class AccountStatusOut(Out):
    account_id: int
    account: str
    platform: str
    department: str
    overall: str
    overall_zh: str
    indicators: list[IndicatorStatusOut]


class RectificationOut(Out):
    """One line of the 整改台账."""

    id: int
    account: str
    indicator: str
    problem: str
    found_on: str
    measure: str = Field("", description="整改措施; empty while nothing is recorded")
    fixed_on: str | None = Field(None, description="Day it was fixed; null while in progress")
    fixed_by: str | None = None


class SelfCheckOut(Out):
    """The 自查报告 draft."""

    title: str
    overview: dict[str, str]
    findings: list[str]
    accounts: list[AccountStatusOut]
    rectifications: list[RectificationOut]
    merge: list[dict[str, Any]] = Field(description="Accounts to consider merging or closing (关停整合)")
    report: dict[str, Any] = Field(description="The monthly report's figures over the same period and scope")


class AnnualOut(Out):
    """The new-media part of the 年度报表: one row per account, in the order of `header`."""

    year: str
    scope: str
    header: list[str]
    rows: list[list[str]]
