"""The FAQ automaton finds exactly the words plain substring tests find, so answers do not change."""

from __future__ import annotations

import itertools
from pathlib import Path

from bot.config import REPO_ROOT
from bot.triage.classifier import Classification
from bot.triage.faq import FaqMatcher, FaqPattern, FaqRule
from bot.triage.rules import normalize, normalize_keeps

RULES = FaqMatcher.from_dir(REPO_ROOT / "rules")
QUESTION = Classification(intent="question", topic=None, confidence=0.9, needs_answer=True, spam=False, matched=())


def naive_candidate(matcher: FaqMatcher, text: str, account: str | None) -> bool:
    """What `candidate` must say: a pattern's words all appear as substrings (the rules' original test)."""
    text = normalize(text)
    for rule in matcher.rules:
        if rule.accounts is not None and (account is None or normalize(account) not in rule.accounts):
            continue
        for p in rule.patterns:
            if all(w in text for w in p.all_of) and (not p.any_of or any(w in text for w in p.any_of)):
                return True
    return False


def texts() -> list[str]:
    words = sorted({w for r in RULES.rules for p in r.patterns for w in p.all_of + p.any_of})
    pairs = ["请问" + a + "，" + b + "？" for a, b in itertools.islice(itertools.permutations(words, 2), 4000)]
    payloads = [p.read_text(encoding="utf-8") for p in (Path(__file__).parent / "payloads" / "wechat").glob("*.xml")]
    return [*words, *pairs, *payloads, "", "ＳＨＥＢＡＯ 社保卡丢了", "路灯坏了"]


def test_candidate_equals_substring_matching_for_every_rule_word_and_pair():
    for text in texts():
        for account in (None, "示例县住建", "示例县发布"):
            assert RULES.candidate(text, account) == naive_candidate(RULES, text, account), (text, account)


def test_match_answers_with_the_longest_pattern_and_finds_overlapping_words():
    # "公积金" and "提取" overlap nothing; "社保卡" contains "社保": both are found by one pass.
    rules = FaqMatcher([
        FaqRule("short", (FaqPattern(all_of=("社保",), any_of=("查询",)),), "短", None, 0.5),
        FaqRule("card", (FaqPattern(all_of=("社保卡",), any_of=("补办", "丢了")),), "卡", None, 0.5),
    ])
    found = rules.match("社保卡丢了怎么补办，顺便查询社保", QUESTION)
    assert found.rule_id == "card" and found.words == ("社保卡", "补办", "丢了")
    assert rules.candidate("社保卡") is False and rules.candidate("社保卡丢了") is True
    assert FaqMatcher([]).candidate("任何文字") is False


def test_normalize_is_idempotent_for_every_character():
    """The callback normalizes a text once and hands it on: classify and match normalize it again and
    must find the same text (every code point, and a mixed sample)."""
    chars = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    once = normalize(chars)
    assert normalize(once) == once
    sample = "Ｗｅｃｈａｔ，请问ΣΑΣ怎么办？ＡＢＣ　ſİ"
    assert normalize(normalize(sample)) == normalize(sample)


def test_ideographs_are_kept_by_normalize_and_come_from_nothing_else():
    """Why `candidate` may read a text as it came when every FAQ word is of ideographs."""
    ideographs = "".join(chr(c) for c in [*range(0x3400, 0x4DC0), *range(0x4E00, 0xA000)])
    assert normalize(ideographs) == ideographs and normalize_keeps(ideographs)
    others = "".join(chr(c) for c in range(0x110000)
                     if not (0xD800 <= c <= 0xDFFF or 0x3400 <= c < 0x4DC0 or 0x4E00 <= c < 0xA000))
    assert not any(normalize_keeps(ch) for ch in set(normalize(others)))


def test_a_word_with_letters_makes_candidate_normalize_the_text():
    rules = FaqMatcher([FaqRule("app", (FaqPattern(all_of=("app", "下载"), any_of=()),), "见应用商店", None, 0.5)])
    assert not normalize_keeps("app") and rules.candidate("ＡＰＰ在哪里下载") is True
    assert RULES._raw_ok and RULES.candidate("ＳＨＥＢＡＯ　社保卡丢了？") == naive_candidate(RULES, "ＳＨＥＢＡＯ　社保卡丢了？", None)


def test_candidate_of_rules_for_one_account_and_a_pattern_without_words():
    rules = FaqMatcher([
        FaqRule("local", (FaqPattern(all_of=("停水",), any_of=("通知", "时间")),), "见公告", frozenset({"示例县住建"}), 0.5),
        FaqRule("bare", (FaqPattern(all_of=(), any_of=()),), "您好", frozenset({"示例县发布"}), 0.5),
    ])
    for text in ("停水时间", "停水", "时间通知", "路灯"):
        for account in (None, "示例县住建", "示例县发布", "其他"):
            assert rules.candidate(text, account) == naive_candidate(rules, text, account), (text, account)
