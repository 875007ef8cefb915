"""Working-day calendar: package data, the holidays file, the fallback, and deadline arithmetic."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from loguru import logger

import bot.tickets.calendar as calendar_module
from bot.errors import ConfigError, GovbotError
from bot.tickets.calendar import CalendarError, WorkCalendar, parse_holidays

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHIPPED_FILE = Path(__file__).resolve().parents[1] / "rules" / "holidays.toml"


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def end_of(day: date) -> datetime:
    """The exclusive deadline for answering by the end of `day`: 00:00 local the next day."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI)


@pytest.fixture
def warnings(monkeypatch):
    """Loguru warnings logged during the test, with a fresh once-per-process memory."""
    monkeypatch.setattr(calendar_module, "_warned_years", set())
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING")
    yield messages
    logger.remove(sink)


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar(None)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "holidays.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- package data, checked against chinesecalendar 1.11.0 ----------------------------------------

def test_spring_festival_2026_from_package(cal):
    assert cal.source(2026) == "package"
    assert cal.is_workday(date(2026, 2, 13))  # Friday before the break
    assert cal.is_workday(date(2026, 2, 14))  # Saturday, 调休 working day
    assert not any(cal.is_workday(date(2026, 2, d)) for d in range(15, 24))  # 02-15 .. 02-23
    assert cal.is_workday(date(2026, 2, 24))
    assert cal.is_workday(date(2026, 2, 28))  # Saturday, 调休 working day
    assert not cal.is_workday(date(2026, 3, 1))  # an ordinary Sunday
    assert cal.holiday_name(date(2026, 2, 16)) == "春节"
    assert cal.holiday_name(date(2026, 2, 14)) == "春节"
    assert cal.holiday_name(date(2026, 3, 2)) is None


def test_national_day_2026_from_package(cal):
    assert not any(cal.is_workday(date(2026, 10, d)) for d in range(1, 8))  # 10-01 .. 10-07
    assert cal.is_workday(date(2026, 9, 20))  # Sunday, 调休 working day
    assert cal.is_workday(date(2026, 10, 10))  # Saturday, 调休 working day
    assert cal.is_workday(date(2026, 10, 8))
    assert cal.holiday_name(date(2026, 10, 3)) == "国庆节"


# -- deadlines -----------------------------------------------------------------------------------

def test_complaint_on_friday_before_spring_festival(cal):
    received = local(2026, 2, 13, 16, 30)
    assert cal.add_working_days(received, 1) == end_of(date(2026, 2, 14))  # the 调休 Saturday
    assert cal.add_working_days(received, 2) == end_of(date(2026, 2, 24))  # first day after the break
    assert cal.add_working_days(received, 5) == end_of(date(2026, 2, 27))


def test_message_on_tiaoxiu_saturday(cal):
    received = local(2026, 2, 14, 10, 0)
    assert cal.add_working_days(received, 0) == end_of(date(2026, 2, 14))  # a working day
    assert cal.add_working_days(received, 1) == end_of(date(2026, 2, 24))
    assert cal.add_working_days(received, 5) == end_of(date(2026, 2, 28))  # the second 调休 Saturday


def test_national_day_2026(cal):
    assert cal.add_working_days(local(2026, 9, 30, 23, 59), 1) == end_of(date(2026, 10, 8))
    assert cal.add_working_days(local(2026, 9, 30, 9, 0), 3) == end_of(date(2026, 10, 10))
    # Received during the break: the first working day after it is day 1, and n=0 means it too.
    assert cal.add_working_days(local(2026, 10, 3, 12, 0), 0) == end_of(date(2026, 10, 8))
    assert cal.add_working_days(local(2026, 10, 3, 12, 0), 1) == end_of(date(2026, 10, 8))
    assert cal.add_working_days(local(2026, 10, 3, 12, 0), 2) == end_of(date(2026, 10, 9))
    # Received on the Saturday before the 调休 Sunday 09-20.
    assert cal.add_working_days(local(2026, 9, 19, 12, 0), 1) == end_of(date(2026, 9, 20))


def test_weekend_receipt_counts_from_next_working_day(cal):
    saturday = local(2026, 3, 7, 8, 0)
    assert cal.add_working_days(saturday, 0) == end_of(date(2026, 3, 9))
    assert cal.add_working_days(saturday, 1) == end_of(date(2026, 3, 9))
    assert cal.add_working_days(saturday, 5) == end_of(date(2026, 3, 13))


