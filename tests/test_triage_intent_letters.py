"""Intent of citizen letters (留言) with the shipped rules: proposals, information requests and
complaints that borrow their forms.

The sentences are synthetic, written for this test in the style of letters to county departments:
a letter that mainly proposes an improvement is a suggestion even when it names the problem behind
it; a letter asking for information or procedure is a question; a letter reporting a wrong that asks
"能否尽快解决" or "会不会查处" demands action, so it is a complaint.
"""

from __future__ import annotations

import pytest

from bot.triage.classifier import Classifier
from bot.triage.cli import DEFAULT_RULES_DIR


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.from_dir(DEFAULT_RULES_DIR)


@pytest.mark.parametrize("text", [
    "为了方便新区居民出行，建议增开一条到县城的公交线路",
    "对停车难提出几点建议：一是利用闲置空地建停车场，二是机关停车位错时开放",
    "外省早已实行不动产登记网上办理，希望我市借鉴他们的经验",
    "是否可以考虑在老城区多建几个公共厕所",
    "恳请在村口修建一座便民桥",
    "应当加强对校外培训机构的监管，出台收费标准",
])
def test_proposals_are_suggestions(clf, text):
    c = clf.classify(text)
    assert c.intent == "suggestion" and c.needs_answer


def test_a_declared_proposal_outweighs_the_harm_it_starts_from(clf):
    c = clf.classify("最近毒蛇咬伤的事故不少，情况严重，群众很担心。特提出建议：乡镇卫生院常备抗蛇毒血清")
    scores = dict(c.intent_scores)
    assert scores["complaint"] >= clf.ruleset.decision.thresholds["complaint"]
    assert c.intent == "suggestion"


@pytest.mark.parametrize("text", [
    "我是灵活就业人员，是否符合申请公租房的条件？",
    "请问退休人员能否享受这项补贴",
    "想咨询一下，新生儿医保是否可以在网上办理",
])
def test_eligibility_and_procedure_questions(clf, text):
    assert clf.classify(text).intent == "question"


@pytest.mark.parametrize("text", [
    "孩子学校乱收费，请问教育局打算怎么处理？会不会查处？",
    "小区门口的违建搭了半年了，能否尽快解决？",
    "去社保局办理退休手续跑了三次，工作人员互相推诿，手续到现在也没办好",
    "楼下物业乱收停车费，希望有关部门尽快处理",
    "开发商拖欠工程款两年，应该给我们一个说法，希望政府能出面",
])
def test_complaints_using_question_or_wish_forms_stay_complaints(clf, text):
    c = clf.classify(text)
    assert c.intent == "complaint" and c.needs_answer

