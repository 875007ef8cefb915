"""`govbot rules ...`: try, apply and check the triage rules from the command line."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from bot.config import Config, load_config
from bot.triage.faq import FaqMatcher
from bot.triage.rules import RuleError, load_rules

if TYPE_CHECKING:
    from bot.triage.classifier import Classifier

DEFAULT_RULES_DIR = Path(__file__).parents[2] / "rules"
OUTPUT_COLUMNS = ("key", "intent", "topic", "department", "rules")


def classify_rows(rows: Iterable[dict], classifier: Classifier,
                  route: Callable[[str | None], str]) -> Iterator[dict]:
    """Rows with key, text and optional subject -> output rows (see OUTPUT_COLUMNS), lazily.

    `route` maps a topic (or None) to its department, as the service routes messages."""
    for row in rows:
        c = classifier.classify(row["text"] or "", row.get("subject") or None)
        yield {
            "key": row["key"],
            "intent": c.intent,
            "topic": c.topic or "",
            "department": route(c.topic),
            "rules": c.rules_summary(),
        }


def classify_csv(src: TextIO, dst: TextIO, classifier: Classifier,
                 route: Callable[[str | None], str] | None = None) -> int:
    """Classify a CSV (columns key, text, optional subject) into dst, one row at a time. Returns the row count."""
    csv.field_size_limit(sys.maxsize)  # long letters (留言) can exceed the default 128 KiB field limit
    reader = csv.DictReader(src)
    missing = {"key", "text"} - set(reader.fieldnames or ())
    if missing:
        raise click.ClickException(f"input CSV lacks column(s) {', '.join(sorted(missing))}; "
                                   f"it has: {', '.join(reader.fieldnames or ()) or 'no header'}")
    writer = csv.DictWriter(dst, fieldnames=OUTPUT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for out in classify_rows(reader, classifier, route or load_config().triage.department_for):
        writer.writerow(out)
        count += 1
    return count


def _config() -> Config:
    """The config of `govbot --config ...` when run under it, else the default one."""
    from bot.cli import CliState

    state = click.get_current_context().find_object(CliState)
    return state.config if state is not None else load_config()


def _classifier(rules_dir: Path) -> Classifier:
    from bot.triage.classifier import Classifier  # jieba: loaded only by the commands that classify
    from bot.triage.jieba_cache import use_cache_dir

    config = _config()
    use_cache_dir(config.path(config.data_dir))
    try:
        return Classifier.from_dir(rules_dir)
    except RuleError as exc:
        raise click.ClickException(str(exc)) from None


rules_option = click.option(
    "--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_RULES_DIR,
    show_default=True, help="Rules directory (intent.toml, topics.toml, userdict.txt, faq.toml).",
)


@click.group("rules")
def rules() -> None:
    """Triage rules: classify messages by intent and topic."""


@rules.command("test")
@click.argument("text")
@click.option("--subject", default=None, help="Message subject (标题), if any.")
@rules_option
def test_cmd(text: str, subject: str | None, rules_dir: Path) -> None:
    """Classify one TEXT and explain why."""
    click.echo(_classifier(rules_dir).classify(text, subject).explain())


@rules.command("classify")
@click.argument("in_csv", type=click.File("r", encoding="utf-8-sig"))
@click.option("-o", "--output", "out_csv", type=click.File("w", encoding="utf-8"), default="-",
              help="Output CSV (default: stdout).")
@rules_option
def classify_cmd(in_csv: TextIO, out_csv: TextIO, rules_dir: Path) -> None:
    """Classify IN_CSV (key, text[, subject]) into key,intent,topic,department,rules."""
    count = classify_csv(in_csv, out_csv, _classifier(rules_dir), _config().triage.department_for)
    click.echo(f"classified {count} messages", err=True)


@rules.command("check")
@rules_option
def check_cmd(rules_dir: Path) -> None:
    """Validate the rules directory; exit 1 naming the file and rule on an error."""
    try:
        ruleset = load_rules(rules_dir)
        faq = FaqMatcher.from_dir(rules_dir)
    except RuleError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"ok: {len(ruleset.intent_rules)} intent, {len(ruleset.spam_rules)} spam, "
               f"{len(ruleset.topic_rules)} topic, {len(faq.rules)} FAQ rules, "
               f"{len(ruleset.userdict)} userdict words in {rules_dir}")