def test_n_zero_on_a_working_day_is_end_of_that_day(cal):
    assert cal.add_working_days(local(2026, 3, 10, 0, 0), 0) == end_of(date(2026, 3, 10))
    assert cal.add_working_days(local(2026, 3, 10, 23, 59, 59), 0) == end_of(date(2026, 3, 10))


def test_next_workday_and_due_date(cal):
    assert cal.next_workday(date(2026, 2, 13)) == date(2026, 2, 14)
    assert cal.next_workday(date(2026, 2, 14)) == date(2026, 2, 24)
    assert cal.due_date(date(2026, 2, 13), 2) == date(2026, 2, 24)


def test_bad_arguments(cal):
    with pytest.raises(ValueError, match="0 or more"):
        cal.add_working_days(local(2026, 3, 10, 9, 0), -1)
    with pytest.raises(ValueError, match="aware"):
        cal.add_working_days(datetime(2026, 3, 10, 9, 0), 1)
    with pytest.raises(ValueError, match="expected an aware datetime"):
        cal.due_at_utc(datetime(2026, 3, 10, 9, 0), 1, "Asia/Shanghai")
    with pytest.raises(ValueError, match="expected an aware datetime"):
        cal.working_days_between_utc(datetime(2026, 3, 10, 9, 0), utc(2026, 3, 11, 9, 0), "Asia/Shanghai")
    with pytest.raises(TypeError, match="local date"):
        cal.is_workday(datetime(2026, 3, 10, 9, 0))


def test_due_at_utc_counts_days_in_local_time(cal):
    # 17:30 UTC on Friday 02-13 is 01:30 on Saturday 02-14 in Shanghai: a 调休 working day.
    received_utc = utc(2026, 2, 13, 17, 30)
    due = cal.due_at_utc(received_utc, 0, "Asia/Shanghai")
    assert due == utc(2026, 2, 14, 16, 0) and due.utcoffset() == timedelta(0)
    assert cal.due_at_utc(received_utc, 1, SHANGHAI) == utc(2026, 2, 24, 16, 0)
    # 01:00 UTC on Friday is 09:00 Friday local: day 1 is the Saturday.
    assert cal.due_at_utc(utc(2026, 2, 13, 1, 0), 1, "Asia/Shanghai") == utc(2026, 2, 14, 16, 0)
    # Any aware time is read in the calendar's zone; the answer is always UTC.
    due = cal.due_at_utc(local(2026, 2, 14, 1, 30), 1, "Asia/Shanghai")
    assert due == utc(2026, 2, 24, 16, 0) and due.tzinfo == UTC


# -- years the package lacks ---------------------------------------------------------------------

def test_deadline_into_2027_with_shipped_file_warns_once(warnings):
    cal = WorkCalendar(SHIPPED_FILE)
    assert cal.source(2027) == "file"
    assert not cal.is_workday(date(2027, 1, 1))
    assert cal.holiday_name(date(2027, 1, 1)) == "元旦"
    # 12-31 is day 1; 2027-01-01 is New Year's Day; 01-04 .. 01-07 are days 2..5.
    assert cal.add_working_days(local(2026, 12, 30, 15, 0), 5) == end_of(date(2027, 1, 7))
    assert cal.add_working_days(local(2026, 12, 30, 15, 0), 6) == end_of(date(2027, 1, 8))
    assert len(warnings) == 1
    assert "2027" in warnings[0] and "incomplete" in warnings[0]
    assert 2027 not in cal.covered_years()


def test_deadline_into_2027_without_file_falls_back_to_weekdays(warnings):
    cal = WorkCalendar(None)
    assert cal.source(2027) == "fallback"
    # Mon–Fri only: 12-31 is day 1, Friday 2027-01-01 day 2, 01-04 .. 01-06 days 3..5.
    assert cal.add_working_days(local(2026, 12, 30, 15, 0), 5) == end_of(date(2027, 1, 6))
    assert not cal.is_workday(date(2027, 1, 2))
    assert len(warnings) == 1 and "no holiday data for 2027" in warnings[0]


