"""Weighted keywords learned from labelled messages (学习关键词): the data of rules/learned.toml.

Intent words: every jieba token of the labelled messages gets the smoothed log-odds of appearing
in a message of that intent against a message of any other intent:

    weight(w, c) = ln((n_cw + a) / (N_c - n_cw + a)) - ln((n_ow + a) / (N_o - n_ow + a))

(n_cw: messages of class c containing w, N_c: messages of class c; o: all other classes). A token
is kept when it appears in at least `min_count` messages of the class and its weight reaches
`min_weight`; the `top` strongest per class are written.

Topic words are fitted on top of the hand rules instead (they decide most topics, and log-odds
counted each word again beside them): a softmax regression whose score for a topic is exactly the
classifier's, hand-rule score x s + the learned words found (counted as the classifier counts them:
at most max_repeats times, subject words subject_weight times), with an L2 penalty. Dividing by s
puts the weights on the hand rules' scale; a word's weights are then shifted so the smallest is 0
(a word adding the same to every topic changes no decision), and the ones under
`topic_min_weight` are dropped. Topic words are fitted on letters (over `topic_min_chars`
characters) only, and words common in most topics are no candidates. Pure logic: texts, tokens and hand scores in, weights out.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ahocorasick_rs
import numpy as np

from bot.triage.rules import INTENTS, TOPICS, normalize

if TYPE_CHECKING:
    from bot.triage.classifier import Classifier

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
    top: int = 100  # words kept per class
    # Topic words (softmax regression on top of the hand rules); chosen by cross-validation on the
    # dev data, see bench/triage_quality.py.
    topic_l2: float = 3e-4  # penalty on the squared weights: higher keeps the hand rules more in charge
    topic_epochs: int = 300  # full-batch gradient steps (Adam)
    topic_min_weight: float = 0.3  # in hand-rule points (a hint word of topics.toml is 1)
    topic_min_chars: int = 60  # topic words are fitted on longer messages only: the max_chars of topics.toml
    topic_max_df: float = 0.1  # a word in more than this share of the messages of most topics is no candidate


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


def learn_all(samples: Sequence[tuple[frozenset[str], Labelled]], hand: Classifier,
              settings: Settings = Settings()) -> dict[str, dict[str, list[LearnedWord]]]:
    """kind ('intent' | 'topic') -> label -> learned words, from (tokens, Labelled) samples.

    `hand` classifies with the hand rules: its own learned words, if any, are left out."""
    out = {}
    rows = [(tokens, s.intent) for tokens, s in samples if s.intent in INTENTS]
    out["intent"] = learn(rows, INTENTS, settings)
    # Topic words from letters (留言) only: short comments (评论) follow other conventions (a bus is
    # 交通运输 under a post, 城乡建设 in a letter) and have their own everyday words in topics.toml.
    topical = [(tokens, s) for tokens, s in samples if s.topic in TOPICS and len(s.text) > settings.topic_min_chars]
    out["topic"] = learn_topics(topical, hand, settings)
    return out


def learn_topics(samples: Sequence[tuple[frozenset[str], Labelled]], hand: Classifier,
                 settings: Settings = Settings()) -> dict[str, list[LearnedWord]]:
    """topic -> its learned words, strongest first: the softmax regression of the module docstring."""
    from bot.triage.classifier import Classifier

    if hand.ruleset.learned_rules:
        hand = Classifier(dataclasses.replace(hand.ruleset, learned_rules=()))
    index = {t: i for i, t in enumerate(TOPICS)}
    labels = np.array([index[s.topic] for _, s in samples], dtype=np.int64)
    df: Counter = Counter()
    per_class: dict[str, Counter] = {t: Counter() for t in TOPICS}
    for tokens, s in samples:
        df.update(tokens)
        per_class[s.topic].update(tokens)
    # A word common in the messages of most topics (我们, 没有, 问题) tells no topic; it would only
    # slow every classification down.
    sizes = Counter(s.topic for _, s in samples)

    def common(word: str) -> bool:
        return 2 * sum(per_class[t][word] > settings.topic_max_df * n for t, n in sizes.items()) > len(sizes)

    vocab = sorted(w for w, n in df.items() if n >= settings.min_count and not common(w))
    if not samples or not vocab:
        return {t: [] for t in TOPICS}
    hand_scores = np.zeros((len(samples), len(TOPICS)), dtype=np.float32)
    for row, (_, s) in enumerate(samples):
        for topic, score in hand.classify(s.text, s.subject).topic_scores:
            hand_scores[row, index[topic]] = score
    scoring = hand.ruleset.topic_scoring
    features = _Counts([(s.text, s.subject) for _, s in samples], vocab, scoring.max_repeats,
                       scoring.subject_weight)
    weights = _fit_softmax(hand_scores, features, labels, settings)
    weights -= weights.min(axis=1, keepdims=True)
    out: dict[str, list[LearnedWord]] = {}
    for c, topic in enumerate(TOPICS):
        words = [LearnedWord(vocab[v], round(float(weights[v, c]), 2), per_class[topic][vocab[v]],
                             df[vocab[v]] - per_class[topic][vocab[v]])
                 for v in np.flatnonzero(weights[:, c] >= settings.topic_min_weight)]
        words.sort(key=lambda w: (-w.weight, -w.count, w.word))
        out[topic] = words
    return out


class _Counts:
    """The learned-word counts of messages as the classifier takes them, as a sparse matrix.

    Leftmost-longest matching over the text, a word counted at most max_repeats times; in the
    subject (标题) counted again, subject_weight times."""

    def __init__(self, messages: Sequence[tuple[str, str | None]], vocab: Sequence[str], max_repeats: int,
                 subject_weight: float):
        automaton = ahocorasick_rs.AhoCorasick(list(vocab), matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)
        rows, cols, vals = [], [], []
        for row, (text, subject) in enumerate(messages):
            value: Counter = Counter()
            for part, factor in ((text, 1.0), (subject, subject_weight)):
                if part:
                    found = Counter(i for i, _, _ in automaton.find_matches_as_indexes(normalize(part)))
                    for col, n in found.items():
                        value[col] += factor * min(n, max_repeats)
            for col, v in value.items():
                rows.append(row)
                cols.append(col)
                vals.append(v)
        self.shape = (len(messages), len(vocab))
        self.rows = np.array(rows, dtype=np.int64)  # in row order, as appended
        self.cols = np.array(cols, dtype=np.int64)
        self.vals = np.array(vals, dtype=np.float32)
        self.by_col = np.argsort(self.cols, kind="stable")

    def dot(self, weights: np.ndarray) -> np.ndarray:
        """counts @ weights"""
        return _sum_by(self.rows, self.vals[:, None] * weights[self.cols], self.shape[0])

    def tdot(self, grad: np.ndarray) -> np.ndarray:
        """counts.T @ grad"""
        order = self.by_col
        return _sum_by(self.cols[order], self.vals[order, None] * grad[self.rows[order]], self.shape[1])


def _sum_by(keys: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Rows of values summed by their (sorted) key into a size x columns array."""
    out = np.zeros((size, values.shape[1]), dtype=np.float32)
    if len(keys):
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        out[keys[starts]] = np.add.reduceat(values, starts, axis=0)
    return out


