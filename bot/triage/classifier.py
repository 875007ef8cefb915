"""Classify a citizen message (留言 / 评论) by intent and topic with the keyword rules of rules/.

Keyword spotting runs one Aho-Corasick automaton per rule group over the raw text (leftmost-longest,
in compiled code: far faster than tokenising); jieba with the government userdict is used only where word
boundaries matter: deciding whether a negator (不, 没有 ...) really negates a word ("不满意") or is
part of another word ("不错", "不动产").
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import ahocorasick_rs
import jieba

from bot.triage.anchors import anchors
from bot.triage.rules import Rule, RuleSet, load_rules, normalize

NEEDS_ANSWER = {"complaint": True, "question": True, "suggestion": True, "praise": False, "other": False}

# A clause ends at punctuation; negation never reaches across it ("不错，满意").
_CLAUSE_END = re.compile(r"[,.!?;:，。！？；：、…~\s]")
_CLAUSE_REACH = 24  # characters looked back for the clause start; enough for a negation scope


@dataclass(frozen=True)
class Match:
    """One rule that fired: the words it found and the score it added."""

    rule_id: str
    kind: str  # 'intent' | 'topic' | 'spam'
    words: tuple[str, ...]  # a negated word is shown as ¬word
    weight: float  # score added (subject words count subject_weight times)
    label: str | None = None  # the intent or topic the score went to; None for spam


@dataclass(frozen=True)
class Classification:
    intent: str
    topic: str | None  # None: no clear topic, the caller routes to the default desk
    confidence: float  # 0..1, of the intent; gates FAQ auto-replies
    needs_answer: bool
    spam: bool
    matched: tuple[Match, ...]
    reason: str = ""  # how the intent was decided
    intent_scores: tuple[tuple[str, float], ...] = ()
    topic_scores: tuple[tuple[str, float], ...] = ()

    def explain(self) -> str:
        """A human-readable account of the decision, for officers and rule authors."""
        answer = "needs an answer" if self.needs_answer else "needs no answer"
        lines = [f"intent: {self.intent}{' (spam)' if self.spam else ''}, confidence {self.confidence:.2f}, {answer}"]
        lines.append(f"  why: {self.reason}")
        if self.intent_scores:
            lines.append("  intent scores: " + ", ".join(f"{k} {v:g}" for k, v in self.intent_scores))
        if self.topic:
            lines.append(f"topic: {self.topic}")
        else:
            lines.append("topic: none clear (route to the default desk)")
        if self.topic_scores:
            lines.append("  topic scores: " + ", ".join(f"{k} {v:g}" for k, v in self.topic_scores))
        if self.matched:
            lines.append("matched rules:")
        for m in self.matched:
            target = m.kind if m.label is None else f"{m.kind}->{m.label}"
            lines.append(f"  {m.rule_id} [{target}] +{m.weight:g}: {', '.join(m.words)}")
        if not self.matched:
            lines.append("matched rules: none")
        return "\n".join(lines)

    def rules_summary(self) -> str:
        """Compact 'rule_id:word|word;...' for CSV and DB columns."""
        return ";".join(f"{m.rule_id}:{'|'.join(m.words)}" for m in self.matched)


def _trie_regex(words) -> re.Pattern | None:
    """One regex matching any of the words, longest first at each position.

    Built as a trie ("污(?:染|水)") so the regex engine does not try every word at every character.
    """
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    if not trie:
        return None

    def build(node: dict) -> str:
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return re.compile(build(trie))


class _Scanner:
    """Finds the words and patterns of a group of rules in a text.

    Words are found leftmost-longest without overlaps, so "不满意" is one word, not "满意" too."""

    def __init__(self, rules):
        self.by_word: dict[str, list[Rule]] = defaultdict(list)
        for rule in rules:
            for word in dict.fromkeys(rule.words):
                self.by_word[word].append(rule)
        self.words = list(self.by_word)
        self.automaton = (ahocorasick_rs.AhoCorasick(self.words, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)
                          if self.words else None)
        self._anchored = [(rule, p, anchors(p)) for rule in rules for p in rule.patterns]
        # One automaton over every pattern's anchor strings: a pattern runs only when one is in the text.
        strings = sorted({s for _r, _p, found in self._anchored if found is not None for s in found})
        index = {s: i for i, s in enumerate(strings)}
        self._anchor_automaton = ahocorasick_rs.AhoCorasick(strings) if strings else None
        self._patterns = [(rule, p) for rule, p, _found in self._anchored]
        # Positions in _patterns: of the patterns run always (no anchors), and of those of each anchor string.
        self._always = frozenset(i for i, (_r, _p, found) in enumerate(self._anchored) if found is None)
        self._of_anchor: list[list[int]] = [[] for _ in strings]
        for i, (_r, _p, found) in enumerate(self._anchored):
            for anchor in found or ():
                self._of_anchor[index[anchor]].append(i)
        # The rules of each word (by automaton index) that read a text of a given length: one table
        # per distinct max_chars band, so a long letter skips the short-comment rules at no cost.
        self._limits = sorted({r.max_chars for r in rules if r.max_chars is not None})
        # Learned rules: (rule, word, rule factor x word weight) of each word, by automaton index.
        self.weighted = [tuple((r, w, r.weight * r.word_weights[w]) for r in self.by_word[w] if r.word_weights)
                         for w in self.words]
        self._bands: dict[int, list[tuple[Rule, ...]]] = {}

    def _rules_by_index(self, size: int) -> list[tuple[Rule, ...]]:
        band = sum(size > limit for limit in self._limits)
        table = self._bands.get(band)
        if table is None:
            table = [tuple(r for r in self.by_word[w] if r.max_chars is None or size <= r.max_chars)
                     for w in self.words]
            self._bands[band] = table
        return table

    def scan(self, text: str):
        """(rule, word, start) for each word occurrence and pattern hit of the rules that read a text this long."""
        size = len(text)
        if self.automaton is not None:
            table, words = self._rules_by_index(size), self.words
            for index, start, _ in self.automaton.find_matches_as_indexes(text):
                for rule in table[index]:
                    yield rule, words[index], start
        for rule, pattern in self._patterns_for(text):
            for m in pattern.finditer(text):
                yield rule, m.group(), m.start()

    def _patterns_for(self, text: str):
        """(rule, pattern) of the rules that read a text this long, skipping the patterns none of whose
        anchor strings is in it (bot.triage.anchors: they cannot match)."""
        size, positions = len(text), set(self._always)
        if self._anchor_automaton is not None:
            of_anchor = self._of_anchor
            for i, _start, _end in self._anchor_automaton.find_matches_as_indexes(text, overlapping=True):
                positions.update(of_anchor[i])
        for position in sorted(positions):  # in the rules' order, as without anchors
            rule, pattern = self._patterns[position]
            if rule.max_chars is None or size <= rule.max_chars:
                yield rule, pattern

    def counted(self, text: str):
        """(rule, word, occurrences) for the words and pattern hits of the rules that read a text this long.

        Counts before it looks up rules: far fewer steps than one per occurrence on a long letter."""
        size = len(text)
        if self.automaton is not None:
            table, words = self._rules_by_index(size), self.words
            found = Counter(map(itemgetter(0), self.automaton.find_matches_as_indexes(text)))
            for index, n in found.items():
                for rule in table[index]:
                    yield rule, words[index], n
        for rule, pattern in self._patterns_for(text):
            for word, n in Counter(m.group() for m in pattern.finditer(text)).items():
                yield rule, word, n


def tokenizer_for(userdict) -> jieba.Tokenizer:
    """A jieba tokenizer with the rules' userdict, private to one rule set.

    It copies the loaded default dictionary instead of changing jieba's global one, so other code
    and a later reload with a different userdict are not affected.
    """
    jieba.dt.check_initialized()
    tok = jieba.Tokenizer()
    tok.FREQ, tok.total, tok.initialized = dict(jieba.dt.FREQ), jieba.dt.total, True
    for word, freq, tag in userdict:
        tok.add_word(word, freq, tag)
    return tok


class _Tally:
    """Scores collected while classifying one message."""

    def __init__(self):
        # (rule, label, negated) -> {word: score}; insertion order keeps the explanation stable
        self.hits: dict[tuple, dict[str, float]] = {}

    def add(self, rule: Rule, label, word: str, score: float, negated: bool = False):
        words = self.hits.get((rule, label, negated))
        if words is None:
            self.hits[(rule, label, negated)] = {word: score}
        else:
            words[word] = words.get(word, 0.0) + score

    def scores(self) -> dict[str, dict[str, float]]:
        """kind ('intent' | 'spam' | 'topic') -> label -> score, in one pass over the hits."""
        out: dict[str, dict[str, float]] = {"intent": defaultdict(float), "spam": defaultdict(float),
                                            "topic": defaultdict(float)}
        for (rule, label, _), words in self.hits.items():
            out[rule.kind][label] += sum(words.values())
        return out

    def matches(self) -> tuple[Match, ...]:
        return tuple(
            Match(rule.id, rule.kind, tuple("¬" + w for w in words) if negated else tuple(words),
                  sum(words.values()), label)
            for (rule, label, negated), words in self.hits.items()
        )


class Classifier:
    """Intent and topic of a message from a validated RuleSet. Pure logic: no I/O after construction."""

    def __init__(self, ruleset: RuleSet):
        self.ruleset = ruleset
        self._intent = _Scanner(ruleset.intent_rules + ruleset.spam_rules)
        self._topic = _Scanner(ruleset.topic_rules)
        # Apart from the hand rules: a longer learned word must not hide a hand word it overlaps. Intent
        # and topic words apart too: the topic words are fitted as found by a scanner of their own.
        self._learned = [_Scanner([r for r in ruleset.learned_rules if r.kind == kind]) for kind in ("intent", "topic")]
        neg = ruleset.negation
        self._negators = frozenset(neg.words)
        self._negator_hint = _trie_regex(neg.words)
        self.tokenizer = tokenizer_for(ruleset.userdict)

    @classmethod
    def from_dir(cls, rules_dir: Path | None) -> Classifier:
        return cls(load_rules(rules_dir))

    def _negated(self, text: str, start: int, word: str) -> bool:
        """Whether a negator token stands within the negation scope before the word at `start`."""
        neg = self.ruleset.negation
        clause_start = start
        while clause_start > max(0, start - _CLAUSE_REACH) and not _CLAUSE_END.match(text, clause_start - 1):
            clause_start -= 1
        if not self._negator_hint.search(text, max(clause_start, start - neg.window), start):
            return False  # the common case: no negator character nearby, no need to tokenise
        tokens = self.tokenizer.lcut(text[clause_start:start + len(word)], HMM=False)
        # Drop the tokens covering the word; a token joining it to what precedes ("不满意") is
        # negated when that joined part is itself a negator.
        covered = 0
        while tokens and covered < len(word):
            last = tokens.pop()
            covered += len(last)
        if covered > len(word):
            return last[: covered - len(word)] in self._negators
        return any(tok in self._negators for tok in tokens[-neg.scope:])

    def _spot(self, tally: _Tally, text: str, intent_factor: float, topic_factor: float, topics: bool = True) -> None:
        """Add the score of the rule words found in text (topic words only with `topics`); a word counts
        at most max_repeats times."""
        rs = self.ruleset
        counts: Counter = Counter()
        for rule, word, start in self._intent.scan(text):
            label, negated = rule.label, False
            if rule.negated and self._negated(text, start, word):
                label, negated = rule.negated, True
            counts[(rule, label, negated, word)] += 1
        for (rule, label, negated, word), n in counts.items():
            tally.add(rule, label, word, rule.weight * intent_factor * min(n, rs.decision.max_repeats), negated)
        add = tally.add
        repeats = rs.topic_scoring.max_repeats
        if topics:
            for rule, word, n in self._topic.counted(text):
                add(rule, rule.label, word, rule.weight * topic_factor * (n if n < repeats else repeats))
        learned = ((self._learned[0], intent_factor, rs.decision.max_repeats),
                   (self._learned[1], topic_factor, repeats))
        for scanner, factor, most in learned if topics else learned[:1]:
            if scanner.automaton is None:
                continue
            # Learned rules have no patterns and no max_chars: straight from the word counts.
            weighted = scanner.weighted
            for index, n in Counter(map(itemgetter(0), scanner.automaton.find_matches_as_indexes(text))).items():
                times = factor * (n if n < most else most)
                for rule, word, weight in weighted[index]:
                    add(rule, rule.label, word, weight * times)

    def classify(self, text: str, subject: str | None = None, *, topics: bool = True) -> Classification:
        """Intent, spam and topic of a message. Without `topics`, only the decision: the topic words are
        not read and nothing is explained (topic None; no scores, no matched rules). Intent, confidence,
        spam and the reason are the same, in a fraction of the time (the callback's FAQ decision needs
        only those)."""
        rs = self.ruleset
        tally = _Tally()
        body = normalize(text or "")
        self._spot(tally, body, 1.0, 1.0, topics)
        if subject:
            # Subject words weigh more: the title states the matter in few words.
            self._spot(tally, normalize(subject), rs.decision.subject_weight, rs.topic_scoring.subject_weight, topics)

        scores = tally.scores()
        intent_scores, topic_scores = scores["intent"], scores["topic"]
        spam_score = sum(scores["spam"].values())
        intent, confidence, reason, spam = self._decide(intent_scores, spam_score)
        topic = None
        if topic_scores and not spam:  # an ad has no department, whatever it advertises
            best = max(topic_scores, key=topic_scores.get)
            if topic_scores[best] >= rs.topic_scoring.min_score:
                topic = best
        return Classification(
            intent=intent,
            topic=topic,
            confidence=confidence,
            needs_answer=NEEDS_ANSWER[intent] and not spam,
            spam=spam,
            matched=tally.matches() if topics else (),
            reason=reason,
            intent_scores=_ranked(intent_scores) if topics else (),
            topic_scores=_ranked(topic_scores),
        )

    def _decide(self, scores: dict[str, float], spam_score: float) -> tuple[str, float, str, bool]:
        """(intent, confidence, reason, spam)"""
        d = self.ruleset.decision
        k = d.confidence_k
        top = max(scores.values(), default=0.0)
        if spam_score >= d.spam_threshold and spam_score >= top:
            confidence = round(spam_score / (spam_score + top + k), 3)
            return "other", confidence, f"spam score {spam_score:g} >= {d.spam_threshold:g}, no intent higher", True
        strong = [i for i in d.priority if scores.get(i, 0.0) >= d.thresholds[i]]
        if not strong:
            weak = scores.get(d.fallback_intent, 0.0)
            if weak < d.fallback_min:
                return "other", round(k / (k + top), 3), "no intent reaches its threshold", False
            # A letter describing a problem without the strong words is still a complaint (反映问题).
            rival = max((v for i, v in scores.items() if i != d.fallback_intent), default=0.0)
            reason = (f"no intent reaches its threshold; {d.fallback_intent} score {weak:g} >= "
                      f"fallback_min {d.fallback_min:g}")
            return d.fallback_intent, round(weak / (weak + rival + k), 3), reason, False
        winner = strong[0]
        for challenger in strong[1:]:
            # Priority decides between comparable scores; a much stronger case overrules it.
            if scores[challenger] >= d.overrule_ratio * scores[winner]:
                winner = challenger
        win = scores[winner]
        rival = max((v for i, v in scores.items() if i != winner), default=0.0)
        # Evidence for the winner against evidence for anything else.
        confidence = round(win / (win + rival + k), 3)
        if len(strong) == 1:
            reason = f"{winner} score {win:g} >= threshold {d.thresholds[winner]:g}"
        elif winner == strong[0]:
            reason = f"{', '.join(strong)} reach their thresholds; {winner} has priority"
        else:
            reason = (f"{', '.join(strong)} reach their thresholds; {winner} scores at least "
                      f"{d.overrule_ratio:g} x {strong[0]} and overrules its priority")
        return winner, confidence, reason, False


def _ranked(scores: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(((k, round(v, 3)) for k, v in scores.items() if v > 0), key=lambda kv: -kv[1]))
