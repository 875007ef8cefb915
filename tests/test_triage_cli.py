"""`govbot rules test|classify|check` through click's CliRunner, on small CSV files."""

from __future__ import annotations

import csv
import shutil

from click.testing import CliRunner

from bot.triage.cli import DEFAULT_RULES_DIR, OUTPUT_COLUMNS, rules


def run(*args):
    return CliRunner().invoke(rules, list(args), catch_exceptions=False)


def read_csv(path):
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_rules_test_prints_classification_and_why():
    result = run("test", "路灯坏了一个月没人管，太不满意了")
    assert result.exit_code == 0
    assert "intent: complaint" in result.output
    assert "topic: 城乡建设" in result.output
    assert "没人管" in result.output and "complaint.misconduct" in result.output


def test_rules_test_with_subject():
    result = run("test", "三个月了还没处理", "--subject", "小区物业乱收费")
    assert result.exit_code == 0 and "topic: 城乡建设" in result.output


def test_classify_csv_without_subject(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("key,text\nk1,工厂夜里偷排废水，臭味刺鼻，没人管\nk2,点赞👍\nk3,\"请问社保卡怎么办理？\"\n",
                   encoding="utf-8")
    result = run("classify", str(src), "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    assert list(rows[0]) == list(OUTPUT_COLUMNS)
    by_key = {r["key"]: r for r in rows}
    assert by_key["k1"]["intent"] == "complaint"
    assert by_key["k1"]["topic"] == "环境保护" and by_key["k1"]["department"] == "生态环境局"
    assert "topic.environment.pollution:" in by_key["k1"]["rules"]
    # No clear topic: the default desk, as the service routes it.
    assert by_key["k2"]["intent"] == "praise" and by_key["k2"]["topic"] == "" and by_key["k2"]["department"] == "政务公开办"
    assert by_key["k3"]["intent"] == "question" and by_key["k3"]["department"] == "人社局"


def test_classify_csv_with_subject_column_bom_and_long_text(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    long_text = "已经反映过很多次了。" * 20000  # a field beyond csv's default 128 KiB limit
    with src.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["key", "subject", "text", "time"])
        writer.writerow(["a", "小区物业乱收费", "三个月了还没处理", "2019/1/1"])
        writer.writerow(["b", "", "孩子上学要交择校费吗？", "2019/1/2"])
        writer.writerow(["c", "", long_text, "2019/1/3"])
    result = run("classify", str(src), "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = {r["key"]: r for r in read_csv(out)}
    assert rows["a"]["topic"] == "城乡建设" and rows["a"]["department"] == "住建局"
    assert rows["b"]["topic"] == "教育文体"
    assert rows["c"]["intent"] == "complaint"


def test_classify_csv_missing_column(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,body\n1,hello\n", encoding="utf-8")
    result = run("classify", str(src), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code != 0
    assert "key, text" in result.output


def test_check_ok_and_bad_rules(tmp_path):
    ok = run("check")
    assert ok.exit_code == 0 and ok.output.startswith("ok:")
    bad_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, bad_dir)
    topics = bad_dir / "topics.toml"
    topics.write_text(topics.read_text(encoding="utf-8").replace('topic = "环境保护"', 'topic = "环保"', 1),
                      encoding="utf-8")
    result = run("check", "--rules", str(bad_dir))
    assert result.exit_code == 1
    assert "topics.toml" in result.output and "topic.environment.pollution" in result.output
    assert "unknown topic '环保'" in result.output


def test_classify_with_bad_rules_dir_fails_cleanly(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("key,text\n1,hello\n", encoding="utf-8")
    result = run("classify", str(src), "--rules", str(tmp_path / "nowhere"))
    assert result.exit_code == 1 and "intent.toml" in result.output and "missing" in result.output


def test_registered_as_govbot_rules():
    from bot.cli import main

    result = CliRunner().invoke(main, ["rules", "check"], catch_exceptions=False)
    assert result.exit_code == 0 and "ok:" in result.output


def test_classify_routes_with_the_configs_departments(tmp_path):
    import tomli_w

    from bot.cli import main
    from tests.conftest import EXAMPLE, deep_merge

    data = deep_merge(EXAMPLE, {"triage": {"topic_departments": {"环境保护": "住建局"}, "default_department": "住建局"}})
    config = tmp_path / "c.toml"
    config.write_bytes(tomli_w.dumps(data).encode())
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("key,text\nk1,工厂夜里偷排废水，臭味刺鼻，没人管\nk2,点赞\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(config), "rules", "classify", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert {r["key"]: r["department"] for r in read_csv(out)} == {"k1": "住建局", "k2": "住建局"}
