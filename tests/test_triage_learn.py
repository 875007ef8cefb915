"""Learned keywords: log-odds from labelled messages, rules/learned.toml validated at load, `govbot rules
learn` from CSVs and stored corrections, and the rules page's review of corrections."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.cli import CliState
from bot.clock import utcnow
from bot.models import Account, Message, User
from bot.triage.classifier import Classifier
from bot.triage.cli import DEFAULT_RULES_DIR, rules
from bot.triage.corrections import record_correction
from bot.triage.disagreements import review_corrections
from bot.triage.learn import Labelled, Settings, learn, learn_all, render_toml, token_set
from bot.triage.rules import LEARNED_FILE, RuleError, load_rules
from bot.web.app import create_app
from tests.test_console import login


@pytest.fixture
def rules_dir(tmp_path):
    path = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, path)
    return path


def test_log_odds_keep_telling_words_above_the_minimum_count():
    samples = [(frozenset({"油烟", "窗户"}), "a")] * 4 + [(frozenset({"窗户", "学校"}), "b")] * 4 \
        + [(frozenset({"罕见"}), "a")]
    learned = learn(samples, ["a", "b"], Settings(min_count=3))
    words = {w.word: w for w in learned["a"]}
    assert "油烟" in words and words["油烟"].weight > 1 and (words["油烟"].count, words["油烟"].other) == (4, 0)
    assert "窗户" not in words  # as common in the other class: tells nothing
    assert "罕见" not in words  # below min_count
    assert learned["b"][0].word == "学校"


def test_learned_file_is_read_and_every_decision_names_its_learned_words(rules_dir):
    samples = [(frozenset({"咕噜声"}), "环境保护")] * 5 + [(frozenset({"课表"}), "教育文体")] * 5
    (rules_dir / LEARNED_FILE).write_text(
        render_toml({"topic": learn(samples, ["环境保护", "教育文体"])}, source="test", intent_factor=1,
                    topic_factor=2), encoding="utf-8")
    c = Classifier.from_dir(rules_dir).classify("半夜楼下咕噜声")
    assert c.topic == "环境保护"
    assert "learned.topic.环境保护:咕噜声" in c.rules_summary()


def test_topic_words_are_fitted_against_the_hand_rules_and_learn_a_convention(rules_dir):
    # The hand rules send lifts to market regulation (特种设备); this office files them under 城乡建设.
    hand = Classifier.from_dir(rules_dir)
    filler = "，楼里住着很多老人和小孩，大家每天进进出出都很不方便，希望有关部门能够重视这个情况并且尽快把它处理好"
    samples = [Labelled(f"小区电梯又坏了，第{n}回{filler}", topic="城乡建设") for n in range(8)] \
        + [Labelled(f"学校食堂的饭菜涨价了，第{n}回{filler}", topic="教育文体") for n in range(8)] \
        + [Labelled("电梯坏了", topic="商贸旅游")] * 8  # short comments: not learned from
    assert len(samples[0].text) > 60
    assert hand.classify(samples[0].text).topic == "商贸旅游"
    learned = learn_all([(token_set(s.text, hand.tokenizer), s) for s in samples], hand, Settings(min_count=3))["topic"]
    lists = {topic: {w.word: w.weight for w in words} for topic, words in learned.items()}
    assert "电梯" in lists["城乡建设"]
    # Weights are shifted to start at 0: no word adds to every topic, none is negative.
    assert all(w > 0 for words in lists.values() for w in words.values())
    assert not any(all(word in words for words in lists.values()) for word in lists["城乡建设"])
    (rules_dir / LEARNED_FILE).write_text(render_toml({"topic": learned}, source="test", intent_factor=1,
                                                      topic_factor=1), encoding="utf-8")
    c = Classifier.from_dir(rules_dir).classify("我们小区的电梯坏了")
    assert c.topic == "城乡建设"
    assert any(m.rule_id == "learned.topic.城乡建设" and "电梯" in m.words for m in c.matched)


@pytest.mark.parametrize("body, reason", [
    ('[settings]\nintent_factor = 1\ntopic_factor = 1\n[topic."天气"]\n"下雨" = 1\n', "unknown topic '天气'"),
    ('[settings]\nintent_factor = 1\ntopic_factor = 1\n[intent.complaint]\n"差" = -2\n', "weight of '差'"),
    ('[settings]\nintent_factor = 1\n', "missing key(s) topic_factor"),
    ('[settings]\nintent_factor = 1\ntopic_factor = 1\n[intent.complaint]\n', "non-empty table"),
])
def test_a_bad_learned_file_is_refused_naming_file_rule_and_reason(rules_dir, body, reason):
    (rules_dir / LEARNED_FILE).write_text(body, encoding="utf-8")
    with pytest.raises(RuleError) as exc:
        load_rules(rules_dir)
    assert LEARNED_FILE in str(exc.value) and reason in str(exc.value)


def write_labelled(tmp_path):
    texts = tmp_path / "texts.csv"
    rows = ["key,text,topic"]
    # Letters (over 60 characters): topic words are learned from letters only.
    filler = "我们这里住着很多老人和小孩，大家每天都要从这里经过，希望有关部门能够重视这个情况并且尽快处理好"
    for n in range(20):
        rows.append(f"e{n},楼下烧烤摊的烟熏得睁不开眼 第{n}回。{filler},环境保护")
        rows.append(f"s{n},学校食堂的饭菜涨价了 第{n}回。{filler},教育文体")
    texts.write_text("\n".join(rows) + "\n", encoding="utf-8")
    intents = tmp_path / "intents.csv"
    intents.write_text("key,intent\n" + "".join(f"e{n},complaint\ns{n},question\n" for n in range(20)),
                       encoding="utf-8")
    return texts, intents


def test_rules_learn_merges_files_by_key_reports_held_out_score_and_writes_a_valid_file(tmp_path, rules_dir):
    texts, intents = write_labelled(tmp_path)
    result = CliRunner().invoke(rules, ["learn", str(texts), str(intents), "--rules", str(rules_dir)])
    assert result.exit_code == 0, result.output
    assert "held out" in result.output and "topic_macro_f1: hand rules" in result.output
    text = (rules_dir / LEARNED_FILE).read_text(encoding="utf-8")
    # Topic words only where the hand rules need them: 学校 (教育) ties with 涨价 (商贸), the smoke is clear.
    assert '[topic."教育文体"]' in text and '"饭菜"' in text and '[intent."question"]' in text
    assert '[topic."环境保护"]' not in text
    assert any(r.id == "learned.topic.教育文体" for r in load_rules(rules_dir).learned_rules)


def test_rules_learn_refuses_an_unknown_label_and_a_dry_run_writes_nothing(tmp_path, rules_dir):
    texts, _ = write_labelled(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("key,text,intent\nk1,路灯坏了,抱怨\n", encoding="utf-8")
    result = CliRunner().invoke(rules, ["learn", str(bad), "--rules", str(rules_dir)])
    assert result.exit_code == 1 and result.output.startswith("error: ") and len(result.output.splitlines()) == 1
    assert "bad.csv 第 2 行：未知的诉求类型“抱怨”" in result.output
    before = (rules_dir / LEARNED_FILE).read_text(encoding="utf-8")
    result = CliRunner().invoke(rules, ["learn", str(texts), "--dry-run", "--rules", str(rules_dir)])
    assert result.exit_code == 0 and "held out" in result.output
    assert (rules_dir / LEARNED_FILE).read_text(encoding="utf-8") == before


def store_corrected(ctx, n: int, text: str, intent: str, topic: str) -> None:
    with ctx.session() as s:
        admin = s.exec(select(User).where(User.username == "admin")).one()
        account = s.exec(select(Account)).first()
        for i in range(n):
            m = Message(account_id=account.id, kind="wechat_comment", dedupe_key=f"learn-{text}-{i}",
                        text=f"{text}{i}", received_at=utcnow(), intent="other", topic=None)
            s.add(m)
            s.flush()
            record_correction(session=s, message_id=m.id, user=admin, intent=intent, topic=topic)


def test_rules_learn_takes_the_stored_corrections(ctx, rules_dir):
    store_corrected(ctx, 12, "咕嘟咕嘟的泔水车天天堵门口", "complaint", "环境保护")
    state = CliState(None)
    state._config, state._ctx = ctx.config, ctx
    result = CliRunner().invoke(rules, ["learn", "--corrections", "--rules", str(rules_dir)], obj=state)
    assert result.exit_code == 0, result.output
    assert "of 12 messages" in result.output
    assert '"泔水"' in (rules_dir / LEARNED_FILE).read_text(encoding="utf-8")


def test_review_counts_disagreeing_corrections_and_proposes_missing_words():
    classifier = Classifier.from_dir(DEFAULT_RULES_DIR)
    samples = [Labelled("泔水车天天堵在门口", "complaint", "环境保护"),
               Labelled("泔水车又堵门口了", "complaint", "环境保护"),
               Labelled("请问社保卡怎么办理？", "question", "劳动和社会保障")]
    review = review_corrections(samples, classifier)
    assert (review.corrections, review.disagreeing) == (3, 2)
    by_label = {(d.kind, d.label): d for d in review.labels}
    env = by_label[("topic", "环境保护")]
    assert env.messages == 2 and ("泔水", 2) in env.words


def test_rules_page_shows_the_disagreements(ctx):
    store_corrected(ctx, 2, "泔水车天天堵门口", "complaint", "环境保护")
    client = login(TestClient(create_app(ctx)), "admin")
    html = client.get("/rules").text
    assert "人工纠正与规则的分歧" in html and "共 2 条留言被人工纠正过" in html and "泔水（2）" in html


def test_only_what_a_responder_changed_is_taken_as_a_label(ctx):
    from bot.triage.corrections import corrected_messages

    with ctx.session() as s:
        admin = s.exec(select(User).where(User.username == "admin")).one()
        account = s.exec(select(Account)).first()
        m = Message(account_id=account.id, kind="wechat_comment", dedupe_key="learn-only-changed", text="路灯不亮",
                    received_at=utcnow(), intent="question", topic="城乡建设")
        s.add(m)
        s.flush()
        record_correction(session=s, message_id=m.id, user=admin, intent="complaint")
        assert corrected_messages(session=s) == [Labelled("路灯不亮", "complaint", None)]
        record_correction(session=s, message_id=m.id, user=admin, topic="交通运输")
        assert corrected_messages(session=s) == [Labelled("路灯不亮", "complaint", "交通运输")]
