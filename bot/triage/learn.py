"""Weighted keywords learned from labelled messages (学习关键词): the data of rules/learned.toml.

For each intent and each topic, every jieba token of the labelled messages gets the smoothed
log-odds of appearing in a message of that class against a message of any other class:

    weight(w, c) = ln((n_cw + a) / (N_c - n_cw + a)) - ln((n_ow + a) / (N_o - n_ow + a))

(n_cw: messages of class c containing w, N_c: messages of class c; o: all other classes). A token
is kept when it appears in at least `min_count` messages of the class and its weight reaches
`min_weight`; the `top` strongest per class are written. Pure logic: tokens in, weights out.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.triage.rules import INTENTS, TOPICS, normalize

KINDS = {"intent": INTENTS, "topic": TOPICS}

# A token worth learning: two characters or more, with a Chinese character or a letter in it.
_WORDLIKE = re.compile(r"[\u4e00-\u9fffa-z]")


@dataclass(frozen=True)
class Labelled:
    """One labelled message: its text and subject, its intent and/or topic (None: not labelled)."""

    text: str
    intent: str | None = None
    topic: str | None = None
    subject: str | None = None

    def label(self, kind: str) -> str | None:
        return self.intent if kind == "intent" else self.topic


@dataclass(frozen=True)
class LearnedWord:
    word: str
    weight: float
    count: int  # messages of the class containing the word
    other: int  # messages of other classes containing it


@dataclass(frozen=True)
class Settings:
    alpha: float = 0.5  # smoothing: pseudo-count added to every cell
    min_count: int = 3
    min_weight: float = 0.5
    top: int = 300  # words kept per class


def token_set(text: str, tokenizer) -> frozenset[str]:
    """The distinct word-like jieba tokens of a text, in matching form (see rules.normalize)."""
    return frozenset(t for t in tokenizer.lcut(normalize(text), HMM=False)
                     if len(t) >= 2 and _WORDLIKE.search(t) and not t.isdigit())


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Mean F1 over the labels present in gold."""
    labels = set(gold)
    if not labels:
        return 0.0
    total = 0.0
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, pred, strict=True))
        n_pred, n_gold = sum(p == label for p in pred), sum(g == label for g in gold)
        total += 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0
    return total / len(labels)


def evaluate(classifier, samples: Iterable[Labelled]) -> dict[str, float]:
    """Intent and topic macro-F1 of a classifier on labelled messages (no clear topic counts as wrong)."""
    gold: dict[str, list[str]] = {"intent": [], "topic": []}
    pred: dict[str, list[str]] = {"intent": [], "topic": []}
    for s in samples:
        c = classifier.classify(s.text, s.subject)
        for kind, got in (("intent", c.intent), ("topic", c.topic or "")):
            if s.label(kind):
                gold[kind].append(s.label(kind))
                pred[kind].append(got)
    return {f"{kind}_macro_f1": macro_f1(gold[kind], pred[kind]) for kind in KINDS} | {
        f"{kind}_messages": len(gold[kind]) for kind in KINDS}


def learn(samples: Sequence[tuple[frozenset[str], str]], labels: Iterable[str],
          settings: Settings = Settings()) -> dict[str, list[LearnedWord]]:
    """label -> its learned words, strongest first, from (tokens, label) samples."""
    a = settings.alpha
    per_class: dict[str, Counter] = {}
    sizes = Counter(label for _, label in samples)
    total_df: Counter = Counter()
    for tokens, label in samples:
        per_class.setdefault(label, Counter()).update(tokens)
        total_df.update(tokens)
    out: dict[str, list[LearnedWord]] = {}
    n_all = len(samples)
    for label in labels:
        n_c = sizes.get(label, 0)
        n_o = n_all - n_c
        words = []
        for word, n_cw in per_class.get(label, Counter()).items():
            if n_cw < settings.min_count:
                continue
            n_ow = total_df[word] - n_cw
            weight = (math.log((n_cw + a) / (n_c - n_cw + a))
                      - math.log((n_ow + a) / (n_o - n_ow + a)))
            if weight >= settings.min_weight:
                words.append(LearnedWord(word, round(weight, 2), n_cw, n_ow))
        words.sort(key=lambda w: (-w.weight, -w.count, w.word))
        out[label] = words[: settings.top]
    return out


def learn_all(samples: Sequence[tuple[frozenset[str], Labelled]],
              settings: Settings = Settings()) -> dict[str, dict[str, list[LearnedWord]]]:
    """kind ('intent' | 'topic') -> label -> learned words, from (tokens, Labelled) samples."""
    out = {}
    for kind, labels in KINDS.items():
        rows = [(tokens, s.label(kind)) for tokens, s in samples if s.label(kind) in labels]
        out[kind] = learn(rows, labels, settings)
    return out


def render_toml(learned: dict[str, dict[str, list[LearnedWord]]], *, source: str,
                intent_factor: float, topic_factor: float) -> str:
    """The text of rules/learned.toml: one commented line per word, easy to read and edit."""
    lines = [
        "# Keywords learned from labelled messages by `govbot rules learn` (" + source + ").",
        "# Each word found in a message adds its weight x the factor of [settings] to its intent or",
        "# topic, on top of the hand rules of intent.toml and topics.toml (see there how the scores",
        "# decide). Weight = smoothed log-odds of the word in messages of that class against the",
        "# others; the comment says in how many messages of the class / of the others it appeared.",
        "# Edit freely: delete a word that is wrong, change a weight; `govbot rules check` validates.",
        "",
        "[settings]",
        f"intent_factor = {intent_factor:g}",
        f"topic_factor = {topic_factor:g}",
    ]
    for kind, per_label in learned.items():
        for label, words in per_label.items():
            if not words:
                continue
            lines += ["", f"[{kind}.{json.dumps(label, ensure_ascii=False)}]"]
            lines += [f"{json.dumps(w.word, ensure_ascii=False)} = {w.weight:g}  # {w.count}/{w.other}" for w in words]
    return "\n".join(lines) + "\n"
