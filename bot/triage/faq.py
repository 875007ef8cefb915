"""FAQ auto-replies (常见问题自动回复) from rules/faq.toml.

Only confident questions get an automatic answer; complaints always go to a person.

The words of every pattern are compiled into one Aho-Corasick automaton: one pass over the text
finds every FAQ word present (overlapping ones too), so a pattern holds exactly when its words are
in that set, as plain substring tests would say. `candidate` answers "could any rule answer this?"
without classifying, which keeps the WeChat callback's hot path free of segmentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ahocorasick_rs

from bot.resources import rule_file
from bot.triage.classifier import Classification
from bot.triage.rules import (
    FAQ_FILE,
    RuleError,
    bounded_number,
    check_keys,
    keyword_list,
    normalize,
    normalize_keeps,
    read_toml,
)


@dataclass(frozen=True)
class FaqPattern:
    """Matches when every word of all_of and (if any are given) one word of any_of appear."""

    all_of: tuple[str, ...]
    any_of: tuple[str, ...]

    def words_in(self, present: set[str]) -> tuple[str, ...] | None:
        """The matched words when the pattern holds, given the set of FAQ words found in the text."""
        if not all(w in present for w in self.all_of):
            return None
        found_any = tuple(w for w in self.any_of if w in present)
        if self.any_of and not found_any:
            return None
        return self.all_of + found_any


@dataclass(frozen=True)
class FaqRule:
    id: str
    patterns: tuple[FaqPattern, ...]
    answer: str
    accounts: frozenset[str] | None  # account names as in the config's [[accounts]]; None: every account
    min_confidence: float

    def serves(self, name: str | None) -> bool:
        """Whether the rule answers for the account of normalized `name` (None: no account given)."""
        return self.accounts is None or name in self.accounts


def _account_name(account: str | None) -> str | None:
    return None if account is None else normalize(account)


@dataclass(frozen=True)
class FaqMatch:
    rule_id: str
    answer: str
    words: tuple[str, ...]  # the words that matched, for the reply log


def _parse_rule(path: Path, table, default_confidence: float, seen: set[str]) -> FaqRule:
    rule_id = table.get("id") if isinstance(table, dict) and isinstance(table.get("id"), str) else None
    if not rule_id or not rule_id.strip():
        raise RuleError(path, None, "every [[faq]] needs a non-empty string id")
    check_keys(path, rule_id, table, {"id", "patterns", "answer", "accounts", "min_confidence", "note"},
                {"patterns", "answer"})
    if rule_id in seen:
        raise RuleError(path, rule_id, "duplicate rule id")
    seen.add(rule_id)
    if not isinstance(table["patterns"], list) or not table["patterns"]:
        raise RuleError(path, rule_id, "patterns must be a non-empty list of {all = [...], any = [...]}")
    patterns = []
    for pattern in table["patterns"]:
        if not isinstance(pattern, dict) or not pattern:
            raise RuleError(path, rule_id, "each pattern is a table with all and/or any word lists")
        check_keys(path, rule_id, pattern, {"all", "any"})
        patterns.append(FaqPattern(
            all_of=keyword_list(path, rule_id, "all", pattern["all"]) if "all" in pattern else (),
            any_of=keyword_list(path, rule_id, "any", pattern["any"]) if "any" in pattern else (),
        ))
    answer = table["answer"]
    if not isinstance(answer, str) or not answer.strip():
        raise RuleError(path, rule_id, "answer must be a non-empty string")
    accounts = None
    if "accounts" in table:
        accounts = frozenset(keyword_list(path, rule_id, "accounts", table["accounts"]))
    confidence = default_confidence
    if "min_confidence" in table:
        confidence = bounded_number(path, rule_id, "min_confidence", table["min_confidence"], high=1.0)
    return FaqRule(rule_id, tuple(patterns), answer.strip(), accounts, confidence)


class FaqMatcher:
    def __init__(self, rules: tuple[FaqRule, ...] | list[FaqRule]):
        self.rules = tuple(rules)
        words = {w for rule in self.rules for p in rule.patterns for w in p.all_of + p.any_of}
        self._words = sorted(words)
        # Every occurrence, overlapping ones too: the same presence test as `word in text` for each word.
        self._automaton = ahocorasick_rs.AhoCorasick(self._words) if words else None
        # Words of ideographs only (the usual case) are found in the text as it came, without normalizing it.
        self._raw_ok = all(normalize_keeps(w) for w in self._words)
        # Each pattern under a word it cannot hold without (its first `all` word, else each `any` word):
        # `candidate` looks only at the patterns of the words present. (A pattern without words, under
        # "", holds for every text.)
        self._needing: dict[str, list[tuple[FaqRule, FaqPattern]]] = {}
        for rule in self.rules:
            for p in rule.patterns:
                for word in p.all_of[:1] or p.any_of or ("",):
                    self._needing.setdefault(word, []).append((rule, p))

    def _present(self, text: str) -> set[str]:
        """Every FAQ word occurring in `text` once normalized (read as it came when every word is of
        ideographs: bot.triage.rules.normalize_keeps)."""
        if self._automaton is None:
            return set()
        scanned = text if self._raw_ok else normalize(text)
        return {self._words[i] for i, _start, _end in self._automaton.find_matches_as_indexes(scanned, overlapping=True)}

    def _rules_for(self, account: str | None):
        name = _account_name(account)
        for order, rule in enumerate(self.rules):
            if rule.serves(name):
                yield order, rule

    def candidate(self, text: str, account: str | None = None) -> bool:
        """Whether some rule's words are in `text`: only then can `match` answer, whatever the intent."""
        present = self._present(text)
        if not present and "" not in self._needing:
            return False
        name = _account_name(account)
        for word in ("", *present):
            for rule, p in self._needing.get(word, ()):
                if rule.serves(name) and p.words_in(present) is not None:
                    return True
        return False

    @classmethod
    def from_file(cls, path: Path) -> FaqMatcher:
        path = Path(path)
        data = read_toml(path)
        check_keys(path, None, data, {"defaults", "faq"}, {"faq"})
        defaults = data.get("defaults", {})
        check_keys(path, "[defaults]", defaults, {"min_confidence"})
        default_confidence = bounded_number(path, "[defaults]", "min_confidence", defaults.get("min_confidence", 0.6), high=1.0)
        if not isinstance(data["faq"], list):
            raise RuleError(path, None, "[[faq]] must be an array of tables")
        seen: set[str] = set()
        return cls([_parse_rule(path, table, default_confidence, seen) for table in data["faq"]])

    @classmethod
    def from_dir(cls, rules_dir: Path | None) -> FaqMatcher:
        return cls.from_file(rule_file(rules_dir, FAQ_FILE))

    def match(self, text: str, classification: Classification, account: str | None = None) -> FaqMatch | None:
        """The best FAQ answer for a confidently classified question, or None. `account` is the account's name."""
        if classification.intent != "question" or classification.spam:
            return None  # complaints, suggestions and the rest go to a person or need no answer
        present = self._present(text)
        best, best_key = None, None
        for order, rule in self._rules_for(account):
            if classification.confidence < rule.min_confidence:
                continue
            found = [words for p in rule.patterns if (words := p.words_in(present)) is not None]
            if not found:
                continue
            words = max(found, key=len)
            # An account's own rule beats a global one; then the more specific match; then file order.
            key = (rule.accounts is not None, len(words), -order)
            if best_key is None or key > best_key:
                best, best_key = FaqMatch(rule.id, rule.answer, words), key
        return best
