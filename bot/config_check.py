"""`govbot check-config`: everything a start needs, checked at once, and every problem listed.

The config file (every invalid key, not only the first), the data directory, the rules directory and
its files, the holidays file, the database (reachable, migrated) and the accounts (credentials for a
real platform, present in the database). Each check is independent, so one problem does not hide
the next; a check that needs an earlier one (the database needs a valid config) is skipped with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bot.config import Config, load_config
from bot.errors import ConfigError, GovbotError, text_zh


@dataclass(frozen=True)
class Finding:
    level: str  # "error" stops a start; "warning" is worth fixing
    message: str  # Chinese, for the person running the check


def check_installation(config_path: str | None) -> tuple[Config | None, list[Finding]]:
    findings: list[Finding] = []
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return None, [Finding("error", p.message_zh) for p in exc.problems]
    for check in (_data_dir, _rules, _holidays, _database):
        try:
            findings += check(config)
        except GovbotError as exc:
            findings.append(Finding("error", exc.message_zh))
    return config, findings


def _data_dir(config: Config) -> list[Finding]:
    path = config.path(config.data_dir)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK):
        return [Finding("error", text_zh("setup.data_dir", path=str(path)))]
    return []


def _rules(config: Config) -> list[Finding]:
    from bot.textcheck import load_check_rules
    from bot.triage.faq import FaqMatcher
    from bot.triage.names import load_names, missing_names
    from bot.triage.rules import load_rules

    rules_dir = config.rules_dir  # None: the shipped rules only
    if rules_dir is not None and not rules_dir.is_dir():
        return [Finding("error", text_zh("setup.rules_dir", path=str(rules_dir)))]
    findings = []
    loaded = {}
    for name, load in (("triage", load_rules), ("faq", FaqMatcher.from_dir), ("checks", load_check_rules),
                       ("names", load_names)):
        try:
            loaded[name] = load(rules_dir)
        except GovbotError as exc:
            findings.append(Finding("error", exc.message_zh))
    if {"triage", "faq", "names"} <= set(loaded):
        rs = loaded["triage"]
        ids = [r.id for r in (*rs.intent_rules, *rs.spam_rules, *rs.topic_rules, *loaded["faq"].rules)]
        lacking, _ = missing_names(ids, loaded["names"])
        if lacking:
            findings.append(Finding("warning", text_zh("setup.rule_names", count=len(lacking),
                                                       rules="、".join(lacking[:5]))))
    return findings


def _holidays(config: Config) -> list[Finding]:
    from bot.tickets.calendar import load_holidays_file

    load_holidays_file(config.holidays_path)
    return []


def _database(config: Config) -> list[Finding]:
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import Session, select

    from bot import db
    from bot.models import Account

    try:
        engine = db.make_engine(config.database_url)
        current, head = db.current_revision(engine), db.head_revision(config.database_url)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        return [Finding("error", text_zh("cli.database_unreachable", url=db._redact(config.database_url),
                                         reason=reason))]
    if current != head:
        return [Finding("error", text_zh("database.not_ready", url=db._redact(config.database_url),
                                         current=current or "none (empty)", head=head))]
    with Session(engine) as session:
        stored = {a.name: a for a in session.exec(select(Account))}
    engine.dispose()
    findings = []
    for account in config.accounts:
        if account.name not in stored:
            findings.append(Finding("error", text_zh("setup.account_not_in_db", name=account.name)))
    for name in sorted(set(stored) - {a.name for a in config.accounts}):
        findings.append(Finding("warning", text_zh("setup.account_not_configured", name=name)))
    return findings


def summary(config: Config) -> str:
    from bot.db import _redact

    mode = "真实平台" if config.uses_real_platforms else f"平台模拟器 {config.emulator_url}"
    return text_zh("setup.ok", source=config.source, mode=mode, url=_redact(config.database_url),
                   accounts=len(config.accounts))