def test_fallback_warning_once_per_year_per_process(warnings):
    first, second = WorkCalendar(None), WorkCalendar(None)
    for cal in (first, second):
        for i in range(400):
            cal.is_workday(date(2031, 1, 1) + timedelta(days=i))
    assert [w for w in warnings if "2031" in w] == [warnings[0]]
    assert len([w for w in warnings if "2032" in w]) == 1  # a new year warns again, once
    assert len(warnings) == 2
    # Package years never warn.
    first.is_workday(date(2015, 5, 1))
    assert len(warnings) == 2


def test_years_before_the_package_fall_back(warnings, cal):
    assert cal.source(2003) == "fallback"
    assert cal.is_workday(date(2003, 6, 2)) and not cal.is_workday(date(2003, 6, 1))
    assert len(warnings) == 1


def test_covered_years(cal):
    assert cal.covered_years() == tuple(range(2004, 2027))


# -- the holidays file ---------------------------------------------------------------------------

def test_file_overrides_package_for_its_year(tmp_path, warnings):
    path = write(tmp_path, """
[years.2026]
holidays = [{ name = "测试假期", dates = "2026-03-02..2026-03-03" }, "2026-03-05", 2026-03-06]
workdays = [{ name = "测试调休", dates = ["2026-03-07"] }]
""")
    cal = WorkCalendar(path)
    assert cal.source(2026) == "file" and cal.source(2025) == "package"
    # The package's Spring Festival no longer applies: the file replaces the whole year.
    assert cal.is_workday(date(2026, 2, 16))
    assert not cal.is_workday(date(2026, 2, 14))
    assert [cal.is_workday(date(2026, 3, d)) for d in range(2, 9)] == [False, False, True, False, False, True, False]
    assert cal.holiday_name(date(2026, 3, 3)) == "测试假期"
    assert cal.holiday_name(date(2026, 3, 7)) == "测试调休"
    assert cal.holiday_name(date(2026, 3, 5)) is None
    assert cal.holiday_name(date(2026, 2, 16)) is None
    assert cal.is_workday(date(2025, 1, 26))  # 2025 still from the package (调休 Sunday)
    assert 2026 in cal.covered_years()
    assert warnings == []  # complete defaults to true


def test_file_year_may_move_a_working_day_into_december_before(tmp_path):
    path = write(tmp_path, """
[years.2027]
holidays = ["2027-01-01"]
workdays = ["2026-12-27"]
""")
    cal = WorkCalendar(path)
    assert cal.is_workday(date(2026, 12, 27))  # a Sunday, moved by the (made-up) 2027 notice
    assert cal.source(2026) == "package"
    assert not cal.is_workday(date(2026, 12, 26))


