"""The checklist as data (rules/inspection.toml), validated at load with the file and indicator named.

Pure: parsing and validation only; reading the file is `load_checklist`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import GovbotError

CHECKLIST_FILE = "inspection.toml"
MEASURES = ("longest_gap", "published_problems", "overdue_messages", "late_answers", "none_answered",
            "posts_in_period", "failed_publications", "manual")
# The parameters each measure takes, with their type; anything else in an indicator is an error.
PARAMS: dict[str, dict[str, type]] = {
    "longest_gap": {"fail_at": int, "warn_at": int},
    "published_problems": {"codes": list},
    "overdue_messages": {"warn_workdays": int},
    "late_answers": {"fail_at": int},
    "none_answered": {},
    "posts_in_period": {"min_posts": int},
    "failed_publications": {},
    "manual": {},
}
CHECK_CODES = ("typo", "sensitive_word", "sensitive_pattern")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
_COMMON = {"id", "group", "name", "veto", "measure", "source", "note"}


class ChecklistError(GovbotError):
    """rules/inspection.toml is invalid: names the file, the indicator and the reason."""

    def __init__(self, file: str | Path, where: str | None, reason: str):
        self.file, self.where, self.reason = str(file), where, reason
        if where:
            super().__init__("inspection.checklist_invalid", file=self.file, where=where, reason=reason)
        else:
            super().__init__("inspection.checklist_file_invalid", file=self.file, reason=reason)


@dataclass(frozen=True)
class Indicator:
    id: str
    group: str
    name: str
    veto: bool
    measure: str
    source: str
    note: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


@dataclass(frozen=True)
class Checklist:
    name: str
    source: str
    indicators: tuple[Indicator, ...]

    def get(self, indicator_id: str) -> Indicator | None:
        return next((i for i in self.indicators if i.id == indicator_id), None)


def parse_checklist(data: Mapping[str, Any], *, file: str = CHECKLIST_FILE) -> Checklist:
    meta = data.get("meta", {})
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not isinstance(meta.get("source"), str):
        raise ChecklistError(file, "[meta]", "needs name and source (text)")
    unknown = set(data) - {"meta", "indicator"}
    if unknown:
        raise ChecklistError(file, None, f"unknown section(s): {', '.join(sorted(unknown))}")
    items = data.get("indicator")
    if not isinstance(items, list) or not items:
        raise ChecklistError(file, None, "no [[indicator]] entries")
    seen: set[str] = set()
    out = []
    for n, item in enumerate(items, 1):
        out.append(_indicator(item, file=file, n=n, seen=seen))
    return Checklist(meta["name"], meta["source"], tuple(out))


def _indicator(item: Any, *, file: str, n: int, seen: set[str]) -> Indicator:
    where = f"indicator #{n}"
    if not isinstance(item, dict):
        raise ChecklistError(file, where, "must be a table")
    iid = item.get("id")
    if not isinstance(iid, str) or not _ID.match(iid):
        raise ChecklistError(file, where, "id must be lower-case letters, digits and _ (starting with a letter)")
    where = f"indicator {iid!r}"
    if iid in seen:
        raise ChecklistError(file, where, "id used twice")
    seen.add(iid)
    for key in ("group", "name", "source"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ChecklistError(file, where, f"{key} must be non-empty text")
    if not isinstance(item.get("veto"), bool):
        raise ChecklistError(file, where, "veto must be true or false")
    measure = item.get("measure")
    if measure not in MEASURES:
        raise ChecklistError(file, where, f"unknown measure {measure!r}; known: {', '.join(MEASURES)}")
    allowed = PARAMS[measure]
    params = {k: v for k, v in item.items() if k not in _COMMON}
    for key, value in params.items():
        if key not in allowed:
            raise ChecklistError(file, where, f"{key!r} is not a parameter of measure {measure}"
                                 + (f" (it takes {', '.join(allowed)})" if allowed else " (it takes none)"))
        if not isinstance(value, allowed[key]) or isinstance(value, bool):
            raise ChecklistError(file, where, f"{key} must be {allowed[key].__name__}")
        if isinstance(value, int) and value < 0:
            raise ChecklistError(file, where, f"{key} must not be negative")
    for key in allowed:
        if key not in params:
            raise ChecklistError(file, where, f"measure {measure} needs {key}")
    if measure == "longest_gap" and params["warn_at"] >= params["fail_at"]:
        raise ChecklistError(file, where, "warn_at must be smaller than fail_at")
    if measure == "published_problems":
        bad = [c for c in params["codes"] if c not in CHECK_CODES]
        if bad or not params["codes"]:
            raise ChecklistError(file, where, f"codes must name some of {', '.join(CHECK_CODES)}")
    note = item.get("note", "")
    if not isinstance(note, str):
        raise ChecklistError(file, where, "note must be text")
    return Indicator(iid, item["group"].strip(), item["name"].strip(), item["veto"], measure,
                     item["source"].strip(), note.strip(), params)


def load_checklist(path: Path) -> Checklist:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChecklistError(path, None, "file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ChecklistError(path, None, f"not valid TOML: {exc}") from None
    return parse_checklist(data, file=str(path))