def _fit_softmax(hand_scores: np.ndarray, counts: _Counts, labels: np.ndarray, settings: Settings) -> np.ndarray:
    """Word weights (vocab x topics) on the hand rules' scale: minimises the cross-entropy of
    softmax(s * hand_scores + counts @ W) + l2/2 * |W|^2 over W >= 0 and s, by projected Adam from
    W = 0, s = 1."""
    n, classes = hand_scores.shape
    target = np.eye(classes, dtype=np.float32)[labels]
    params = [np.zeros((counts.shape[1], classes), dtype=np.float32), np.ones(1, dtype=np.float32)]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    rate, beta1, beta2 = 0.05, 0.9, 0.999
    for step in range(1, settings.topic_epochs + 1):
        weights, scale = params
        logits = scale * hand_scores + counts.dot(weights)
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=1, keepdims=True)
        error = (prob - target) / n
        grads = [counts.tdot(error) + settings.topic_l2 * weights, np.array([(error * hand_scores).sum()])]
        for p, g, (m, v) in zip(params, grads, moments, strict=True):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            p -= rate * (m / (1 - beta1 ** step)) / (np.sqrt(v / (1 - beta2 ** step)) + 1e-8)
        # No negative weights (a person reads "this word points to that topic"): a word then gets
        # weight only for the topics it tells, and the file stays short.
        np.maximum(weights, 0.0, out=weights)
    weights, scale = params
    # A scale near 0 would mean the hand rules say nothing; they always say something on real data.
    return weights / max(float(scale[0]), 1e-3)


def render_toml(learned: dict[str, dict[str, list[LearnedWord]]], *, source: str,
                intent_factor: float, topic_factor: float) -> str:
    """The text of rules/learned.toml: one commented line per word, easy to read and edit."""
    lines = [
        "# Keywords learned from labelled messages by `govbot rules learn` (" + source + ").",
        "# Each word found in a message adds its weight x the factor of [settings] to its intent or",
        "# topic, on top of the hand rules of intent.toml and topics.toml (see there how the scores",
        "# decide). Intent weight = smoothed log-odds of the word in messages of that intent against",
        "# the others. Topic weights are fitted on top of the hand rules, in their points (a hint word",
        "# of topics.toml is 1): what the word adds where the hand rules alone would file a message",
        "# under the wrong topic; at topic_factor 1 they reproduce the fitted model. The comment says in",
        "# how many messages of the class / of the others the word appeared.",
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
