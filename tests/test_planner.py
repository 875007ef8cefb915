"""The publishing calendar's grid and the days an account would cross the warning and the limit."""

from datetime import UTC, date, datetime

from bot.publishing.gap import evaluate_gap
from bot.publishing.planner import crossing_marks, days, shift


def test_month_grid_is_whole_weeks_monday_first():
    shown = days(date(2026, 12, 15), "month")
    assert shown[0] == date(2026, 11, 30) and shown[-1] == date(2027, 1, 3) and len(shown) == 35
    week = days(date(2026, 12, 3), "week")
    assert (week[0], week[-1], len(week)) == (date(2026, 11, 30), date(2026, 12, 6), 7)
    assert shift(date(2026, 12, 15), "month", 1) == date(2027, 1, 1)
    assert shift(date(2026, 1, 15), "month", -1) == date(2025, 12, 1)
    assert shift(date(2026, 12, 15), "week", -1) == date(2026, 12, 8)


def test_crossing_days_count_from_the_last_post_or_the_last_scheduled_one():
    now = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    posted = evaluate_gap(account_id=1, account_name="示例县发布", platform="wechat",
                          last_published_at=datetime(2026, 11, 20, 2, 0, tzinfo=UTC),
                          scheduled=[datetime(2026, 12, 4, 2, 0, tzinfo=UTC)], now=now, warn_days=10, limit_days=14)
    never = evaluate_gap(account_id=2, account_name="示例县住建", platform="wechat", last_published_at=None,
                         scheduled=[], now=now, warn_days=10, limit_days=14)
    marks = crossing_marks([posted, never], warn_days=10, limit_days=14, tz="Asia/Shanghai")
    assert [(m.day, m.level) for m in marks] == [(date(2026, 12, 14), "warn"), (date(2026, 12, 18), "limit")]
    assert marks[1].text == "示例县发布 满 14 天，超过检查限值"
