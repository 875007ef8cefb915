"""`govbot rules ...`: try, apply and check the triage rules from the command line."""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from bot.cli import CliState, handle_errors
from bot.cli_io import open_output, progress, read_text
from bot.config import Config, load_config
from bot.errors import GovbotError
from bot.resources import rule_file
from bot.resources import rules_dir as shipped_rules_dir
from bot.triage.faq import FaqMatcher
from bot.triage.learn import KINDS, Labelled, evaluate, learn_all, render_toml, token_set
from bot.triage.rules import (
    INTENT_FILE,
    LEARNED_FILE,
    TOPICS_FILE,
    USERDICT_FILE,
    load_rules,
    read_toml,
)

if TYPE_CHECKING:
    from bot.triage.classifier import Classifier

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


def _rules_dir(rules_dir: Path | None) -> Path | None:
    """--rules DIR as given, else the config's own rules (triage.rules_dir) over the shipped ones."""
    return rules_dir if rules_dir is not None else _config().rules_dir


def _classifier(rules_dir: Path | None) -> Classifier:
    from bot.triage.classifier import Classifier  # jieba: loaded only by the commands that classify
    from bot.triage.jieba_cache import use_cache_dir

    config = _config()
    use_cache_dir(config.path(config.data_dir))
    return Classifier.from_dir(_rules_dir(rules_dir))


rules_option = click.option(
    "--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Rules directory (intent.toml, topics.toml, userdict.txt, faq.toml); files it lacks come from the "
         "shipped rules. Default: the config's triage.rules_dir over the shipped rules.",
)


@click.group("rules")
def rules() -> None:
    """Triage rules: classify messages by intent and topic."""


@rules.command("test")
@click.argument("text")
@click.option("--subject", default=None, help="Message subject (标题), if any.")
@rules_option
@handle_errors
def test_cmd(text: str, subject: str | None, rules_dir: Path | None) -> None:
    """Classify one TEXT and explain why."""
    click.echo(_classifier(rules_dir).classify(text, subject).explain())


@rules.command("classify")
@click.argument("in_csv", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("-o", "--output", "out_path", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              default="-", help="Output CSV (default: stdout).")
@rules_option
@handle_errors
def classify_cmd(in_csv: Path, out_path: Path, rules_dir: Path | None) -> None:
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
def check_cmd(rules_dir: Path | None) -> None:
    """Validate the rules directory; exit 1 naming the file and rule on an error."""
    from bot.triage.names import load_names, missing_names

    rules_dir = _rules_dir(rules_dir)
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
               f"{len(ruleset.userdict)} userdict words, "
               f"{sum(len(r.words) for r in ruleset.learned_rules)} learned words in {rules_dir or DEFAULT_RULES_DIR}")


def read_labelled(paths: Iterable[Path]) -> list[Labelled]:
    """Labelled messages from CSV files with key, text[, subject], intent and/or topic.

    Rows of several files with the same key are one message: a file of key,intent alone adds
    intent labels to the messages of another file. An empty label or "none" means not labelled."""
    csv.field_size_limit(sys.maxsize)
    merged: dict[str, dict] = {}
    for path in paths:
        reader = csv.DictReader(io.StringIO(read_text(path)))  # UTF-8, UTF-8 with BOM or GBK
        columns = set(reader.fieldnames or ())
        if "key" not in columns or not columns & set(KINDS):
            raise GovbotError("learn.csv_columns", file=str(path), columns=", ".join(sorted(columns)) or "—")
        for line, row in enumerate(reader, 2):
            entry = merged.setdefault(row["key"], {})
            for column in ("text", "subject"):
                if row.get(column):
                    entry[column] = row[column]
            for kind, labels in KINDS.items():
                value = (row.get(kind) or "").strip()
                if value and value != "none":
                    if value not in labels:
                        raise GovbotError("learn.unknown_label", file=str(path), line=line, kind=kind,
                                          kind_zh={"intent": "诉求类型", "topic": "主题"}.get(kind, kind),
                                          value=value, known=", ".join(labels))
                    entry[kind] = value
    missing = [key for key, e in merged.items() if "text" not in e]
    if missing:
        raise GovbotError("learn.no_text", count=len(missing), example=missing[0])
    return [Labelled(e["text"], e.get("intent"), e.get("topic"), e.get("subject")) for e in merged.values()]


