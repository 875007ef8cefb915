"""Word checks on any text an office puts out: posts before publishing (bot.publishing.checks),
answers to citizens (bot.tickets.answering) and inspection facts. Pure: text in, problems out.

Each Problem says what is wrong and where: the field, the line and column, the text around it and,
for typos, the correction. The rules are data in the rules directory (config `triage.rules_dir`),
validated at load with the file and line or key named:

- sensitive.txt  敏感词: one word a line; `[category]` starts a section; `re:REGEX` lines match
                 patterns (ID card numbers); `!PHRASE` lines exempt a phrase that contains a listed
                 word ("保守国家秘密" is fine although 秘密 is listed); `#` starts a comment.
- typos.toml     错别字/错误表述 in fixed official phrases and titles: `[category]` tables of
                 `"wrong" = "right"` or `"wrong" = { right = "...", note = "..." }`.

`cached_check_rules` reloads the rule files only when they changed.
"""

from __future__ import annotations

import re
import threading
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.errors import GovbotError, text_en, text_zh
from bot.labels import label
from bot.reloading import Reloading
from bot.resources import rule_file

SENSITIVE_FILE = "sensitive.txt"
TYPOS_FILE = "typos.toml"
# A word reported this often in one field is enough; the rest are summed up in the last message.
MAX_HITS_PER_TERM = 5
SNIPPET_CONTEXT = 10
# Full-width ASCII (Ａ, １) folds to half-width so rules match either; same length, so offsets hold.
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


class CheckRulesError(GovbotError):
    """A check rules file is invalid: names the file, the line or key, and the reason."""

    def __init__(self, file: str | Path, where: str | None, reason: str):
        self.file, self.where, self.reason = str(file), where, reason
        if where:
            super().__init__("rules.invalid", file=self.file, where=where, reason=reason)
        else:
            super().__init__("rules.file_invalid", file=self.file, reason=reason)


@dataclass(frozen=True)
class Problem:
    """One failed check. `offset` is 0-based in the field's text; line and column are 1-based.

    `code` names the catalogue entry "check.<code>" (bot/error_texts.py); `params` are its values, so
    `message_zh` is the catalogue's Chinese and `message` its English.
    """

    code: str
    message: str
    where: str  # the field (title, body, digest, weibo_text, cover) or "post"/"account"
    offset: int | None = None
    line: int | None = None
    column: int | None = None
    snippet: str = ""
    suggestion: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    text_code: str = ""  # the catalogue entry when it is not "check.<code>" (one code, several wordings)

    @property
    def message_zh(self) -> str:
        values = dict(self.params)
        text = text_zh(self.text_code or f"check.{self.code}", **values)
        return text_zh("check.more_hits", text=text, more=values["more"]) if values.get("more") else text

    @property
    def located_zh(self) -> str:
        """The message with where it is: "正文第 2 行第 5 列：敏感词“机密”（涉密标识）"."""
        place = label(self.where, "field") + (f"第 {self.line} 行第 {self.column} 列" if self.line is not None else "")
        return f"{place}：{self.message_zh}"

    def __str__(self) -> str:
        loc = self.where if self.line is None else f"{self.where} line {self.line} col {self.column}"
        text = f"{loc}: {self.message}"
        return f"{text} in “{self.snippet}”" if self.snippet else text

    def as_dict(self) -> dict:
        return {**asdict(self), "params": dict(self.params), "text": str(self), "message_zh": self.message_zh}


def problem(code: str, where: str, *, offset: int | None = None, line: int | None = None, column: int | None = None,
            snippet: str = "", suggestion: str | None = None, text_code: str = "", **params: Any) -> Problem:
    """A problem whose message comes from the catalogue entry "check.<code>" (or `text_code`)."""
    return Problem(code, text_en(text_code or f"check.{code}", **params), where, offset, line, column, snippet,
                   suggestion, tuple(params.items()), text_code)


@dataclass(frozen=True)
class SensitiveTerm:
    text: str  # the word, or the regular expression's source
    category: str
    line: int
    pattern: re.Pattern | None = None  # set for `re:` lines


@dataclass(frozen=True)
class Typo:
    wrong: str
    right: str
    category: str
    note: str = ""


@dataclass(frozen=True)
class CheckRules:
    sensitive: tuple[SensitiveTerm, ...]
    exempt: tuple[str, ...]
    typos: tuple[Typo, ...]


def fold(text: str) -> str:
    """Half-width and lower case, character for character, so offsets in the folded text are offsets in the text."""
    text = text.translate(_FULLWIDTH)
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


_CATEGORY = re.compile(r"^\[(.*)\]$")


