"""FAQ auto-replies: confident questions only, never complaints, per-account rules."""

from __future__ import annotations

import tomllib

import pytest

from bot.triage.classifier import Classifier
from bot.triage.cli import DEFAULT_RULES_DIR
from bot.triage.faq import FaqMatcher

FAQ = """
[defaults]
min_confidence = 0.5

[[faq]]
id = "card.global"
patterns = [{ all = ["社保卡"], any = ["办理", "补办"] }]
answer = "社保卡可到合作银行网点办理。"

[[faq]]
id = "card.town"
accounts = ["town_a"]
patterns = [{ all = ["社保卡", "补办"] }]
answer = "本镇社保卡补办请到便民服务中心2号窗口。"

[[faq]]
id = "hours"
min_confidence = 0.95
patterns = [{ any = ["上班时间", "办公时间"] }]
answer = "工作日8:30-17:30。"
"""


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.from_dir(DEFAULT_RULES_DIR)


@pytest.fixture
def faq(tmp_path) -> FaqMatcher:
    path = tmp_path / "faq.toml"
    path.write_text(FAQ, encoding="utf-8")
    return FaqMatcher.from_file(path)


def ask(faq, clf, text, account=None):
    return faq.match(text, clf.classify(text), account=account)


def test_confident_question_gets_the_answer(faq, clf):
    m = ask(faq, clf, "请问社保卡怎么办理？")
    assert m is not None and m.rule_id == "card.global"
    assert "银行" in m.answer and "社保卡" in m.words


def test_complaint_never_gets_an_auto_reply(faq, clf):
    text = "社保卡补办了三个月还没拿到，工作人员推诿，没人管，怎么办理？"
    c = clf.classify(text)
    assert c.intent == "complaint"
    assert faq.match(text, c) is None


def test_praise_and_spam_get_no_auto_reply(faq, clf):
    assert ask(faq, clf, "社保卡办理很快，点赞👍") is None
    assert ask(faq, clf, "社保卡办理，兼职日结，加微信abc12345") is None


def test_not_confident_enough(faq, clf):
    text = "请问办公时间是几点？"
    c = clf.classify(text)
    assert c.intent == "question" and c.confidence < 0.95
    assert faq.match(text, c) is None


def test_account_rule_wins_for_its_account_only(faq, clf):
    text = "请问社保卡在哪里补办？"
    assert ask(faq, clf, text, account="town_a").rule_id == "card.town"
    assert ask(faq, clf, text, account="town_b").rule_id == "card.global"
    assert ask(faq, clf, text).rule_id == "card.global"


def test_all_and_any_words(faq, clf):
    assert ask(faq, clf, "请问社保卡怎么激活？") is None  # all-of matches, none of any-of


def test_shipped_faq_answers_a_question(clf):
    shipped = FaqMatcher.from_dir(DEFAULT_RULES_DIR)
    m = ask(shipped, clf, "请问怎么查询养老保险缴费记录？")
    assert m is not None and m.rule_id == "faq.pension_query"


@pytest.mark.parametrize("text, rule_id", [
    ("社保卡丢了在哪里补办？", "faq.social_security_card"),
    ("请问政务服务中心周六上班吗", "faq.office_hours"),
    ("公积金怎么提取？", "faq.housing_fund"),
    ("身份证过期了怎么办理", "faq.id_card_household"),
    ("新生儿怎么上户口", "faq.id_card_household"),
    ("请问房产证怎么办理", "faq.property_certificate"),
])
def test_shipped_faq_covers_common_county_questions(clf, text, rule_id):
    m = ask(FaqMatcher.from_dir(DEFAULT_RULES_DIR), clf, text)
    assert m is not None and m.rule_id == rule_id
    assert "12345" in m.answer


def test_shipped_account_rules_name_accounts_of_the_example_config(clf):
    config = tomllib.loads((DEFAULT_RULES_DIR.parent / "config.example.toml").read_text(encoding="utf-8"))
    names = {a["name"] for a in config["accounts"]}
    shipped = FaqMatcher.from_dir(DEFAULT_RULES_DIR)
    account_rules = [r for r in shipped.rules if r.accounts is not None]
    assert account_rules
    for rule in account_rules:
        assert rule.accounts <= names, f"{rule.id} names unknown accounts {sorted(rule.accounts - names)}"
    text = "请问公积金怎么提取？"
    assert ask(shipped, clf, text, account="示例县住建").rule_id == "faq.housing_fund_zhujian"
    assert ask(shipped, clf, text, account="示例县发布").rule_id == "faq.housing_fund"
