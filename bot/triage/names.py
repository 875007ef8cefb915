"""Chinese names of the triage and FAQ rules (rules/names.toml), shown to people instead of rule ids.

A file of its own, so rule files and their names change without conflict; a rule without a name
shows as its intent or topic with the id, and `govbot rules check` lists what is missing.
"""

from __future__ import annotations

import threading
import tomllib
from pathlib import Path

from loguru import logger

from bot.labels import label
from bot.reloading import Reloading
from bot.resources import rule_file
from bot.triage.rules import RuleError

NAMES_FILE = "names.toml"

_cache: dict[Path, Reloading[dict[str, str]]] = {}
_lock = threading.Lock()


def load_names(rules_dir: Path | None) -> dict[str, str]:
    """rule id -> Chinese name (the site's names.toml, else the shipped one); a bad file raises RuleError
    naming the key, a missing file gives no names."""
    path = rule_file(rules_dir, NAMES_FILE)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise RuleError(path, None, f"not UTF-8: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(path, None, f"not valid TOML: {exc}") from None
    unknown = set(data) - {"names"}
    if unknown:
        raise RuleError(path, None, f"unknown key(s) {', '.join(sorted(unknown))}; allowed: names")
    names = data.get("names", {})
    if not isinstance(names, dict):
        raise RuleError(path, None, "[names] must be a table of \"rule id\" = \"名称\"")
    for rule_id, name in names.items():
        if not isinstance(name, str) or not name.strip():
            raise RuleError(path, rule_id, "the name must be a non-empty string")
    return {k: v.strip() for k, v in names.items()}


def _names_or_none(rules_dir: Path | None) -> dict[str, str]:
    try:
        return load_names(rules_dir)
    except RuleError as exc:
        logger.error("rule names not loaded: {}", exc)
        return {}


def names_for(rules_dir: Path | None) -> dict[str, str]:
    """The names in force for a site rules directory (None: the shipped ones), read again only when the file
    changes (bot.reloading). A bad file is logged and gives no names (pages show the ids with their intent)
    until it is fixed: it never breaks a page."""
    path = rule_file(rules_dir, NAMES_FILE)
    with _lock:
        names = _cache.get(path)
        if names is None:
            names = _cache[path] = Reloading(lambda: [path], lambda: _names_or_none(rules_dir),
                                             what=f"rule names {path}", errors=())
    return names.get()


def rule_name(rule_id: str | None, names: dict[str, str]) -> str:
    """The rule's Chinese name; without one, its intent ("投诉") and the id, so nothing shows as a bare id."""
    if not rule_id:
        return ""
    if rule_id in names:
        return names[rule_id]
    return f"{label(rule_id.split('.', 1)[0], 'rule_kind')}（{rule_id}）"


def missing_names(rule_ids: list[str], names: dict[str, str]) -> tuple[list[str], list[str]]:
    """(rules without a name, names of rules that do not exist)."""
    ids = set(rule_ids)
    return sorted(ids - set(names)), sorted(set(names) - ids)
