"""How a message is shown to a responder: the sender without raw ids, and the classification in words."""

from __future__ import annotations

import hashlib
import hmac
import re

from bot.labels import label
from bot.models import Message


def sender_alias(message: Message, secret: str) -> str:
    """The sender's nickname where the platform gives one; else a short alias, stable per account and
    sender, that never shows the openid (the same citizen is always 网友 NNNNN on that account)."""
    if message.sender_name:
        return message.sender_name
    if not message.sender_id:
        return "匿名网友"
    digest = hmac.new(secret.encode(), f"{message.account_id}:{message.sender_id}".encode(), hashlib.sha256)
    return f"网友 {int.from_bytes(digest.digest()[:4], 'big') % 100000:05d}"


def _rules(summary: str) -> list[tuple[str, list[str]]]:
    out = []
    for part in (summary or "").split(";"):
        if part:
            rule, _, words = part.partition(":")
            out.append((rule, [w for w in words.split("|") if w]))
    return out


def _quoted(words: list[str], most: int = 4) -> str:
    """The first few matched words in quotes; punctuation (a rule may count "？") is not a word to show."""
    return "".join(f"“{w}”" for w in [w for w in words if re.search(r"\w", w)][:most])


def certainty(confidence: float | None) -> str:
    if confidence is None:
        return ""
    if confidence >= 0.8:
        return "判断把握较大"
    if confidence >= 0.5:
        return "判断有一定把握，建议核对"
    return "判断把握不大，请人工核对"


def explain(*, intent: str | None, topic: str | None, confidence: float | None, rules: str,
            spam: bool = False) -> list[str]:
    """The classification as sentences a responder reads (no rule ids, no scores)."""
    by_kind: dict[str, list[str]] = {}
    for rule_id, words in _rules(rules):
        kind = rule_id.split(".", 1)[0]
        by_kind[kind] = list(dict.fromkeys([*by_kind.get(kind, []), *words]))
    lines = []
    if spam:
        quoted = _quoted(by_kind.get("spam", []))
        lines.append("判为垃圾信息" + (f"：含有{quoted}等内容" if quoted else "") + "。")
    if intent:
        quoted = _quoted(by_kind.get(intent, []))
        reason = f"，因为留言中有{quoted}等词" if quoted else "，依据留言的句式和语气"
        lines.append(f"诉求判为“{label(intent, 'intent')}”{reason}。")
    quoted = _quoted(by_kind.get("topic", []))
    if topic:
        lines.append(f"主题判为“{topic}”" + (f"，依据{quoted}等词。" if quoted else "。"))
    else:
        lines.append("没有明确主题，交综合受理。")
    sure = certainty(confidence)
    if sure:
        lines.append(sure + "。")
    return lines
