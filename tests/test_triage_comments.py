"""Short WeChat/Weibo comments (评论): accuracy per class with the shipped rules.

The comments are synthetic, written for this test in the style of comments under county government
posts: praise, filler, spam, short questions, complaints and suggestions. A class may miss a few
(the rules must generalise, not memorise these lines), but praise, filler and spam never need an answer.
"""

from __future__ import annotations

import pytest

from bot.triage.classifier import Classifier
from bot.triage.cli import DEFAULT_RULES_DIR

MIN_ACCURACY = 0.9

PRAISE = [
    "点赞👍", "辛苦了", "为家乡点赞", "好政策", "工作人员辛苦了！", "👍👍👍", "为你们点赞", "家乡越来越美了",
    "给力！", "真心点赞，办事效率高", "服务态度很好，谢谢", "干得漂亮", "好样的", "支持政府的工作",
    "为环卫工人点赞", "路修好了，感谢", "赞赞赞", "好消息！", "暖心之举", "这个政策好，老百姓受益",
]
FILLER = [
    "沙发", "顶", "zf加油", "来了来了", "打卡", "前排", "路过", "围观", "哈哈哈哈", "1", "mark", "第一",
    "嗯嗯", "收到", "😂😂",
]
SPAM = [
    "兼职日结，加微信abc12345", "代开发票，联系vx：kp8899", "刷单返利，日赚500，私聊", "宝妈在家也能月入过万，加v",
    "低息贷款秒批，点击链接 http://t.cn/abcd", "高仿名表，加qq 12345678", "免费领取流量卡，扫码进群",
    "办证刻章，微信同号13912345678", "互粉互关，回关必回", "网赚项目零投资，详情私信我",
]
QUESTION = [
    "社保卡在哪里补办", "几点上班", "怎么预约", "请问周六办事大厅开门吗", "身份证丢了怎么补办",
    "公积金怎么提取？", "不动产登记需要带什么材料", "孩子上学怎么报名", "医保在哪里交", "这个补贴什么时候发",
    "新生儿怎么上户口", "请问核酸检测点在哪", "居住证去哪里办理", "老人高龄补贴怎么申请", "请问办公时间是几点",
]
COMPLAINT = [
    "路灯坏了半个月没人修", "小区垃圾没人清理", "办事大厅态度太差", "工地晚上施工太吵了，睡不着",
    "村里的路坑坑洼洼，下雨全是泥", "打12345一直没人接", "楼下烧烤店油烟太大，熏得受不了", "工资拖欠三个月了",
    "窗口办事效率太低，排了一上午", "河里又有人偷排污水，臭死了", "小区停水两天了也没个通知",
    "学校乱收费，家长敢怒不敢言", "楼下餐馆油烟直接排进我家窗户", "隔壁厂子半夜噪音扰民",
]
SUGGESTION = [
    "建议多开几趟公交", "希望能在我们村装几盏路灯", "建议延长办事大厅周末的办公时间",
    "能否在学校门口增设一个红绿灯", "希望早日开通到县城的班车", "建议菜市场旁边多设几个停车位",
    "可否考虑在公园里加装健身器材", "呼吁大家文明养犬",
]

CASES = ([(t, "praise") for t in PRAISE] + [(t, "other") for t in FILLER] + [(t, "spam") for t in SPAM]
         + [(t, "question") for t in QUESTION] + [(t, "complaint") for t in COMPLAINT]
         + [(t, "suggestion") for t in SUGGESTION])
NO_ANSWER = {"praise", "other", "spam"}


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.from_dir(DEFAULT_RULES_DIR)


def label(clf: Classifier, text: str) -> str:
    c = clf.classify(text)
    return "spam" if c.spam else c.intent


@pytest.mark.parametrize("expected", ["praise", "other", "spam", "question", "complaint", "suggestion"])
def test_accuracy_per_class(clf, expected):
    texts = [t for t, e in CASES if e == expected]
    wrong = [(t, label(clf, t)) for t in texts if label(clf, t) != expected]
    accuracy = 1 - len(wrong) / len(texts)
    assert accuracy >= MIN_ACCURACY, f"{expected}: accuracy {accuracy:.2f}, wrong: {wrong}"


@pytest.mark.parametrize("text", [t for t, e in CASES if e in NO_ANSWER])
def test_praise_filler_and_spam_never_need_an_answer(clf, text):
    assert not clf.classify(text).needs_answer


@pytest.mark.parametrize("text", [t for t, e in CASES if e == "spam"])
def test_spam_is_flagged(clf, text):
    assert clf.classify(text).spam


def test_the_set_is_large_enough():
    assert len(CASES) >= 80
    assert len({t for t, _ in CASES}) == len(CASES)
