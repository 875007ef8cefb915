"""Shipped data is found from a checkout or a wheel; a site's rules directory lies on top of it."""

from pathlib import Path

from bot import resources
from bot.config import parse_config
from bot.textcheck import load_check_rules
from bot.triage.rules import RuleStore


def test_checkout_paths_are_the_top_level_folders():
    # Running from the checkout (editable install): rules/ and migrations/ at the repository's top.
    assert resources.rules_dir() == resources.CHECKOUT_ROOT / "rules"
    assert (resources.migrations_dir() / "versions" / "0001_initial.py").is_file()
    assert (resources.package_dir("web", "templates")).is_dir()


def test_site_rules_override_file_by_file(tmp_path: Path):
    site = tmp_path / "rules"
    site.mkdir()
    (site / "sensitive.txt").write_text("[自定义]\n本地专用词\n", encoding="utf-8")
    (site / "holidays.toml").write_text("", encoding="utf-8")
    rules = load_check_rules(site)
    assert [w.text for w in rules.sensitive] == ["本地专用词"]
    assert rules.typos == load_check_rules(None).typos  # typos.toml: the shipped one
    config = parse_config({"triage": {"rules_dir": "rules"}}, file=str(tmp_path / "config.toml"))
    assert config.rules_dir == site and config.holidays_path == site / "holidays.toml"
    assert parse_config({}).holidays_path == resources.rules_dir() / "holidays.toml"


def test_a_site_file_added_later_takes_over(tmp_path: Path):
    store = RuleStore(tmp_path, check_every_s=0)
    shipped = store.current_faq()
    faq = (resources.rules_dir() / "faq.toml").read_text(encoding="utf-8")
    (tmp_path / "faq.toml").write_text(faq.split("[[faq]]")[0] + "[[faq]]" + faq.split("[[faq]]")[1],
                                       encoding="utf-8")
    assert len(store.current_faq().rules) == 1 < len(shipped.rules)


def test_rules_commands_use_the_configs_site_rules(tmp_path: Path):
    from click.testing import CliRunner

    from bot.cli import main

    site = tmp_path / "site-rules"
    site.mkdir()
    topics = (resources.rules_dir() / "topics.toml").read_text(encoding="utf-8")
    (site / "topics.toml").write_text(topics.replace('"路灯"', '"路灯", "灯杆"', 1), encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(f'[triage]\nrules_dir = "{site.name}"\n', encoding="utf-8")
    (tmp_path / "plain.toml").write_text("", encoding="utf-8")
    shipped = CliRunner().invoke(main, ["--config", str(tmp_path / "plain.toml"), "rules", "test", "灯杆歪了"])
    own = CliRunner().invoke(main, ["--config", str(config), "rules", "test", "灯杆歪了"])
    assert shipped.exit_code == 0 and "topic: 城乡建设" not in shipped.output
    assert own.exit_code == 0 and "topic: 城乡建设" in own.output
    checked = CliRunner().invoke(main, ["--config", str(config), "rules", "check"])
    assert checked.exit_code == 0 and str(site) in checked.output
