"""Response models of /api/digest and /api/reports (JSON; the same routes also answer Markdown, HTML, CSV)."""

from __future__ import annotations

from typing import Any

from bot.web.schemas.common import Out


class DigestOut(Out):
    organisation: str
    day: str
    as_of: str
    totals: dict[str, int]
    departments: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    stored: dict[str, Any] | None = None


class ReportOut(Out):
    scope: dict[str, Any]
    start: str
    end: str
    as_of: str
    timezone: str
    total: dict[str, Any]
    accounts: list[dict[str, Any]]
    departments: list[dict[str, Any]]