def parse_sensitive(text: str, *, file: str = SENSITIVE_FILE) -> tuple[tuple[SensitiveTerm, ...], tuple[str, ...]]:
    """sensitive.txt -> (terms, exempt phrases). Raises CheckRulesError naming the line."""
    terms: list[SensitiveTerm] = []
    exempt: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    category = "敏感词"
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"line {lineno}"
        m = _CATEGORY.match(line)
        if m:
            category = m.group(1).strip()
            if not category:
                raise CheckRulesError(file, where, "empty category name in [ ]")
            continue
        if line.startswith("re:"):
            source = line[3:].strip()
            if not source:
                raise CheckRulesError(file, where, "empty regular expression after re:")
            try:
                pattern = re.compile(source)
            except re.error as e:
                raise CheckRulesError(file, where, f"invalid regular expression {source!r}: {e}") from None
            if pattern.search("") is not None:
                raise CheckRulesError(file, where, f"regular expression {source!r} matches empty text, so it would match everywhere")
            key = "re:" + source
            if key in seen:
                raise CheckRulesError(file, where, f"duplicate pattern {source!r} (first on line {seen[key]})")
            seen[key] = lineno
            terms.append(SensitiveTerm(source, category, lineno, pattern))
            continue
        if line.startswith("!"):
            phrase = fold(line[1:].strip())
            if len(phrase) < 2:
                raise CheckRulesError(file, where, "an exempt phrase (!...) needs at least two characters")
            exempt.append((phrase, lineno))
            continue
        word = fold(line)
        if len(word) < 2:
            raise CheckRulesError(file, where, f"single-character word {line!r} would match far too much; list a phrase")
        if word in seen:
            raise CheckRulesError(file, where, f"duplicate word {line!r} (first on line {seen[word]})")
        seen[word] = lineno
        terms.append(SensitiveTerm(word, category, lineno))
    words = [t.text for t in terms if t.pattern is None]
    for phrase, lineno in exempt:
        if not any(w in phrase for w in words):
            raise CheckRulesError(file, f"line {lineno}", f"exempt phrase {phrase!r} contains no listed word, so it exempts nothing")
    return tuple(terms), tuple(p for p, _ in exempt)


def parse_typos(text: str, *, file: str = TYPOS_FILE) -> tuple[Typo, ...]:
    """typos.toml -> typos. Raises CheckRulesError naming the key (or the line of a syntax error)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CheckRulesError(file, "syntax", str(e)) from None
    typos: list[Typo] = []
    first: dict[str, str] = {}
    for category, table in data.items():
        if not isinstance(table, dict):
            raise CheckRulesError(file, f"key {category!r}", "expected a [category] table of \"wrong\" = \"right\" entries")
        for wrong, value in table.items():
            key = f"key {category}.{wrong!r}"
            note = ""
            if isinstance(value, dict):
                unknown = set(value) - {"right", "note"}
                if unknown:
                    raise CheckRulesError(file, key, f"unknown field(s) {', '.join(sorted(unknown))}; allowed: right, note")
                note = value.get("note", "")
                value = value.get("right")
                if not isinstance(note, str):
                    raise CheckRulesError(file, key, "note must be a string")
            if not isinstance(value, str) or not value.strip():
                raise CheckRulesError(file, key, "the correction must be a non-empty string")
            wrong_f, right = fold(wrong.strip()), value.strip()
            if len(wrong_f) < 2:
                raise CheckRulesError(file, key, "the wrong phrase needs at least two characters")
            if wrong_f == fold(right):
                raise CheckRulesError(file, key, "wrong and right are the same")
            if wrong_f in fold(right):
                raise CheckRulesError(file, key, f"the correction {right!r} contains the wrong phrase, so correct text would be flagged")
            if wrong_f in first:
                raise CheckRulesError(file, key, f"listed twice (also {first[wrong_f]})")
            first[wrong_f] = f"{category}.{wrong}"
            typos.append(Typo(wrong_f, right, category, note))
    for t in typos:
        for other in typos:
            if t is not other and t.wrong in fold(other.right):
                raise CheckRulesError(file, f"key {t.category}.{t.wrong!r}",
                                      f"the correction of {other.category}.{other.wrong!r} ({other.right!r}) contains it")
    return tuple(typos)


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CheckRulesError(path, None, "missing") from None
    except UnicodeDecodeError as e:
        raise CheckRulesError(path, f"byte {e.start}", "not UTF-8 text") from None
    except OSError as e:
        raise CheckRulesError(path, None, f"cannot read: {e.strerror}") from None


def load_check_rules(rules_dir: str | Path | None) -> CheckRules:
    """Load and validate sensitive.txt and typos.toml: the site's rules_dir over the shipped ones."""
    d = Path(rules_dir) if rules_dir is not None else None
    sensitive_file, typos_file = rule_file(d, SENSITIVE_FILE), rule_file(d, TYPOS_FILE)
    sensitive, exempt = parse_sensitive(_read(sensitive_file), file=str(sensitive_file))
    typos = parse_typos(_read(typos_file), file=str(typos_file))
    return CheckRules(sensitive=sensitive, exempt=exempt, typos=typos)


