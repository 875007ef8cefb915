"""Anchor strings of rule patterns (bot.triage.anchors): a pattern skipped for want of its anchors
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
from bot.triage.rules import normalize


@pytest.mark.parametrize(("pattern", "expected"), [
    # Neighbouring finite parts combine (an optional part with its strings or without).
    ("(?:没|无)有?人(?:管|理)", {"没人管", "没人理", "无人管", "无人理", "没有人管", "没有人理", "无有人管", "无有人理"}),
    ("(?:吗|呢|[?？])[\\s?？]*$", {"吗", "呢", "?", "？"}),
    ("(\\w)不\\1", {"不"}),
    ("(?:多次|反复)(?:向\\w{1,8})?反映", {"反映"}),  # of two sets, the one of the longer strings
    ("(?:交|要)多少", {"交多少", "要多少"}),
    ("几(?:号|月)+", {"几号", "几月"}),  # a repeat starts with one of its strings
    ("[一二三]个月", {"一个月", "二个月", "三个月"}),
    ("(?:好|棒)+了", {"好了", "棒了"}),  # ... and ends with one
    ("[一二三四五六七八九十][一二三四五六七八九十][一二三四五六七八九十]天", {c + "天" for c in "一二三四五六七八九十"}),  # 1,000: too many, cut
])
def test_anchors_of_patterns(pattern, expected):
    assert anchors(re.compile(pattern, re.IGNORECASE)) == frozenset(expected)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("(?:微信|VX|v信)号", {"微信号", "vx号", "v信号"}),  # the text is lower case when it is scanned
    ("(?:a|吗)", {"a", "吗"}),
])
def test_ascii_letters_are_anchors_in_lower_case(pattern, expected):
    assert anchors(re.compile(pattern, re.IGNORECASE)) == frozenset(expected)


@pytest.mark.parametrize("pattern", ["\\w+", "[^，。]{2}", "(?:吗|呢)?", "[\\u4e00-\\u9fff]{2}", "x*", "(?:is|吗)", "[a-z]{3}",
                                     "ä"])
def test_no_anchors_when_none_is_certain(pattern):
    """Repeats that may be absent, wide or negated classes, i and s (IGNORECASE matches them with ı and ſ)
    and letters with case beyond ASCII give no anchor."""
    assert anchors(re.compile(pattern, re.IGNORECASE)) is None


CLASSIFIER = Classifier.from_dir(Path(REPO_ROOT) / "rules")
PATTERNS = [(rule.id, p, anchor) for scanner in (CLASSIFIER._intent, CLASSIFIER._topic)
            for rule, p, anchor in scanner._anchored]
# Texts made of the patterns' own characters (and a few others) match them often.
ALPHABET = sorted({ch for _id, p, _a in PATTERNS for ch in p.pattern if not ch.isascii()} | set("?!，。 12abcQVWXıſ"))


def test_the_shipped_patterns_are_anchored():
    assert sum(anchor is not None for _id, _p, anchor in PATTERNS) >= 0.9 * len(PATTERNS)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, min_size=1, max_size=30))
def test_a_pattern_never_matches_a_text_without_its_anchors(text):
    text = normalize(text)  # as the classifier scans it
    for rule_id, pattern, anchor in PATTERNS:
        if anchor is not None and not any(s in text for s in anchor):
            assert pattern.search(text) is None, (rule_id, pattern.pattern)


GENERATED = [(rule_id, p, anchor) for rule_id, p, anchor in PATTERNS if anchor is not None and "(?<" not in p.pattern
             and "\\1" not in p.pattern]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(GENERATED).flatmap(lambda entry: st.tuples(st.just(entry), st.from_regex(entry[1]))))
def test_every_match_contains_an_anchor(case):
    """Texts generated from the patterns themselves: every one they match holds one of the anchors."""
    (rule_id, pattern, anchor), text = case
    text = normalize(text)
    if pattern.search(text) is not None:
        assert any(s in text for s in anchor), (rule_id, pattern.pattern, text)


@pytest.mark.parametrize("text", [
    "路灯坏了一个多月了，多次打电话反映，到现在还没人管！", "请问社保卡丢了怎么补办？需要带什么材料",
    "办个证跑了三趟，效率真是高啊！", "建议：在学校门口增设红绿灯", "这个政策我能不能享受？", "爱管不管",
])
def test_classification_is_the_same_without_anchors(text):
    plain = Classifier.from_dir(Path(REPO_ROOT) / "rules")
    for scanner in (plain._intent, plain._topic):
        scanner._anchor_automaton, scanner._always = None, frozenset(range(len(scanner._patterns)))  # every pattern runs
    assert CLASSIFIER.classify(text) == plain.classify(text)
