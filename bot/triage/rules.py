"""Triage rules kept as data in rules/: load, validate, and reload them when a file changes.

Files (all in one rules directory):
- intent.toml   intent rules (complaint 投诉, question 咨询, suggestion 建议, praise 表扬, other),
                spam rules, negation words and the decision settings (thresholds, priority).
- topics.toml   topic vocabulary rules (the seven topics of the 留言 data) and topic scoring settings.
- userdict.txt  government terms for jieba ("word [freq] [tag]" a line), so that negation scope sees
                e.g. 不动产 or 不予受理 as one word.
- faq.toml      FAQ auto-reply rules; loaded by bot.triage.faq.
- learned.toml  optional: weighted keywords learned from labelled messages (`govbot rules learn`,
                bot.triage.learn), added to the hand rules' scores times a factor.

Every validation problem raises RuleError naming the file, the rule id and the reason.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import GovbotError
from bot.reloading import Reloading
from bot.resources import rule_file

if TYPE_CHECKING:
    from bot.triage.classifier import Classifier
    from bot.triage.faq import FaqMatcher

INTENTS = ("complaint", "question", "suggestion", "praise", "other")
# The seven topics of the citizen message data (留言分类).
TOPICS = ("城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障", "商贸旅游", "卫生计生")

INTENT_FILE = "intent.toml"
TOPICS_FILE = "topics.toml"
USERDICT_FILE = "userdict.txt"
FAQ_FILE = "faq.toml"
LEARNED_FILE = "learned.toml"
RULE_FILES = (INTENT_FILE, TOPICS_FILE, USERDICT_FILE, FAQ_FILE, LEARNED_FILE)

MAX_WEIGHT = 100.0

# Full-width ASCII (Ａ, １, ？, ，) folds to half-width so rules and messages compare alike.
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
# Only the full-width characters are replaced: str.translate looks up every character of a Chinese
# text one by one, several times slower on a letter.
_FULLWIDTH_RUN = re.compile("[\uff01-\uff5e\u3000]+")


def _halfwidth(m: re.Match) -> str:
    return m.group().translate(_FULLWIDTH)


def normalize(text: str) -> str:
    """The form both rule words and messages are matched in: half-width, lower case."""
    return _FULLWIDTH_RUN.sub(_halfwidth, text).lower()


# CJK ideographs: normalize keeps each as it is, and no other character becomes one (tested for
# every code point). A word of them is in a text exactly when it is in the normalized text.
_IDEOGRAPHS = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]+")


def normalize_keeps(word: str) -> bool:
    """Whether `word` is found in a text as in its normalized form (a word of CJK ideographs only)."""
    return _IDEOGRAPHS.fullmatch(word) is not None


class RuleError(GovbotError):
    """A rules file is invalid: names the file, the rule (id, section or line) and the reason."""

    def __init__(self, file: str | Path, rule: str | None, reason: str):
        self.file, self.rule, self.reason = str(file), rule, reason
        if rule:
            super().__init__("rules.rule_invalid", file=self.file, rule=rule, reason=reason)
        else:
            super().__init__("rules.file_invalid", file=self.file, reason=reason)


@dataclass(frozen=True, eq=False)  # identity hash: rules key the per-message tallies
class Rule:
    """One keyword rule: every listed word (or regex hit) found adds `weight` to `label`."""

    id: str
    kind: str  # 'intent' | 'topic' | 'spam'
    label: str | None  # the intent or topic it scores for; None for spam
    weight: float
    words: tuple[str, ...]
    patterns: tuple[re.Pattern, ...]
    negated: str | None = None  # intent a negated word counts for instead ("不满意" -> complaint)
    # Learned rules: each word's own weight, multiplied by `weight` (the file's factor).
    word_weights: dict[str, float] | None = None
    # Applies only to a text of at most this many characters: colloquial forms of short comments
    # (评论) that mislead on long letters (留言), where "谢谢" or "…吧" close a complaint.
    max_chars: int | None = None


@dataclass(frozen=True)
class Negation:
    words: tuple[str, ...]  # negator tokens: 不, 没有, 并不 ...
    window: int  # characters before a word searched for a negator
    scope: int  # tokens before the word a negator may stand in ("不是很满意": 2)


@dataclass(frozen=True)
class IntentDecision:
    priority: tuple[str, ...]  # when several intents are strong, the first listed wins ...
    overrule_ratio: float  # ... unless a later one scores at least this many times more
    thresholds: dict[str, float]  # score from which an intent counts as strong
    fallback_intent: str  # with no strong intent, this one still wins from fallback_min ...
    fallback_min: float  # ... otherwise the intent is "other"
    spam_threshold: float
    subject_weight: float
    confidence_k: float  # evidence needed for confidence 0.5 on an uncontested intent
    max_repeats: int  # a word counts at most this many times


@dataclass(frozen=True)
class TopicScoring:
    subject_weight: float
    min_score: float  # below it there is no clear topic: the caller routes to the default desk
    max_repeats: int  # a word counts at most this many times


@dataclass(frozen=True)
class RuleSet:
    intent_rules: tuple[Rule, ...]
    spam_rules: tuple[Rule, ...]
    topic_rules: tuple[Rule, ...]
    negation: Negation
    decision: IntentDecision
    topic_scoring: TopicScoring
    userdict: tuple[tuple[str, int | None, str | None], ...]  # (word, freq, tag)
    learned_rules: tuple[Rule, ...] = ()  # from learned.toml: one rule per intent and per topic


def read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise RuleError(path, None, "file is missing") from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(path, None, f"not valid TOML: {exc}") from None


def check_keys(path: Path, rule: str | None, table: dict, allowed: set[str], required: set[str] = frozenset()):
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RuleError(path, rule, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    missing = sorted(required - set(table))
    if missing:
        raise RuleError(path, rule, f"missing key(s) {', '.join(missing)}")


def bounded_number(path: Path, rule: str | None, name: str, value, *, low: float = 0.0, high: float = MAX_WEIGHT) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low < value <= high):
        raise RuleError(path, rule, f"{name} must be a number > {low:g} and <= {high:g}, got {value!r}")
    return float(value)


def _count(path: Path, rule: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
        raise RuleError(path, rule, f"{name} must be an integer from 1 to 10, got {value!r}")
    return value


def _string_list(path: Path, rule: str, name: str, value) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise RuleError(path, rule, f"{name} must be a non-empty list of strings")
    if not all(isinstance(w, str) and w.strip() for w in value):
        raise RuleError(path, rule, f"{name} must contain only non-empty strings")
    return tuple(value)


def keyword_list(path: Path, rule: str, name: str, value) -> tuple[str, ...]:
    """A validated list of keywords in matching form (see normalize)."""
    return tuple(normalize(w.strip()) for w in _string_list(path, rule, name, value))


def _patterns(path: Path, rule: str, value) -> tuple[re.Pattern, ...]:
    compiled = []
    for pattern in _string_list(path, rule, "patterns", value):
        try:
            # Not normalized (lower-casing would turn \W into \w): the text is folded and lower-cased,
            # so write patterns half-width; IGNORECASE forgives upper-case letters.
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise RuleError(path, rule, f"bad regex {pattern!r}: {exc}") from None
    return tuple(compiled)


_RULE_KEYS = {"id", "weight", "words", "patterns", "note", "max_chars"}


def _rules(path: Path, tables, kind: str, label_key: str | None, labels: tuple[str, ...], seen: set[str]) -> list[Rule]:
    if not isinstance(tables, list):
        raise RuleError(path, None, f"[[{kind}]] must be an array of tables")
    allowed = _RULE_KEYS | ({label_key} if label_key else set()) | ({"negated"} if kind == "intent" else set())
    rules = []
    for n, table in enumerate(tables, 1):
        rule_id = table.get("id") if isinstance(table.get("id"), str) else None
        if not rule_id or not rule_id.strip():
            raise RuleError(path, f"#{n}", "every rule needs a non-empty string id")
        check_keys(path, rule_id, table, allowed, {"weight"} | ({label_key} if label_key else set()))
        if rule_id in seen:
            raise RuleError(path, rule_id, "duplicate rule id")
        seen.add(rule_id)
        label = None
        if label_key:
            label = table[label_key]
            if label not in labels:
                raise RuleError(path, rule_id, f"unknown {label_key} {label!r}; known: {', '.join(labels)}")
        if "words" not in table and "patterns" not in table:
            raise RuleError(path, rule_id, "a rule needs words or patterns")
        words = keyword_list(path, rule_id, "words", table["words"]) if "words" in table else ()
        patterns = _patterns(path, rule_id, table["patterns"]) if "patterns" in table else ()
        negated = table.get("negated")
        if negated is not None and negated not in INTENTS:
            raise RuleError(path, rule_id, f"unknown negated intent {negated!r}; known: {', '.join(INTENTS)}")
        weight = bounded_number(path, rule_id, "weight", table["weight"])
        max_chars = table.get("max_chars")
        if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1):
            raise RuleError(path, rule_id, f"max_chars must be a positive integer, got {max_chars!r}")
        rules.append(Rule(rule_id, kind, label, weight, words, patterns, negated, None, max_chars))
    return rules


def _load_intent(path: Path, seen: set[str]) -> tuple[list[Rule], list[Rule], Negation, IntentDecision]:
    data = read_toml(path)
    check_keys(path, None, data, {"decision", "negation", "rule", "spam"}, {"decision", "negation", "rule"})
    decision = data["decision"]
    decision_keys = {"priority", "overrule_ratio", "threshold", "fallback_intent", "fallback_min",
                     "spam_threshold", "subject_weight", "confidence_k", "max_repeats"}
    check_keys(path, "[decision]", decision, decision_keys, decision_keys)
    priority = decision["priority"]
    if not isinstance(priority, list) or sorted(priority) != sorted(INTENTS):
        raise RuleError(path, "[decision]", f"priority must list each intent once: {', '.join(INTENTS)}")
    thresholds = decision["threshold"]
    if not isinstance(thresholds, dict):
        raise RuleError(path, "[decision.threshold]", "must be a table intent = score")
    check_keys(path, "[decision.threshold]", thresholds, set(INTENTS), set(INTENTS))
    if decision["fallback_intent"] not in INTENTS:
        raise RuleError(path, "[decision]", f"unknown fallback_intent {decision['fallback_intent']!r}; "
                                            f"known: {', '.join(INTENTS)}")
    parsed = IntentDecision(
        priority=tuple(priority),
        overrule_ratio=bounded_number(path, "[decision]", "overrule_ratio", decision["overrule_ratio"]),
        thresholds={k: bounded_number(path, "[decision.threshold]", k, v) for k, v in thresholds.items()},
        fallback_intent=decision["fallback_intent"],
        fallback_min=bounded_number(path, "[decision]", "fallback_min", decision["fallback_min"]),
        spam_threshold=bounded_number(path, "[decision]", "spam_threshold", decision["spam_threshold"]),
        subject_weight=bounded_number(path, "[decision]", "subject_weight", decision["subject_weight"]),
        confidence_k=bounded_number(path, "[decision]", "confidence_k", decision["confidence_k"]),
        max_repeats=_count(path, "[decision]", "max_repeats", decision["max_repeats"]),
    )
    neg = data["negation"]
    check_keys(path, "[negation]", neg, {"words", "window", "scope"}, {"words", "window", "scope"})
    negation = Negation(keyword_list(path, "[negation]", "words", neg["words"]),
                        _count(path, "[negation]", "window", neg["window"]),
                        _count(path, "[negation]", "scope", neg["scope"]))
    intent_rules = _rules(path, data["rule"], "intent", "intent", INTENTS, seen)
    spam_rules = _rules(path, data.get("spam", []), "spam", None, (), seen)
    return intent_rules, spam_rules, negation, parsed


def _load_topics(path: Path, seen: set[str]) -> tuple[list[Rule], TopicScoring]:
    data = read_toml(path)
    check_keys(path, None, data, {"scoring", "rule"}, {"scoring", "rule"})
    scoring = data["scoring"]
    scoring_keys = {"subject_weight", "min_score", "max_repeats"}
    check_keys(path, "[scoring]", scoring, scoring_keys, scoring_keys)
    parsed = TopicScoring(
        subject_weight=bounded_number(path, "[scoring]", "subject_weight", scoring["subject_weight"]),
        min_score=bounded_number(path, "[scoring]", "min_score", scoring["min_score"]),
        max_repeats=_count(path, "[scoring]", "max_repeats", scoring["max_repeats"]),
    )
    return _rules(path, data["rule"], "topic", "topic", TOPICS, seen), parsed


def _load_userdict(path: Path) -> tuple[tuple[str, int | None, str | None], ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RuleError(path, None, "file is missing") from None
    except UnicodeDecodeError as exc:
        raise RuleError(path, None, f"not UTF-8: {exc}") from None
    entries = []
    for n, line in enumerate(lines, 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) > 3:
            raise RuleError(path, f"line {n}", "expected 'word [freq] [tag]'")
        freq = None
        if len(parts) > 1:
            if not parts[1].isdigit() or int(parts[1]) < 1:
                raise RuleError(path, f"line {n}", f"freq must be a positive integer, got {parts[1]!r}")
            freq = int(parts[1])
        entries.append((parts[0], freq, parts[2] if len(parts) == 3 else None))
    return tuple(entries)


def _load_learned(path: Path) -> list[Rule]:
    """learned.toml: [settings] factors and one table of word = weight per intent and topic."""
    if not path.exists():
        return []  # nothing learned yet: the hand rules alone decide
    data = read_toml(path)
    check_keys(path, None, data, {"settings", "intent", "topic"}, {"settings"})
    settings = data["settings"]
    check_keys(path, "[settings]", settings, {"intent_factor", "topic_factor"}, {"intent_factor", "topic_factor"})
    rules = []
    for kind, labels in (("intent", INTENTS), ("topic", TOPICS)):
        factor = bounded_number(path, "[settings]", f"{kind}_factor", settings[f"{kind}_factor"])
        tables = data.get(kind, {})
        if not isinstance(tables, dict):
            raise RuleError(path, f"[{kind}]", "must hold one table per label")
        for label, words in tables.items():
            rule_id = f"learned.{kind}.{label}"
            if label not in labels:
                raise RuleError(path, rule_id, f"unknown {kind} {label!r}; known: {', '.join(labels)}")
            if not isinstance(words, dict) or not words:
                raise RuleError(path, rule_id, 'must be a non-empty table of "word" = weight')
            weights = {}
            for word, weight in words.items():
                key = normalize(word.strip())
                if not key:
                    raise RuleError(path, rule_id, "empty word")
                weights[key] = bounded_number(path, rule_id, f"weight of {word!r}", weight)
            rules.append(Rule(rule_id, kind, label, factor, tuple(weights), (), None, weights))
    return rules


def load_rules(rules_dir: Path | None) -> RuleSet:
    """Load and validate intent.toml, topics.toml, userdict.txt and learned.toml: the site's rules_dir over the
    shipped ones."""
    seen: set[str] = set()  # rule ids are unique across files: they are stored with each result
    intent_rules, spam_rules, negation, decision = _load_intent(rule_file(rules_dir, INTENT_FILE), seen)
    topic_rules, topic_scoring = _load_topics(rule_file(rules_dir, TOPICS_FILE), seen)
    return RuleSet(
        intent_rules=tuple(intent_rules),
        spam_rules=tuple(spam_rules),
        topic_rules=tuple(topic_rules),
        negation=negation,
        decision=decision,
        topic_scoring=topic_scoring,
        userdict=_load_userdict(rule_file(rules_dir, USERDICT_FILE)),
        learned_rules=tuple(_load_learned(rule_file(rules_dir, LEARNED_FILE))),
    )


# The files are looked at (one stat each) at most this often: the callback asks for the rules on
# every push, and the stats were a tenth of its CPU. An edit takes effect within this time.
CHECK_EVERY_S = 1.0


class RuleStore:
    """The current rules of a directory, reloaded when a rules file changes (bot.reloading).

    A bad edit does not take the bot down: the last good classifier and FAQ stay in use and the
    RuleError is logged; the next change of a file is tried again.
    """

    def __init__(self, rules_dir: Path | None, *, check_every_s: float = CHECK_EVERY_S):
        self.rules_dir = rules_dir
        self._rules = Reloading(lambda: [rule_file(rules_dir, name) for name in RULE_FILES], self._load,
                                what=f"triage rules of {rules_dir or 'the package'}", errors=(RuleError,),
                                check_every_s=check_every_s)

    def _load(self) -> tuple[Classifier, FaqMatcher]:
        # Imported here: classifier and faq import this module for RuleSet and RuleError.
        from bot.triage.classifier import Classifier
        from bot.triage.faq import FaqMatcher

        return Classifier(load_rules(self.rules_dir)), FaqMatcher.from_dir(self.rules_dir)

    @property
    def last_error(self) -> RuleError | None:
        return self._rules.last_error  # type: ignore[return-value]

    def reload_if_changed(self) -> None:
        """Reload now if a rules file changed (after an edit in the console: no wait for the next check)."""
        self._rules.reload_if_changed()

    def current(self) -> Classifier:
        return self._rules.get()[0]

    def current_faq(self) -> FaqMatcher:
        return self._rules.get()[1]
