"""Short comments (评论) written for these tests, not taken from any data set: the hand rules catch the
ways people complain without complaint words and keep praise, chat and ads out of tickets."""

from __future__ import annotations

import pytest

from bot.triage.classifier import Classifier
from bot.triage.cli import DEFAULT_RULES_DIR


@pytest.fixture(scope="module")
def clf():
    return Classifier.from_dir(DEFAULT_RULES_DIR)


@pytest.mark.parametrize("intent, topic, text", [
    ("complaint", "环境保护", "隔壁饭馆的排风扇对着我家阳台吹了一年，油烟把窗帘都熏黄了"),
    ("complaint",None,"凌晨三点还有渣土车轰隆隆地过，整栋楼都睡不好"),
    ("complaint",None,"这办事速度真是绝了👏，材料交了两个月还在审核"),
    ("complaint", "城乡建设", "小区路灯坏了快一个月了还是没人修"),
    ("complaint",None,"窗口工作人员一直在玩手机，问个事爱答不理"),
    ("complaint", "城乡建设", "物业费年年涨，楼道灯三天两头坏，这合理吗"),  # a lift alone would be 特种设备 (商贸旅游)
    ("complaint", "交通运输", "出租车司机不打表，一口价八十，爱坐不坐"),
    ("complaint",None,"说好月底给答复，现在都过去半个月了还没消息"),
    ("complaint", "卫生计生", "医院停车场收费比看病还贵，谁来管管"),
    ("complaint", "劳动和社会保障", "厂里拖了我们三个月工资，老板电话也打不通了"),
    ("complaint",None,"服务一点都不好，态度还差"),
    ("complaint", "教育文体", "学校又让家长交资料费，凭什么？"),
    ("question", "劳动和社会保障", "医保卡丢了去哪补办"),
    ("question", "教育文体", "今年中考体育考几项"),
    ("question", "卫生计生", "宝宝的疫苗在社区打还是去医院打"),
    ("question", "交通运输", "驾照到期换证要带啥材料"),
    ("suggestion", "城乡建设", "小区能不能多装几个充电桩"),
    ("suggestion", "教育文体", "图书馆周一要是也开门就好了"),
    ("suggestion", "交通运输", "建议早晚高峰多发几班车"),
    ("praise",None,"办证一次就办好了，工作人员很耐心，点赞"),
    ("praise", "城乡建设", "前两天反映的井盖今天就换好了，谢谢"),
    ("praise",None,"辛苦了，大热天还在一线"),
    ("other",None,"沙发"),
    ("other",None,"有没有一起拼车去省城的"),
    ("other",None,"日结兼职，手机就能做，加v详聊"),
    ("other",None,"哈哈哈哈哈"),
])
def test_short_comment(clf, intent, topic, text):
    c = clf.classify(text)
    assert c.intent == intent, c.explain()
    if topic:
        assert c.topic == topic, c.explain()
    assert c.needs_answer == (intent in ("complaint", "question", "suggestion"))


def test_an_ad_gets_no_topic_and_no_ticket(clf):
    c = clf.classify("专业代办社保卡医保卡，三天出卡，加v详聊")
    assert c.spam and c.topic is None and not c.needs_answer


def test_colloquial_rules_stay_out_of_long_letters(clf):
    letter = "我们小区的下水道堵了很久，" * 8 + "希望有关部门尽快处理，谢谢"
    c = clf.classify(letter)
    assert c.intent == "complaint"
    assert not any(m.rule_id.startswith("praise.colloquial") for m in c.matched)


def test_max_chars_must_be_a_positive_integer(tmp_path):
    import shutil

    from bot.triage.rules import RuleError, load_rules

    rules_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules_dir)
    intent = rules_dir / "intent.toml"
    intent.write_text(intent.read_text(encoding="utf-8").replace("max_chars = 60", "max_chars = 0", 1), encoding="utf-8")
    with pytest.raises(RuleError, match="max_chars must be a positive integer"):
        load_rules(rules_dir)
