"""Editing a rules file from the console (规则维护): check the edited text, try a message against it,
and only then save it over the file (the RuleStore reloads it on the next message).

The edited file is checked together with the other current files, in a temporary copy of the rules
directory, so nothing the workers read changes until the whole set is valid.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.triage.classifier import Classification, Classifier
from bot.triage.faq import FaqMatch, FaqMatcher
from bot.triage.rules import RULE_FILES, RuleError, load_rules

# The files a person edits (holidays, sensitive words and typos belong to other parts).
EDITABLE = {"intent.toml": "诉求规则", "topics.toml": "主题规则", "faq.toml": "常见问题自动回复", "userdict.txt": "专用词典"}
MAX_FILE_CHARS = 500_000


@dataclass(frozen=True)
class Trial:
    classification: Classification
    faq: FaqMatch | None


def _check_name(name: str) -> str:
    if name not in EDITABLE:
        raise RuleError(name, None, "this file cannot be edited here")
    return name


def read_rule_file(rules_dir: Path, name: str) -> str:
    return (Path(rules_dir) / _check_name(name)).read_text(encoding="utf-8")


@contextmanager
def _candidate(rules_dir: Path, name: str, text: str) -> Iterator[Path]:
    """A temporary rules directory: the current files with `name` replaced by `text`."""
    if len(text) > MAX_FILE_CHARS:
        raise RuleError(name, None, f"the file is longer than {MAX_FILE_CHARS} characters")
    with tempfile.TemporaryDirectory(prefix="govbot-rules-") as tmp:
        for other in RULE_FILES:
            if (Path(rules_dir) / other).exists():
                shutil.copy(Path(rules_dir) / other, Path(tmp) / other)
        (Path(tmp) / _check_name(name)).write_text(text, encoding="utf-8")
        yield Path(tmp)


def check_rule_text(rules_dir: Path, name: str, text: str) -> None:
    """Raises RuleError (file, rule, reason) when the edited file would not load."""
    with _candidate(rules_dir, name, text) as tmp:
        load_rules(tmp)
        FaqMatcher.from_dir(tmp)


def try_rule_text(rules_dir: Path, name: str, text: str, message: str) -> Trial:
    """How `message` would be classified (and auto-answered) with the edited file."""
    with _candidate(rules_dir, name, text) as tmp:
        classification = Classifier(load_rules(tmp)).classify(message)
        return Trial(classification, FaqMatcher.from_dir(tmp).match(message, classification))


def save_rule_text(rules_dir: Path, name: str, text: str) -> None:
    """Check, then replace the file atomically (a reader sees the old or the new file, never half)."""
    check_rule_text(rules_dir, name, text)
    target = Path(rules_dir) / name
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, target)
