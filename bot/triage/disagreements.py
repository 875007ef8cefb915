"""Where the current rules and the responders' corrections disagree, and which words would fix it.

Pure logic for the admin rules page (规则): the corrected messages are classified again with the
current rules; each one whose intent or topic still differs from the correction is a disagreement.
For each corrected label, the words proposed are the jieba tokens found most often in its
disagreeing messages that no rule for that label has yet ("add these words to intent X").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bot.triage.classifier import Classifier
from bot.triage.learn import KINDS, Labelled, token_set

MAX_WORDS = 8  # proposed per label: a page to read, not a dump


@dataclass(frozen=True)
class LabelDisagreement:
    kind: str  # 'intent' | 'topic'
    label: str  # what the responders said it is
    messages: int  # corrected messages the rules still put elsewhere
    predicted: tuple[tuple[str, int], ...]  # where the rules put them: (label or '', count), most first
    words: tuple[tuple[str, int], ...]  # (word, disagreeing messages containing it), most first


@dataclass(frozen=True)
class CorrectionReview:
    corrections: int  # corrected messages looked at
    disagreeing: int  # of them, how many the current rules classify differently
    labels: tuple[LabelDisagreement, ...]


def review_corrections(samples: Sequence[Labelled], classifier: Classifier) -> CorrectionReview:
    """Classify the corrected messages with the current rules and sum up where they still disagree."""
    known: dict[tuple[str, str], set[str]] = {}
    for rule in classifier.ruleset.intent_rules + classifier.ruleset.topic_rules + classifier.ruleset.learned_rules:
        known.setdefault((rule.kind, rule.label), set()).update(rule.words)
    wrong: dict[tuple[str, str], list[tuple[frozenset[str], str]]] = {}
    disagreeing = 0
    for sample in samples:
        c = classifier.classify(sample.text, sample.subject)
        got = {"intent": c.intent, "topic": c.topic or ""}
        missed = [(kind, sample.label(kind)) for kind in KINDS
                  if sample.label(kind) and got[kind] != sample.label(kind)]
        if not missed:
            continue
        disagreeing += 1
        tokens = token_set(f"{sample.subject or ''}\n{sample.text}", classifier.tokenizer)
        for kind, label in missed:
            wrong.setdefault((kind, label), []).append((tokens, got[kind]))
    labels = []
    for (kind, label), rows in sorted(wrong.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        words = Counter(w for tokens, _ in rows for w in tokens if w not in known.get((kind, label), ()))
        labels.append(LabelDisagreement(
            kind=kind, label=label, messages=len(rows),
            predicted=tuple(Counter(p for _, p in rows).most_common()),
            words=tuple(sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_WORDS]),
        ))
    return CorrectionReview(len(samples), disagreeing, tuple(labels))