_cache: dict[Path | None, Reloading[CheckRules]] = {}
_cache_lock = threading.Lock()


def cached_check_rules(rules_dir: str | Path | None) -> CheckRules:
    """The rules, reloaded only when a file changed (bot.reloading). A file broken while the service
    runs keeps the last good rules in force (logged), so checks neither stop nor silently pass."""
    d = Path(rules_dir).resolve() if rules_dir is not None else None
    with _cache_lock:
        rules = _cache.get(d)
    if rules is None:
        rules = Reloading(lambda: [rule_file(d, SENSITIVE_FILE), rule_file(d, TYPOS_FILE)],
                          lambda: load_check_rules(d), what=f"check rules of {d or 'the package'}",
                          errors=(CheckRulesError,))
        with _cache_lock:
            rules = _cache.setdefault(d, rules)
    return rules.get()


def rules_for(config: Config) -> CheckRules:
    return cached_check_rules(config.rules_dir)


def text_position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def snippet_of(text: str, start: int, end: int, shown: str | None = None) -> str:
    before = text[max(0, start - SNIPPET_CONTEXT):start]
    after = text[end:end + SNIPPET_CONTEXT]
    s = ("…" if start > SNIPPET_CONTEXT else "") + before + (shown if shown is not None else text[start:end]) + after
    s += "…" if end + SNIPPET_CONTEXT < len(text) else ""
    return re.sub(r"\s+", " ", s)


def _mask(s: str) -> str:
    """Personal data is not repeated in full in problems, logs or the API."""
    keep = 3 if len(s) > 8 else 1
    return s[:keep] + "*" * max(1, len(s) - 2 * keep) + s[-keep:]


def problem_at(code: str, field: str, text: str, start: int, end: int, *,
        shown: str | None = None, suggestion: str | None = None, **params: Any) -> Problem:
    line, column = text_position(text, start)
    return problem(code, field, offset=start, line=line, column=column, snippet=snippet_of(text, start, end, shown),
                   suggestion=suggestion, **params)


def _find_all(haystack: str, needle: str) -> Iterable[int]:
    i = haystack.find(needle)
    while i != -1:
        yield i
        i = haystack.find(needle, i + len(needle))


def capped(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= MAX_HITS_PER_TERM:
        return problems
    kept = problems[:MAX_HITS_PER_TERM]
    last = kept[-1]
    more = len(problems) - MAX_HITS_PER_TERM
    kept[-1] = Problem(last.code, text_en("check.more_hits", text=last.message, more=more), last.where, last.offset,
                       last.line, last.column, last.snippet, last.suggestion, (*last.params, ("more", more)), last.text_code)
    return kept


def check_sensitive(field: str, text: str, rules: CheckRules) -> list[Problem]:
    folded = fold(text)
    exempt_spans = [(i, i + len(p)) for p in rules.exempt for i in _find_all(folded, p)]
    problems: list[Problem] = []
    for term in rules.sensitive:
        if term.pattern is None and term.text not in folded:
            continue  # most terms are absent: one substring search each (checks run before every publication)
        hits: list[Problem] = []
        if term.pattern is None:
            for i in _find_all(folded, term.text):
                end = i + len(term.text)
                if any(s <= i and end <= e for s, e in exempt_spans):
                    continue
                hits.append(problem_at("sensitive_word", field, text, i, end, word=text[i:end], category=term.category))
        else:
            for m in term.pattern.finditer(folded):
                masked = _mask(text[m.start():m.end()])
                hits.append(problem_at("sensitive_pattern", field, text, m.start(), m.end(), shown=masked, masked=masked,
                                category=term.category, rule_line=term.line, file=SENSITIVE_FILE))
        problems += capped(hits)
    return problems


def check_typos(field: str, text: str, rules: CheckRules) -> list[Problem]:
    folded = fold(text)
    problems: list[Problem] = []
    for typo in rules.typos:
        if typo.wrong not in folded:
            continue
        hits = []
        for i in _find_all(folded, typo.wrong):
            end = i + len(typo.wrong)
            note = f"; {typo.note}" if typo.note else ""
            hits.append(problem_at("typo", field, text, i, end, suggestion=typo.right, wrong=text[i:end], right=typo.right,
                            category=typo.category, note=note, note_zh=f"；{typo.note}" if typo.note else ""))
        problems += capped(hits)
    return problems
