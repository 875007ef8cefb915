"""`govbot rules ...`: try, apply and check the triage rules from the command line."""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TextIO

import click
import jieba

from bot.config import Config, load_config
from bot.resources import rules_dir as shipped_rules_dir
from bot.triage.classifier import Classifier
from bot.triage.faq import FaqMatcher
from bot.triage.rules import RuleError, load_rules

# The shipped rules (the site's config triage.rules_dir lies on top of them).
DEFAULT_RULES_DIR = shipped_rules_dir()
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


def _rules_dir(rules_dir: Path | None) -> Path | None:
    """--rules DIR as given, else the config's own rules (triage.rules_dir) over the shipped ones."""
    return rules_dir if rules_dir is not None else _config().rules_dir


def _classifier(rules_dir: Path | None) -> Classifier:
    try:
        return Classifier.from_dir(_rules_dir(rules_dir))
    except RuleError as exc:
        raise click.ClickException(str(exc)) from None


rules_option = click.option(
    "--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Rules directory (intent.toml, topics.toml, userdict.txt, faq.toml); files it lacks come from the "
         "shipped rules. Default: the config's triage.rules_dir over the shipped rules.",
)


@click.group("rules")
def rules() -> None:
    """Triage rules: classify messages by intent and topic."""
    jieba.setLogLevel(logging.WARNING)  # keep jieba's dictionary-loading chatter out of the output


@rules.command("test")
@click.argument("text")
@click.option("--subject", default=None, help="Message subject (标题), if any.")
@rules_option
def test_cmd(text: str, subject: str | None, rules_dir: Path | None) -> None:
    """Classify one TEXT and explain why."""
    click.echo(_classifier(rules_dir).classify(text, subject).explain())


@rules.command("classify")
@click.argument("in_csv", type=click.File("r", encoding="utf-8-sig"))
@click.option("-o", "--output", "out_csv", type=click.File("w", encoding="utf-8"), default="-",
              help="Output CSV (default: stdout).")
@rules_option
def classify_cmd(in_csv: TextIO, out_csv: TextIO, rules_dir: Path | None) -> None:
    """Classify IN_CSV (key, text[, subject]) into key,intent,topic,department,rules."""
    count = classify_csv(in_csv, out_csv, _classifier(rules_dir), _config().triage.department_for)
    click.echo(f"classified {count} messages", err=True)


@rules.command("check")
@rules_option
def check_cmd(rules_dir: Path | None) -> None:
    """Validate the rules directory; exit 1 naming the file and rule on an error."""
    rules_dir = _rules_dir(rules_dir)
    try:
        ruleset = load_rules(rules_dir)
        faq = FaqMatcher.from_dir(rules_dir)
    except RuleError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"ok: {len(ruleset.intent_rules)} intent, {len(ruleset.spam_rules)} spam, "
               f"{len(ruleset.topic_rules)} topic, {len(faq.rules)} FAQ rules, "
               f"{len(ruleset.userdict)} userdict words in {rules_dir or DEFAULT_RULES_DIR}")
