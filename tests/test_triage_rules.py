"""Loading and validating rules/, and reloading them when a file changes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bot.triage.cli import DEFAULT_RULES_DIR
from bot.triage.faq import FaqMatcher
from bot.triage.rules import TOPICS, RuleError, RuleStore, load_rules

INTENT = """
[decision]
priority = ["complaint", "question", "suggestion", "praise", "other"]
overrule_ratio = 1.5
fallback_intent = "complaint"
fallback_min = 2.0
subject_weight = 2.0
spam_threshold = 3.0
confidence_k = 2.0
max_repeats = 1

[decision.threshold]
complaint = 2.0
question = 2.0
suggestion = 2.0
praise = 2.0
other = 1.0

[negation]
words = ["不", "没有"]
window = 4
scope = 2

[[rule]]
id = "c.words"
intent = "complaint"
weight = 2
words = ["投诉"]

[[rule]]
id = "p.words"
intent = "praise"
weight = 2
negated = "complaint"
words = ["满意"]

[[spam]]
id = "s.words"
weight = 3
words = ["兼职"]
"""

TOPICS_TOML = """
[scoring]
subject_weight = 3.0
min_score = 2.0
max_repeats = 2

[[rule]]
id = "t.env"
topic = "环境保护"
weight = 3
words = ["噪音"]
"""

FAQ = """
[[faq]]
id = "f.card"
patterns = [{ all = ["社保卡"] }]
answer = "到银行网点办理。"
"""


def write_rules(root: Path, intent: str = INTENT, topics: str = TOPICS_TOML, userdict: str = "不动产\n",
                faq: str = FAQ) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "intent.toml").write_text(intent, encoding="utf-8")
    (root / "topics.toml").write_text(topics, encoding="utf-8")
    (root / "userdict.txt").write_text(userdict, encoding="utf-8")
    (root / "faq.toml").write_text(faq, encoding="utf-8")
    return root


def assert_rule_error(exc: RuleError, file: str, rule: str | None, reason_part: str) -> None:
    assert exc.file.endswith(file)
    assert exc.rule == rule
    assert reason_part in exc.reason
    assert file in str(exc) and reason_part in str(exc)
    if rule:
        assert rule in str(exc)


def test_shipped_rules_are_valid():
    rs = load_rules(DEFAULT_RULES_DIR)
    assert rs.intent_rules and rs.topic_rules and rs.spam_rules and rs.userdict
    assert {r.label for r in rs.topic_rules} == set(TOPICS)
    assert FaqMatcher.from_dir(DEFAULT_RULES_DIR).rules


def test_minimal_rules_load(tmp_path):
    rs = load_rules(write_rules(tmp_path))
    assert [r.id for r in rs.intent_rules] == ["c.words", "p.words"]
    assert rs.intent_rules[1].negated == "complaint"
    assert rs.userdict == (("不动产", None, None),)


@pytest.mark.parametrize(("edit", "file", "rule", "reason"), [
    (lambda i, t: (i.replace('weight = 2\nwords = ["投诉"]', 'weight = 2\nwords = ["投诉"]\ncolour = "red"'), t),
     "intent.toml", "c.words", "unknown key(s) colour"),
    (lambda i, t: (i.replace('words = ["投诉"]', "words = []"), t), "intent.toml", "c.words", "non-empty list"),
    (lambda i, t: (i.replace('words = ["投诉"]', 'words = ["投诉", ""]'), t), "intent.toml", "c.words",
     "non-empty strings"),
    (lambda i, t: (i.replace('words = ["投诉"]', ""), t), "intent.toml", "c.words", "needs words or patterns"),
    (lambda i, t: (i.replace("weight = 2\nwords = [\"投诉\"]", "weight = -1\nwords = [\"投诉\"]"), t),
     "intent.toml", "c.words", "weight must be a number"),
    (lambda i, t: (i.replace("weight = 2\nwords = [\"投诉\"]", "weight = \"heavy\"\nwords = [\"投诉\"]"), t),
     "intent.toml", "c.words", "weight must be a number"),
    (lambda i, t: (i.replace('id = "p.words"', 'id = "c.words"'), t), "intent.toml", "c.words", "duplicate rule id"),
    (lambda i, t: (i, t.replace('id = "t.env"', 'id = "c.words"')), "topics.toml", "c.words", "duplicate rule id"),
    (lambda i, t: (i, t.replace('topic = "环境保护"', 'topic = "环保"')), "topics.toml", "t.env", "unknown topic '环保'"),
    (lambda i, t: (i.replace('intent = "complaint"\nweight = 2\nwords', 'intent = "rant"\nweight = 2\nwords'), t),
     "intent.toml", "c.words", "unknown intent 'rant'"),
    (lambda i, t: (i.replace('words = ["投诉"]', 'patterns = ["(没人管"]'), t), "intent.toml", "c.words", "bad regex"),
    (lambda i, t: (i.replace('negated = "complaint"', 'negated = "angry"'), t), "intent.toml", "p.words",
     "unknown negated intent"),
    (lambda i, t: (i.replace('"other"]', '"other", "other"]'), t), "intent.toml", "[decision]", "priority"),
    (lambda i, t: (i, t.replace("min_score = 2.0", "min_score = 0")), "topics.toml", "[scoring]", "min_score"),
])
def test_validation_errors_name_file_rule_and_reason(tmp_path, edit, file, rule, reason):
    intent, topics = edit(INTENT, TOPICS_TOML)
    with pytest.raises(RuleError) as err:
        load_rules(write_rules(tmp_path, intent=intent, topics=topics))
    assert_rule_error(err.value, file, rule, reason)


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(RuleError) as err:
        load_rules(write_rules(tmp_path, topics="[scoring\n"))
    assert_rule_error(err.value, "topics.toml", None, "not valid TOML")
    # A file absent from an existing site directory comes from the shipped rules (bot/resources.py);
    # a site directory that does not exist is a mistake and named as such.
    with pytest.raises(RuleError) as err:
        load_rules(tmp_path / "nowhere")
    assert_rule_error(err.value, "intent.toml", None, "file is missing")


def test_bad_userdict_line(tmp_path):
    with pytest.raises(RuleError) as err:
        load_rules(write_rules(tmp_path, userdict="不动产\n没人管 many\n"))
    assert_rule_error(err.value, "userdict.txt", "line 2", "freq must be a positive integer")


def test_bad_faq_rules(tmp_path):
    write_rules(tmp_path, faq=FAQ.replace('all = ["社保卡"]', "all = []"))
    with pytest.raises(RuleError) as err:
        FaqMatcher.from_dir(tmp_path)
    assert_rule_error(err.value, "faq.toml", "f.card", "non-empty list")
    write_rules(tmp_path, faq=FAQ + FAQ)
    with pytest.raises(RuleError) as err:
        FaqMatcher.from_dir(tmp_path)
    assert_rule_error(err.value, "faq.toml", "f.card", "duplicate rule id")
    write_rules(tmp_path, faq=FAQ.replace('answer = ', 'min_confidence = 1.5\nanswer = '))
    with pytest.raises(RuleError) as err:
        FaqMatcher.from_dir(tmp_path)
    assert_rule_error(err.value, "faq.toml", "f.card", "min_confidence")


def bump(path: Path, text: str) -> None:
    """Rewrite a file and move its mtime forward, as a later edit would."""
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_store_reloads_on_change_and_keeps_last_good_on_bad_edit(tmp_path):
    rules_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules_dir)
    store = RuleStore(rules_dir, check_every_s=0)
    first = store.current()
    assert store.current() is first  # unchanged files: no reload
    assert first.classify("这里的荧光棒太多了").topic is None

    topics = rules_dir / "topics.toml"
    good = topics.read_text(encoding="utf-8")
    bump(topics, good.replace('words = ["污染",', 'words = ["荧光棒", "污染",', 1))
    second = store.current()
    assert second is not first
    assert second.classify("这里的荧光棒太多了").topic == "环境保护"

    bump(topics, good.replace('topic = "环境保护"', 'topic = "环保"', 1))
    assert store.current() is second  # the bad edit is refused, the last good rules stay
    assert isinstance(store.last_error, RuleError)
    assert "topics.toml" in str(store.last_error) and "环保" in str(store.last_error)

    bump(topics, good)
    third = store.current()
    assert third is not second and store.last_error is None
    assert third.classify("这里的荧光棒太多了").topic is None


def test_store_reloads_faq_and_userdict(tmp_path):
    rules_dir = write_rules(tmp_path / "rules")
    store = RuleStore(rules_dir, check_every_s=0)
    assert [r.id for r in store.current_faq().rules] == ["f.card"]
    bump(rules_dir / "faq.toml", FAQ.replace('id = "f.card"', 'id = "f.card2"'))
    assert [r.id for r in store.current_faq().rules] == ["f.card2"]
    bump(rules_dir / "userdict.txt", "不动产\n没人管\n")
    assert ("没人管", None, None) in store.current().ruleset.userdict


def test_store_raises_when_there_are_no_good_rules_yet(tmp_path):
    with pytest.raises(RuleError):
        RuleStore(write_rules(tmp_path, topics="oops ="))
