"""One way to name a checking period (检查周期) for the CLI, the API and the console: a month, a quarter,
a year, or first day + day after the last."""

from __future__ import annotations

from datetime import date, datetime

from bot.errors import GovbotError
from bot.inspection.selfcheck import quarter_period, year_period
from bot.oversight.reports import day_period, month_period


def period_of(tz: str, *, month: str | None = None, quarter: str | None = None, year: str | None = None,
              first: date | None = None, end: date | None = None) -> tuple[datetime, datetime, str]:
    """(start, end, label) of the one period named; a clear error when none or several are."""
    given = [x for x in (month, quarter, year, first or end) if x]
    if len(given) != 1:
        raise GovbotError("inspection.one_period")
    if month:
        return (*month_period(month, tz), month)
    if quarter:
        return (*quarter_period(quarter, tz), quarter.upper())
    if year:
        return (*year_period(year, tz), year)
    if not (first and end):
        raise GovbotError("inspection.start_and_end")
    return (*day_period(first, end, tz), f"{first:%Y-%m-%d}_{end:%Y-%m-%d}")