def _stored_corrections() -> list[Labelled]:
    from bot.cli import CliState
    from bot.context import Context
    from bot.triage.corrections import corrected_messages

    state = click.get_current_context().find_object(CliState)
    ctx = state.ctx if state is not None else Context.open(load_config())
    with ctx.session() as session:
        return corrected_messages(session=session)


def _held_out(sample: Labelled, n: int) -> bool:
    """One message in 5, chosen by its text so a rerun holds out the same ones."""
    return zlib.crc32(f"{sample.subject or ''}\n{sample.text}".encode()) % 5 == n


@rules.command("learn")
@click.argument("labelled", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--corrections", is_flag=True, help="Also learn from the corrections responders made (纠正分类).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: learned.toml in the rules directory).")
@click.option("--dry-run", is_flag=True, help="Report the held-out score only; write nothing.")
@rules_option
@handle_errors
def learn_cmd(labelled: tuple[Path, ...], corrections: bool, output: Path | None, dry_run: bool,
              rules_dir: Path | None) -> None:
    """Learn weighted keywords per intent and topic from LABELLED CSVs (key, text[, subject], intent, topic).

    Reports the score on a held-out fifth of the messages (learned on the other four fifths),
    against the hand rules alone, then learns from all of them and writes the rules file."""
    from bot.triage.classifier import Classifier  # jieba: loaded only by the commands that classify

    samples = read_labelled(labelled)
    if corrections:
        samples += _stored_corrections()
    if not samples:
        raise GovbotError("learn.nothing")
    rules_dir = _rules_dir(rules_dir)
    # Written into the site's rules directory (or, from a checkout, the shipped rules/): never into an installed package.
    target = output or (rules_dir or DEFAULT_RULES_DIR) / LEARNED_FILE
    existing = rule_file(rules_dir, LEARNED_FILE)
    # Topic weights are fitted against the hand rules at factor 1; a factor set by hand is kept.
    factors = read_toml(existing)["settings"] if existing.exists() else {"intent_factor": 0.02, "topic_factor": 1}
    hand = _classifier(rules_dir)
    hand = Classifier(dataclasses.replace(hand.ruleset, learned_rules=()))
    tokens = [(token_set(f"{s.subject or ''}\n{s.text}", hand.tokenizer), s) for s in samples]
    test = [s for s in samples if _held_out(s, 0)]
    proposal = learn_all([(t, s) for t, s in tokens if not _held_out(s, 0)], hand)
    text = render_toml(proposal, source="held-out check", **factors)
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp)
        for name in (INTENT_FILE, TOPICS_FILE, USERDICT_FILE):
            (trial / name).write_bytes(rule_file(rules_dir, name).read_bytes())
        (trial / LEARNED_FILE).write_text(text, encoding="utf-8")
        with_learned = evaluate(_classifier(trial), test)
    hand_only = evaluate(hand, test)
    click.echo(f"held out {len(test)} of {len(samples)} messages "
               f"({with_learned['intent_messages']} with intent, {with_learned['topic_messages']} with topic):")
    for key in ("intent_macro_f1", "topic_macro_f1"):
        click.echo(f"  {key}: hand rules {hand_only[key]:.3f}, with the learned words {with_learned[key]:.3f}")
    if dry_run:
        return
    final = learn_all(tokens, hand)
    source = f"{len(samples)} messages" + (", with the stored corrections" if corrections else "")
    target.write_text(render_toml(final, source=source, **factors), encoding="utf-8")
    counts = ", ".join(f"{kind} {sum(len(w) for w in per.values())}" for kind, per in final.items())
    click.echo(f"wrote {target} ({counts} words); check it with `govbot rules check`")
