"""How a message is shown to a responder: the sender without raw ids, and the classification in words."""

from __future__ import annotations

import hashlib
import hmac

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
    return "".join(f"“{w}”" for w in words[:most])


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
        by_kind.setdefault(kind, [])
        by_kind[kind] += [w for w in words if w not in by_kind[kind]]
    lines = []
    if spam:
        lines.append("判为垃圾信息" + (f"：含有{_quoted(by_kind.get('spam', []))}等内容" if by_kind.get("spam") else "") + "。")
    if intent:
        words = by_kind.get(intent, [])
        reason = f"，因为留言中有{_quoted(words)}等词" if words else "，没有明显的关键词，按默认规则归类"
        lines.append(f"诉求判为“{label(intent, 'intent')}”{reason}。")
    words = by_kind.get("topic", [])
    if topic:
        lines.append(f"主题判为“{topic}”" + (f"，依据{_quoted(words)}等词。" if words else "。"))
    else:
        lines.append("没有明确主题，交综合受理。")
    sure = certainty(confidence)
    if sure:
        lines.append(sure + "。")
    return lines
