"""Classification with the shipped rules/ on short synthetic messages."""

from __future__ import annotations

import pytest

from bot.triage.classifier import Classification, Classifier
from bot.triage.cli import DEFAULT_RULES_DIR


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.from_dir(DEFAULT_RULES_DIR)


def words_of(c: Classification) -> set[str]:
    return {w for m in c.matched for w in m.words}


@pytest.mark.parametrize("text", ["不满意", "对答复不满意", "服务不是很满意", "一点都不满意", "根本没人管", "楼下烧烤店天天到半夜也没有人管"])
def test_negated_praise_and_nobody_cares_are_complaints(clf, text):
    c = clf.classify(text)
    assert c.intent == "complaint"
    assert c.needs_answer


def test_negation_is_recorded_in_the_match(clf):
    c = clf.classify("办事人员不是很负责")
    assert c.intent == "complaint"
    negated = [m for m in c.matched if m.label == "complaint" and any(w.startswith("¬") for w in m.words)]
    assert negated and negated[0].rule_id.startswith("praise.")


@pytest.mark.parametrize("text", ["不错", "服务很不错，满意", "不动产登记办得很满意", "点赞👍", "辛苦了！", "好！", "为人民服务，赞"])
def test_praise_needs_no_answer(clf, text):
    c = clf.classify(text)
    assert c.intent == "praise"
    assert not c.needs_answer and not c.spam


def test_negator_inside_another_word_does_not_negate(clf):
    # 不动产 is property, not 不 + 动产; 不错 is praise on its own.
    assert clf.classify("不动产登记很满意").intent == "praise"
    assert clf.classify("挺不错，满意").intent == "praise"


@pytest.mark.parametrize("text", ["沙发", "顶", "zf", "前排围观", "😂😂😂", "哈哈哈"])
def test_filler_comments_are_other_without_answer(clf, text):
    c = clf.classify(text)
    assert c.intent == "other"
    assert not c.needs_answer


@pytest.mark.parametrize("text", ["加微信abc12345 兼职日结", "兼职日结，加vx", "宝妈在家兼职，日赚三百，私聊"])
def test_spam_is_flagged_other_and_needs_no_answer(clf, text):
    c = clf.classify(text)
    assert c.spam
    assert c.intent == "other"
    assert not c.needs_answer
    assert any(m.kind == "spam" for m in c.matched)


def test_a_fraud_complaint_mentioning_part_time_jobs_is_not_spam(clf):
    c = clf.classify("网上兼职刷单被骗了三千元，要求公安立案查处")
    assert c.intent == "complaint" and not c.spam


@pytest.mark.parametrize("text", [
    "怎么办理社保卡", "怎么办理社保卡？", "社保卡在哪里补办", "能否网上办理", "可不可以网上办",
    "不动产证怎么办理", "请问明天上班吗", "请问明天上班吗？", "医保报销比例是多少", "是否需要本人到场",
])
def test_question_forms_with_or_without_question_mark(clf, text):
    c = clf.classify(text)
    assert c.intent == "question"
    assert c.needs_answer


@pytest.mark.parametrize("text", [
    "建议增设一条公交线路到新区", "能否延长办公时间", "退休年龄宜改为五十岁", "可否在菜市场旁增设停车位",
    "希望多开几趟早班车", "对老旧小区改造提出几点建议：一是加装电梯，二是增设停车位",
])
def test_suggestion(clf, text):
    c = clf.classify(text)
    assert c.intent == "suggestion" and c.needs_answer


def test_strong_complaint_beats_question_by_priority(clf):
    c = clf.classify("垃圾焚烧厂臭味太大，严重影响休息，怎么没人管？")
    scores = dict(c.intent_scores)
    assert scores["question"] >= clf.ruleset.decision.thresholds["question"]
    assert c.intent == "complaint"
    assert "priority" in c.reason


def test_topic_from_vocabulary_and_subject(clf):
    assert clf.classify("工厂夜里偷排废水，河里死鱼，臭味刺鼻").topic == "环境保护"
    assert clf.classify("孩子上学要交择校费吗").topic == "教育文体"
    assert clf.classify("退休后养老金什么时候发放").topic == "劳动和社会保障"
    # The subject names the matter; the body alone does not.
    assert clf.classify("已经三个月了还没解决").topic is None
    assert clf.classify("已经三个月了还没解决", subject="小区物业乱收费").topic == "城乡建设"


def test_explanation_names_rules_words_and_decision(clf):
    c = clf.classify("对处理结果不满意，路灯坏了没人管")
    text = c.explain()
    assert "intent: complaint" in text
    assert "complaint.misconduct" in text and "不满意" in text and "没人管" in text
    assert "topic: 城乡建设" in text and "路灯" in text
    assert "why:" in text and "needs an answer" in text


def test_rules_summary_is_compact(clf):
    c = clf.classify("没人管", subject=None)
    summary = c.rules_summary()
    assert "complaint.misconduct:没人管" in summary
    for part in summary.split(";"):
        rule_id, words = part.split(":", 1)
        assert rule_id and words and "," not in part


def test_confidence_in_range_and_higher_for_clear_cases(clf):
    clear = clf.classify("请问怎么办理社保卡？需要哪些材料？")
    mixed = clf.classify("请问为什么没人管？")
    for c in (clear, mixed):
        assert 0.0 <= c.confidence <= 1.0
    assert clear.intent == "question"
    assert clear.confidence > 0.6


def test_empty_text(clf):
    c = clf.classify("")
    assert c.intent == "other" and c.topic is None and c.matched == ()


@pytest.mark.parametrize("text", [
    "请问社保卡丢了怎么补办？", "社保卡补办了三次都没办好，工作人员推诿扯皮，投诉！", "服务不是很满意",
    "兼职日结，加vx", "建议在学校门口增设红绿灯", "点赞👍", "小区楼下烧烤店油烟扰民，多次反映没人管，希望尽快处理。请问该找哪个部门？",
])
def test_intent_without_topics_is_the_same_intent(clf, text):
    """The callback's FAQ decision reads the intent only: the same intent, confidence, spam and reason as the
    full one, with nothing explained."""
    full, fast = clf.classify(text), clf.classify(text, topics=False)
    assert (fast.intent, fast.confidence, fast.spam, fast.needs_answer, fast.reason) == (
        full.intent, full.confidence, full.spam, full.needs_answer, full.reason)
    assert fast.topic is None and not fast.topic_scores and not fast.intent_scores and fast.matched == ()
