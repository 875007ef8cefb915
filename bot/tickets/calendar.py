"""Chinese working days (工作日) and answer deadlines counted in them.

Where a year's calendar comes from (`WorkCalendar.source(year)`):

- ``"file"``: the holidays file (rules/holidays.toml) has a ``[years.YYYY]`` table. It replaces
  the package's data for that whole year: days it does not list follow Mon–Fri.
- ``"package"``: the `chinesecalendar` package (State Council notices up to 2026, from 2004).
- ``"fallback"``: neither has the year; Mon–Fri are working days. One warning is logged per year
  per process, so a deadline running into an unpublished year never crashes the bot.

A file table marked ``complete = false`` (the notice is not out yet) is used as it stands and also
logs that one warning. A ``[years.YYYY]`` table may list days in December of the year before,
because a notice can move a working day (调休) there; listed days win over every other source.

Deadline semantics (`due_date`, `add_working_days`, `due_at_utc`), for ``n`` working days:

- Days are local calendar days in the time zone the caller gives (config ``timezone``,
  Asia/Shanghai); the database stores aware UTC, which `due_at_utc` reads in that zone and
  returns the deadline in (aware UTC again).
- A message received at any time on day D is due by the end of the n-th working day strictly
  after D. Received on a non-working day, the next working day is day 1.
- n = 0: the end of D if D is a working day, else the end of the next working day.
- "The end of day X" is returned as 00:00 of the day after X, local time, and is exclusive:
  an answer is on time when ``answered_at < due``.
"""

from __future__ import annotations

import re
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import chinese_calendar
from loguru import logger

from bot.errors import ConfigError

Source = Literal["package", "file", "fallback"]

ONE_DAY = timedelta(days=1)
# The Spring Festival break is the longest at 9 days; a longer range is almost surely a typo.
MAX_RANGE_DAYS = 31
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_PACKAGE_FIRST_YEAR = min(chinese_calendar.holidays).year
_PACKAGE_LAST_YEAR = max(chinese_calendar.holidays).year

# Years already warned about, per process: reports call the calendar on many rows.
_warned_years: set[int] = set()
_warn_lock = threading.Lock()


class CalendarError(ConfigError):
    """The holidays file is wrong: names the file, the key and the reason."""


@dataclass(frozen=True)
class ListedDay:
    """A day the holidays file lists: a holiday (放假) or a working weekend day (调休上班)."""

    workday: bool
    name: str | None
    key: str  # where in the file, for error messages


@dataclass(frozen=True)
class HolidayFile:
    path: str
    # year -> complete? (False while the State Council notice for that year is not out)
    years: Mapping[int, bool]
    days: Mapping[date, ListedDay]


