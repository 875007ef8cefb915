"""Chinese at the source: every error code, label, audit action and rule has Chinese text, and every
raise site names a catalogue code with the values its texts need (read from the code with ast)."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from bot.error_texts import CATALOGUE, PLATFORM_CODES, PLATFORM_FALLBACK
from bot.errors import GovbotError, NotFound, PermissionDenied, message_zh, text_zh
from bot.labels import LABELS
from bot.triage.faq import FaqMatcher
from bot.triage.names import load_names, missing_names, rule_name
from bot.triage.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for p in (ROOT / "bot").rglob("*.py") if "emulator" not in p.parts)
CJK = re.compile(r"[\u4e00-\u9fff]")
# Errors whose constructor takes (file, where, reason) rather than a code.
STRUCTURED = {"ConfigError", "ConfigError.of", "CalendarError", "RuleError", "CheckRulesError", "CheckFailed", "PlatformError",
              "TransientError", "PermanentError", "ReplyRefused", "ChecklistError",
              "ConfigurationError", "AwaitingOutcome"}
NOT_OURS = {"ValueError", "TypeError", "RuntimeError", "KeyError", "HTTPException", "Refused", "SystemExit",
            "click.ClickException", "ClickException", "click.UsageError", "click.BadParameter", "AssertionError"}


def fields(template: str) -> set[str]:
    return {name.split("!")[0].split(":")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            yield node.exc


def name_of(func: ast.expr) -> str:
    return ast.unparse(func)


def test_every_entry_has_chinese_and_english():
    for code, (zh, en) in CATALOGUE.items():
        assert CJK.search(zh) or code.startswith("platform.name") and zh, code
        assert en.strip(), code


def test_every_raise_site_names_a_catalogue_code_with_its_values():
    problems = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in calls(tree):
            cls = name_of(call.func)
            # self._mapped(...) and the like build a PlatformError from the platform's answer.
            if cls in NOT_OURS or cls in STRUCTURED or cls.startswith("self.") or not call.args:
                continue
            first = call.args[0]
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                problems.append(f"{where}: {cls} raised with prose, not a catalogue code")
                continue
            code = first.value
            if code not in CATALOGUE:
                problems.append(f"{where}: {code!r} is not in the catalogue")
                continue
            given = {k.arg for k in call.keywords}
            needed = fields(CATALOGUE[code][0]) | fields(CATALOGUE[code][1])
            if needed - given:
                problems.append(f"{where}: {code} needs {sorted(needed - given)}")
    assert not problems, "\n".join(problems)


def test_every_check_problem_code_has_a_text():
    codes = set()
    for path in SOURCES:
        for call in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(call, ast.Call) and name_of(call.func) in ("problem", "_at") and call.args:
                if isinstance(call.args[0], ast.Constant):
                    codes.add(call.args[0].value)
                codes.update(k.value.value for k in call.keywords if k.arg == "text_code")
    assert codes, "no check problems found: the test reads the wrong files"
    assert not {c for c in codes if f"check.{c}" not in CATALOGUE and c not in CATALOGUE}


def test_messages_read_in_chinese_and_unknown_exceptions_say_nothing_technical():
    e = PermissionDenied("post.self_review", user="xuanchuan", post_id=3)
    assert e.code == "post.self_review" and e.message_zh == "xuanchuan 撰写或修改过稿件 3，不能审核自己的稿件"
    assert "cannot review" in str(e)
    assert message_zh(KeyError("secret")) == text_zh("internal") and "secret" not in message_zh(KeyError("secret"))
    assert NotFound("ticket.not_found", ticket_id=5).message_zh == "工单 #5 不存在"
    assert GovbotError().code == "error" and CJK.search(GovbotError().message_zh)


def test_platform_errors_are_explained_with_what_to_do_and_keep_the_raw_code():
    from bot.connectors.base import PermanentError

    e = PermanentError("weibo", 20021, "Content is illegal!")
    assert e.code == 20021 and e.error_code == "platform.error"
    assert e.message_zh.startswith("新浪微博：内容含有") and "20021" in e.message_zh and "修改" in e.message_zh
    for meaning, todo in [*PLATFORM_CODES.values(), PLATFORM_FALLBACK]:
        assert CJK.search(meaning) and CJK.search(todo)


def test_every_label_is_chinese():
    for kind, table in LABELS.items():
        for code, text in table.items():
            assert CJK.search(text), f"{kind}.{code}: {text!r}"


def _action_strings() -> set[str]:
    """Every audit action the code can record: keyword arguments, assignments, tables of actions."""
    found: set[str] = set()
    dotted = re.compile(r"^[a-z_]+\.[a-z_]+$")
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            values: list[ast.expr] = []
            if isinstance(node, ast.keyword) and node.arg == "action":
                values = [node.value]
            elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and ("action" in t.id.lower()) for t in node.targets):
                values = [node.value]
            elif isinstance(node, ast.Call) and name_of(node.func) == "_audit" and len(node.args) >= 3:
                values = [node.args[2]]
            elif isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "action"
                                                    for k in node.keys):
                values = [v for k, v in zip(node.keys, node.values, strict=True)
                          if isinstance(k, ast.Constant) and k.value == "action"]
            for value in values:
                for sub in ast.walk(value):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and dotted.match(sub.value):
                        found.add(sub.value)
    return found


def test_every_audit_action_in_the_code_has_a_label():
    actions = _action_strings()
    assert {"post.created", "ticket.opened", "reply.sent", "publication.published"} <= actions
    # The scheduler records post.<status> for how a post ended.
    actions |= {f"post.{s}" for s in ("published", "partially_failed", "failed")}
    assert not sorted(a for a in actions if a not in LABELS["action"])


@pytest.fixture(scope="module")
def rule_ids() -> list[str]:
    rules = load_rules(ROOT / "rules")
    faq = FaqMatcher.from_dir(ROOT / "rules")
    return [r.id for r in (*rules.intent_rules, *rules.spam_rules, *rules.topic_rules)] + [r.id for r in faq.rules]


def test_every_rule_has_a_chinese_name(rule_ids):
    names = load_names(ROOT / "rules")
    lacking, stale = missing_names(rule_ids, names)
    assert not lacking and not stale
    assert all(CJK.search(n) for n in names.values())
    assert rule_name("faq.social_security_card", names) == "社保卡办理"
    assert rule_name("complaint.brand_new", names) == "投诉（complaint.brand_new）"


def test_every_status_role_and_channel_the_code_knows_has_a_label():
    from bot.inbound import autoreply, store
    from bot.models import ROLES
    from bot.outbox import sending
    from bot.publishing.service import POST_STATUSES, PUBLICATION_STATES
    from bot.tickets import answering, notifications, service
    from bot.triage.rules import INTENTS

    tables = {"post": POST_STATUSES, "publication": PUBLICATION_STATES, "ticket": service.STATES,
              "close_reason": service.CLOSE_REASONS, "how": answering.OFFLINE_HOW, "inbox": answering.INBOX_STATES,
              "role": ROLES, "intent": INTENTS, "kind": store.KINDS, "notice": notifications.KINDS,
              "delivery": sending.CHANNELS,
              "channel": {*answering.CHANNELS.values(), *autoreply.COMMENT_CHANNELS.values(), autoreply.PASSIVE_CHANNEL}}
    missing = [f"{kind}.{code}" for kind, codes in tables.items() for code in codes if code not in LABELS[kind]]
    assert not missing


def test_every_code_the_code_names_is_in_the_catalogue():
    """text_zh("…"), text_en("…"), ChannelStatus(…, "channel.…") and option codes: a typo would show a raw code."""
    named: dict[str, str] = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and name_of(node.func) in ("text_zh", "text_en") and node.args \
                    and isinstance(node.args[0], ast.Constant):
                named[node.args[0].value] = f"{path.relative_to(ROOT)}:{node.lineno}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"(channel|option|note|setup|cli)\.[a-z_]+", node.value):
                named[node.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    assert len(named) > 30
    assert not {code: where for code, where in named.items() if code not in CATALOGUE}


def test_a_bad_names_file_is_refused_at_load_and_never_breaks_a_page(tmp_path):
    from bot.triage.names import names_for
    from bot.triage.rules import RuleError

    (tmp_path / "names.toml").write_text('[names]\n"faq.x" = ""\n', encoding="utf-8")
    with pytest.raises(RuleError, match="faq.x"):
        load_names(tmp_path)
    assert names_for(tmp_path) == {}
    (tmp_path / "names.toml").write_text('[names]\n"faq.x" = "办事指南"\n', encoding="utf-8")
    assert names_for(tmp_path) == {"faq.x": "办事指南"}
