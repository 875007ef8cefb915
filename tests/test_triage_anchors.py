"""Anchor characters of rule patterns (bot.triage.anchors): a pattern skipped for want of its anchors
could never have matched, so classification is exactly the same with or without them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import REPO_ROOT
from bot.triage.anchors import anchors
from bot.triage.classifier import Classifier


@pytest.mark.parametrize(("pattern", "expected"), [
    ("(?:没|无)有?人(?:管|理)", {"人"}),  # the smallest set every match goes through
    ("(?:吗|呢|[?？])[\\s?？]*$", {"吗", "呢", "?", "？"}),
    ("(\\w)不\\1", {"不"}),
    ("(?:多次|反复)(?:向\\w{1,8})?反映", {"反"}),
    ("(?:交|要)多少", {"多"}),
    ("几(?:号|月)+", {"几"}),
    ("[一二三]个月", {"个"}),
])
def test_anchors_of_patterns(pattern, expected):
    assert anchors(re.compile(pattern, re.IGNORECASE)) == frozenset(expected)


@pytest.mark.parametrize("pattern", ["\\w+", "[^，。]{2}", "(?:吗|呢)?", "vx", "[\\u4e00-\\u9fff]{2}", "(?:a|吗)", "x*"])
def test_no_anchors_when_none_is_certain(pattern):
    """Repeats that may be absent, wide or negated classes, and cased letters (IGNORECASE) give no anchor."""
    assert anchors(re.compile(pattern, re.IGNORECASE)) is None


CLASSIFIER = Classifier.from_dir(Path(REPO_ROOT) / "rules")
PATTERNS = [(rule.id, p, anchor) for scanner in (CLASSIFIER._intent, CLASSIFIER._topic)
            for rule, p, anchor in scanner._anchored]
# Texts made of the patterns' own characters (and a few others) match them often.
ALPHABET = sorted({ch for _id, p, _a in PATTERNS for ch in p.pattern if not ch.isascii()} | set("?!，。 12abc"))


def test_the_shipped_patterns_are_anchored():
    assert sum(anchor is not None for _id, _p, anchor in PATTERNS) >= 0.9 * len(PATTERNS)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, min_size=1, max_size=30))
def test_a_pattern_never_matches_a_text_without_its_anchors(text):
    present = set(text)
    for rule_id, pattern, anchor in PATTERNS:
        if anchor is not None and anchor.isdisjoint(present):
            assert pattern.search(text) is None, (rule_id, pattern.pattern)


@pytest.mark.parametrize("text", [
    "路灯坏了一个多月了，多次打电话反映，到现在还没人管！", "请问社保卡丢了怎么补办？需要带什么材料",
    "办个证跑了三趟，效率真是高啊！", "建议：在学校门口增设红绿灯", "这个政策我能不能享受？", "爱管不管",
])
def test_classification_is_the_same_without_anchors(text):
    plain = Classifier.from_dir(Path(REPO_ROOT) / "rules")
    for scanner in (plain._intent, plain._topic):
        scanner._anchored = [(rule, p, None) for rule, p, _a in scanner._anchored]
    assert CLASSIFIER.classify(text) == plain.classify(text)
