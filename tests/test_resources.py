"""Shipped data is found from a checkout or a wheel; a site's rules directory lies on top of it."""

from pathlib import Path

from bot import resources
from bot.config import parse_config
from bot.publishing.checks import load_check_rules
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
    store = RuleStore(tmp_path)
    shipped = store.current_faq()
    faq = (resources.rules_dir() / "faq.toml").read_text(encoding="utf-8")
    (tmp_path / "faq.toml").write_text(faq.split("[[faq]]")[0] + "[[faq]]" + faq.split("[[faq]]")[1],
                                       encoding="utf-8")
    assert len(store.current_faq().rules) == 1 < len(shipped.rules)