def test_shipped_file_is_valid():
    cal = WorkCalendar(SHIPPED_FILE)
    assert cal.source(2027) == "file"
    assert cal.source(2026) == "package"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[years.2027\nholidays = []", "(toml)", "invalid TOML"),
        ("[years.2027]\nholidays = [\"2027-02-30\"]", "years.2027.holidays[0]", "not a valid date"),
        ("[years.2027]\nholidays = [\"2027/01/01\"]", "years.2027.holidays[0]", "form YYYY-MM-DD"),
        ("[years.2027]\nholiday = [\"2027-01-01\"]", "years.2027.holiday", "unknown key"),
        ("[years.27]\nholidays = []", "years.27", "four digits"),
        ("[years.2027]\nholidays = \"2027-01-01\"", "years.2027.holidays", "must be a list"),
        ("[years.2027]\ncomplete = \"no\"", "years.2027.complete", "true or false"),
        ("[years.2027]\nholidays = [\"2027-02-11..2027-02-05\"]", "years.2027.holidays[0]", "ends before"),
        ("[years.2027]\nholidays = [\"2027-02-01..2027-04-01\"]", "years.2027.holidays[0]", "typo"),
        ("[years.2027]\nholidays = [\"2026-01-01\"]", "years.2027.holidays[0]", "outside 2027"),
        ("[years.2027]\nworkdays = [\"2027-02-08\"]", "years.2027.workdays[0]", "is a Monday"),
        ("[years.2027]\nholidays = [{ name = \"春节\" }]", "years.2027.holidays[0].dates", "missing"),
        ("[years.2027]\nholidays = [{ dates = \"2027-01-01\", nme = \"x\" }]", "years.2027.holidays[0].nme",
         "unknown key"),
        ("[years.2027]\nholidays = [{ dates = \"2027-01-01\", name = \"\" }]", "years.2027.holidays[0].name",
         "non-empty"),
        ("[years.2027]\nholidays = [20270101]", "years.2027.holidays[0]", "not a date"),
        ("year = 2027", "year", "unknown key"),
    ],
)
def test_malformed_file_names_file_key_and_reason(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    with pytest.raises(CalendarError) as caught:
        WorkCalendar(path)
    err = caught.value
    assert isinstance(err, ConfigError) and isinstance(err, GovbotError)
    assert err.file == str(path)
    assert err.key == key
    assert reason in err.reason
    assert str(err).startswith(f"{path}: {key}: ")


def test_date_both_holiday_and_workday_is_an_error(tmp_path):
    path = write(tmp_path, """
[years.2027]
holidays = [{ name = "春节", dates = "2027-02-05..2027-02-11" }]
workdays = ["2027-02-07"]
""")
    with pytest.raises(CalendarError) as caught:
        WorkCalendar(path)
    assert caught.value.key == "years.2027.workdays[0]"
    assert "2027-02-07" in caught.value.reason and "years.2027.holidays[0]" in caught.value.reason


def test_conflict_across_year_tables_is_an_error():
    with pytest.raises(CalendarError, match="both as a holiday and as a working day"):
        parse_holidays(
            {"years": {"2026": {"holidays": ["2026-12-27"]}, "2027": {"workdays": ["2026-12-27"]}}},
            file="h.toml",
        )


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(CalendarError, match="file not found") as caught:
        WorkCalendar(tmp_path / "nope.toml")
    assert caught.value.file == str(tmp_path / "nope.toml")


# -- working_days_between ------------------------------------------------------------------------

def test_working_days_between_examples(cal):
    friday = local(2026, 2, 13, 16, 0)
    assert cal.working_days_between(friday, local(2026, 2, 13, 23, 0)) == 0
    assert cal.working_days_between(friday, local(2026, 2, 14, 9, 0)) == 1  # 调休 Saturday
    assert cal.working_days_between(friday, local(2026, 2, 20, 9, 0)) == 2  # during the break
    assert cal.working_days_between(friday, local(2026, 2, 24, 9, 0)) == 2
    assert cal.working_days_between(friday, local(2026, 2, 27, 23, 59)) == 5
    assert cal.working_days_between(friday, friday - timedelta(hours=1)) == 0
    sunday = local(2026, 3, 8, 10, 0)
    assert cal.working_days_between(sunday, local(2026, 3, 9, 18, 0)) == 0
    assert cal.working_days_between(sunday, local(2026, 3, 10, 18, 0)) == 2
    # b is read in a's time zone: 2026-02-13 20:00 UTC is 02-14 04:00 in Shanghai.
    assert cal.working_days_between(friday, datetime(2026, 2, 13, 20, 0, tzinfo=ZoneInfo("UTC"))) == 1
    assert cal.working_days_between_utc(utc(2026, 2, 13, 8, 0), utc(2026, 2, 13, 20, 0),
                                        "Asia/Shanghai") == 1


def test_working_days_between_matches_deadlines(cal, warnings):
    """On time for n working days  <=>  working_days_between <= n, across holidays and years."""
    for offset in range(0, 380, 3):
        received = local(2026, 1, 1, 10, 0) + timedelta(days=offset)
        for later in (0, 1, 2, 5, 9, 16):
            answered = datetime.combine(received.date() + timedelta(days=later),
                                        datetime.min.time(), tzinfo=SHANGHAI) + timedelta(hours=11)
            took = cal.working_days_between(received, answered)
            for n in range(0, 12):
                on_time = answered < cal.add_working_days(received, n)
                assert on_time == (took <= n), (received, answered, n, took)


def test_count_workdays(cal):
    assert cal.count_workdays(date(2026, 2, 13), date(2026, 3, 1)) == 7  # 13, 14, 24, 25, 26, 27, 28
    assert cal.count_workdays(date(2026, 3, 1), date(2026, 2, 1)) == 0
    assert cal.count_workdays(date(2025, 12, 29), date(2026, 1, 6)) == 5  # 29, 30, 31, Jan 4 (调休), 5
