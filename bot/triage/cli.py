"""`govbot rules ...`: try, apply and check the triage rules from the command line."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from bot.cli import CliState, handle_errors
from bot.cli_io import open_output, progress, read_text
from bot.config import Config, load_config
from bot.errors import GovbotError
from bot.triage.faq import FaqMatcher
from bot.triage.rules import load_rules

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
                 route: Callable[[str | None], str] | None = None,
                 progress: Callable[[Iterable[dict]], Iterable[dict]] | None = None) -> int:
    """Classify a CSV (columns key, text, optional subject) into dst, one row at a time. Returns the row count.

    `progress` wraps the input rows (a progress bar)."""
    csv.field_size_limit(sys.maxsize)  # long letters (留言) can exceed the default 128 KiB field limit
    reader = csv.DictReader(src)
    missing = {"key", "text"} - set(reader.fieldnames or ())
    if missing:
        raise GovbotError("cli.csv_columns", missing=", ".join(sorted(missing)),
                          columns=", ".join(reader.fieldnames or ()) or "—")
    writer = csv.DictWriter(dst, fieldnames=OUTPUT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    rows = reader if progress is None else progress(reader)
    for out in classify_rows(rows, classifier, route or load_config().triage.department_for):
        writer.writerow(out)
        count += 1
    return count


def _config() -> Config:
    """The config of `govbot --config ...` when run under it, else the default one."""
    state = click.get_current_context().find_object(CliState)
    return state.config if state is not None else load_config()


def _classifier(rules_dir: Path) -> Classifier:
    from bot.triage.classifier import Classifier  # jieba: loaded only by the commands that classify
    from bot.triage.jieba_cache import use_cache_dir

    config = _config()
    use_cache_dir(config.path(config.data_dir))
    return Classifier.from_dir(rules_dir)


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
@handle_errors
def test_cmd(text: str, subject: str | None, rules_dir: Path) -> None:
    """Classify one TEXT and explain why."""
    click.echo(_classifier(rules_dir).classify(text, subject).explain())


@rules.command("classify")
@click.argument("in_csv", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("-o", "--output", "out_path", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              default="-", help="Output CSV (default: stdout).")
@rules_option
@handle_errors
def classify_cmd(in_csv: Path, out_path: Path, rules_dir: Path) -> None:
    """Classify IN_CSV (key, text[, subject]; UTF-8 or GBK) into key,intent,topic,department,rules."""
    text = read_text(in_csv)
    csv.field_size_limit(sys.maxsize)
    total = max(0, sum(1 for _ in csv.reader(io.StringIO(text))) - 1)
    classifier = _classifier(rules_dir)
    with open_output(out_path) as out, progress([], length=total, label="classifying") as bar:
        def advance(rows: Iterable[dict]) -> Iterator[dict]:
            for row in rows:
                yield row
                bar.update(1)

        count = classify_csv(io.StringIO(text), out, classifier, _config().triage.department_for, advance)
    click.echo(f"classified {count} messages", err=True)


@rules.command("check")
@rules_option
@handle_errors
def check_cmd(rules_dir: Path) -> None:
    """Validate the rules directory; exit 1 naming the file and rule on an error."""
    from bot.triage.names import load_names, missing_names

    ruleset = load_rules(rules_dir)
    faq = FaqMatcher.from_dir(rules_dir)
    rule_ids = [r.id for r in (*ruleset.intent_rules, *ruleset.spam_rules, *ruleset.topic_rules, *faq.rules)]
    lacking, stale = missing_names(rule_ids, load_names(rules_dir))
    for rule_id in lacking:
        click.echo(f"warning: rule {rule_id} has no Chinese name in names.toml", err=True)
    for rule_id in stale:
        click.echo(f"warning: names.toml names {rule_id}, which no rule file has", err=True)
    click.echo(f"ok: {len(ruleset.intent_rules)} intent, {len(ruleset.spam_rules)} spam, "
               f"{len(ruleset.topic_rules)} topic, {len(faq.rules)} FAQ rules, "
               f"{len(ruleset.userdict)} userdict words in {rules_dir}")