def load_holidays_file(path: Path) -> HolidayFile:
    """Read and validate a holidays file; any problem raises CalendarError(file, key, reason)."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CalendarError(str(path), "(file)", "file not found") from None
    except OSError as e:
        raise CalendarError(str(path), "(file)", f"cannot read: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise CalendarError(str(path), "(file)", f"not UTF-8 text ({e.reason} at byte {e.start})") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CalendarError(str(path), "(toml)", f"invalid TOML: {e}") from e
    return parse_holidays(data, file=str(path))


def parse_holidays(data: Mapping[str, Any], *, file: str) -> HolidayFile:
    """Validate the parsed TOML of a holidays file (format: see rules/holidays.toml)."""
    for key in data:
        if key != "years":
            raise CalendarError(file, key, "unknown key; the file holds only [years.YYYY] tables")
    years_table = data.get("years", {})
    if not isinstance(years_table, dict):
        raise CalendarError(file, "years", "must be a table of [years.YYYY] tables")
    years: dict[int, bool] = {}
    days: dict[date, ListedDay] = {}
    for year_key, table in years_table.items():
        key = f"years.{year_key}"
        if not re.fullmatch(r"\d{4}", year_key):
            raise CalendarError(file, key, "the year must have four digits, e.g. [years.2027]")
        year = int(year_key)
        if not isinstance(table, dict):
            raise CalendarError(file, key, "must be a table with holidays = [...] and workdays = [...]")
        for k in table:
            if k not in ("complete", "holidays", "workdays"):
                raise CalendarError(file, f"{key}.{k}", "unknown key; expected complete, holidays, workdays")
        complete = table.get("complete", True)
        if not isinstance(complete, bool):
            raise CalendarError(file, f"{key}.complete", "must be true or false")
        years[year] = complete
        for kind in ("holidays", "workdays"):
            items = table.get(kind, [])
            if not isinstance(items, list):
                raise CalendarError(file, f"{key}.{kind}", "must be a list of dates")
            for i, item in enumerate(items):
                item_key = f"{key}.{kind}[{i}]"
                for d, name in _expand_item(item, file=file, key=item_key):
                    _check_day(d, year, kind, file=file, key=item_key)
                    earlier = days.get(d)
                    if earlier is not None and earlier.workday != (kind == "workdays"):
                        raise CalendarError(
                            file, item_key,
                            f"{d} is listed both as a holiday and as a working day (also at {earlier.key})",
                        )
                    if earlier is None or name is not None:
                        days[d] = ListedDay(workday=kind == "workdays", name=name, key=item_key)
    return HolidayFile(path=file, years=years, days=days)


def _expand_item(item: Any, *, file: str, key: str) -> Iterator[tuple[date, str | None]]:
    """One list item: "YYYY-MM-DD", "YYYY-MM-DD..YYYY-MM-DD", a TOML date, or {name=, dates=}."""
    name = None
    if isinstance(item, dict):
        for k in item:
            if k not in ("name", "dates"):
                raise CalendarError(file, f"{key}.{k}", "unknown key; expected name and dates")
        if "dates" not in item:
            raise CalendarError(file, f"{key}.dates", "missing")
        name = item.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise CalendarError(file, f"{key}.name", "must be a non-empty string, e.g. \"春节\"")
        specs = item["dates"] if isinstance(item["dates"], list) else [item["dates"]]
        key = f"{key}.dates"
    else:
        specs = [item]
    for spec in specs:
        for d in _expand_spec(spec, file=file, key=key):
            yield d, name


def _expand_spec(spec: Any, *, file: str, key: str) -> list[date]:
    if isinstance(spec, date) and not isinstance(spec, datetime):
        return [spec]
    if not isinstance(spec, str):
        raise CalendarError(file, key, f"{spec!r} is not a date; write \"2027-01-01\" or \"2027-02-05..2027-02-11\"")
    parts = spec.split("..")
    if len(parts) > 2:
        raise CalendarError(file, key, f"{spec!r}: a range has one '..', e.g. \"2027-02-05..2027-02-11\"")
    first, last = (_parse_date(p.strip(), file=file, key=key) for p in (parts[0], parts[-1]))
    if last < first:
        raise CalendarError(file, key, f"{spec!r}: the range ends before it starts")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise CalendarError(file, key, f"{spec!r}: a range longer than {MAX_RANGE_DAYS} days is surely a typo")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _parse_date(text: str, *, file: str, key: str) -> date:
    if not _DATE.fullmatch(text):
        raise CalendarError(file, key, f"{text!r} is not a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CalendarError(file, key, f"{text!r} is not a valid date") from None


def _check_day(d: date, year: int, kind: str, *, file: str, key: str) -> None:
    # A notice for year Y may move a working day into late December of Y-1 (e.g. 2011-12-31).
    if d.year != year and not (d.year == year - 1 and d.month == 12):
        raise CalendarError(
            file, key, f"{d} is outside {year}; a [years.{year}] table lists days of {year} "
            f"(or of December {year - 1})",
        )
    if kind == "workdays" and d.weekday() < 5:
        raise CalendarError(
            file, key, f"{d} is a {_WEEKDAYS[d.weekday()]}, already a working day; "
            "list only Saturdays and Sundays that become working days (调休)",
        )


@dataclass(frozen=True)
class _Year:
    source: Source
    first_ordinal: int
    workday: tuple[bool, ...]  # index: day of year - 1
    # prefix[i]: working days among the first i days of the year
    prefix: tuple[int, ...]
    names: Mapping[date, str]


def _warn_once(year: int, message: str) -> None:
    with _warn_lock:
        if year in _warned_years:
            return
        _warned_years.add(year)
    logger.warning(message)


def _package_name(name: str) -> str:
    # The package names days in English ("Spring Festival"); officers read Chinese.
    try:
        return chinese_calendar.Holiday(name).chinese
    except ValueError:
        return name


def _as_tz(tz: str | tzinfo) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


class WorkCalendar:
    """Working days per the State Council notices, the holidays file, else Mon–Fri.

    Per-year tables are built once on first use, so checking many rows is a list lookup.
    """

    def __init__(self, holidays_file: Path | None = None):
        self.holidays_file = holidays_file
        self._file = load_holidays_file(holidays_file) if holidays_file is not None else None
        self._years: dict[int, _Year] = {}
        self._lock = threading.Lock()

    # -- sources -------------------------------------------------------------------------------

    def source(self, year: int) -> Source:
        if self._file is not None and year in self._file.years:
            return "file"
        if _PACKAGE_FIRST_YEAR <= year <= _PACKAGE_LAST_YEAR:
            return "package"
        return "fallback"

    def covered_years(self) -> tuple[int, ...]:
        """Years with complete holiday data (package, or file not marked incomplete), ascending."""
        years = set(range(_PACKAGE_FIRST_YEAR, _PACKAGE_LAST_YEAR + 1))
        if self._file is not None:
            years.difference_update(self._file.years)
            years.update(y for y, complete in self._file.years.items() if complete)
        return tuple(sorted(years))

    def _year(self, year: int) -> _Year:
        table = self._years.get(year)
        if table is None:
            with self._lock:
                table = self._years.get(year)
                if table is None:
                    table = self._years[year] = self._build(year)
        return table

    def _build(self, year: int) -> _Year:
        first = date(year, 1, 1)
        days = [first + timedelta(days=i) for i in range((date(year + 1, 1, 1) - first).days)]
        source = self.source(year)
        names: dict[date, str] = {}
        if source == "package":
            workday = []
            for d in days:
                is_holiday, name = chinese_calendar.get_holiday_detail(d)
                workday.append(not is_holiday)
                if name:
                    names[d] = _package_name(name)
        else:
            workday = [d.weekday() < 5 for d in days]
        if source == "fallback":
            where = f" to {self._file.path}" if self._file is not None else " to the holidays file"
            _warn_once(
                year,
                f"no holiday data for {year}: counting Mon–Fri as working days; add [years.{year}]"
                f"{where} from the State Council holiday notice (国务院办公厅节假日安排通知)",
            )
        elif source == "file" and not self._file.years[year]:
            _warn_once(
                year,
                f"holiday data for {year} in {self._file.path} is marked incomplete: days it does not "
                f"list count Mon–Fri; complete it from the State Council notice and set complete = true",
            )
        if self._file is not None:
            for d, listed in self._file.days.items():
                if d.year == year:
                    workday[(d - first).days] = listed.workday
                    if listed.name is not None:
                        names[d] = listed.name
                    else:
                        names.pop(d, None)
        prefix = [0]
        for w in workday:
            prefix.append(prefix[-1] + w)
        return _Year(source, first.toordinal(), tuple(workday), tuple(prefix), names)

    # -- days ----------------------------------------------------------------------------------

    def is_workday(self, d: date) -> bool:
        if isinstance(d, datetime):
            raise TypeError("is_workday takes a local date; convert the datetime to local time and call .date()")
        table = self._year(d.year)
        return table.workday[d.toordinal() - table.first_ordinal]

    def holiday_name(self, d: date) -> str | None:
        """The festival a holiday or 调休 working day belongs to ("春节"), else None."""
        return self._year(d.year).names.get(d)

    def next_workday(self, d: date) -> date:
        """The first working day strictly after d."""
        return self._workday_on_or_after(d + ONE_DAY)

    def _workday_on_or_after(self, d: date) -> date:
        while not self.is_workday(d):
            d += ONE_DAY
        return d

    def count_workdays(self, first: date, end: date) -> int:
        """Working days d with first <= d < end (0 when end <= first)."""
        total = 0
        while first < end:
            table = self._year(first.year)
            stop = min(end, date(first.year + 1, 1, 1))
            total += (table.prefix[stop.toordinal() - table.first_ordinal]
                      - table.prefix[first.toordinal() - table.first_ordinal])
            first = stop
        return total

    # -- deadlines -----------------------------------------------------------------------------

    def due_date(self, received: date, n: int) -> date:
        """The last local day to answer a message received on `received` within n working days."""
        if n < 0:
            raise ValueError(f"n must be 0 or more working days, got {n}")
        if n == 0:
            return self._workday_on_or_after(received)
        d = received
        for _ in range(n):
            d = self.next_workday(d)
        return d

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """Deadline for a message received at `start` (aware, local time) within n working days.

        `start` is read in its own time zone, so pass local time (Asia/Shanghai); the result is
        00:00 local of the day after the due date, exclusive, in start's tzinfo.
        """
        if start.tzinfo is None:
            raise ValueError("add_working_days needs an aware local datetime; for database times use due_at_utc")
        due = self.due_date(start.date(), n)
        return datetime.combine(due + ONE_DAY, time(0), tzinfo=start.tzinfo)

    def due_at_utc(self, received: datetime, n: int, tz: str | tzinfo) -> datetime:
        """`add_working_days` for database times: any aware time in, aware UTC out; days counted in tz."""
        return self.add_working_days(_local(received, tz), n).astimezone(UTC)

    def working_days_between(self, a: datetime, b: datetime) -> int:
        """How many working days an answer at b took for a message received at a (aware times).

        Defined as the smallest n with ``b < add_working_days(a, n)``, so an answer is on time
        for a limit of n working days exactly when ``working_days_between(a, b) <= n``. Answered
        the same working day (or by the end of the first working day after a receipt on a rest
        day): 0; the next working day: 1. b is read in a's time zone; b <= a gives 0.
        """
        if a.tzinfo is None or b.tzinfo is None:
            raise ValueError("working_days_between needs aware datetimes (attach the time zone first)")
        received, answered = a.date(), b.astimezone(a.tzinfo).date()
        if answered <= self._workday_on_or_after(received):
            return 0
        # Each working day strictly between the two days, plus the answer day itself: answering on
        # a rest day is late for the working day before it.
        return self.count_workdays(received + ONE_DAY, answered) + 1

    def working_days_between_utc(self, a: datetime, b: datetime, tz: str | tzinfo) -> int:
        """`working_days_between` for database times (aware, usually UTC); days counted in tz."""
        return self.working_days_between(_local(a, tz), _local(b, tz))


def _local(moment: datetime, tz: str | tzinfo) -> datetime:
    # A naive time could be UTC or local wall-clock time; guessing would shift deadlines by 8 hours.
    if moment.utcoffset() is None:
        raise ValueError("expected an aware datetime (the database stores aware UTC); "
                         "attach tzinfo=timezone.utc to a UTC time read elsewhere")
    return moment.astimezone(_as_tz(tz))
