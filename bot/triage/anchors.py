"""Anchor characters of a rule pattern: a set of characters one of which every match contains.

A pattern whose anchors are all absent from a text cannot match it, so the scan skips it without
running the regular expression: on a long letter most of the intent patterns are skipped this way,
and the result is exactly the same. The set is read from the pattern's parse tree (the `re` module's
own parser) and only from what every match must contain: a literal character, a class of literal
characters, an alternation whose every branch has anchors, a group, a repeat of at least once.
Letters that have case are never anchors (the patterns are compiled IGNORECASE); whatever is not
understood gives no anchors, and the pattern is always run.
"""

from __future__ import annotations

import re
from typing import Any

try:
    from re import _parser as _sre_parse  # Python 3.11+
except ImportError:  # pragma: no cover - older layouts
    _sre_parse = None

MAX_RANGE = 64  # a wider class ([\u4e00-\u9fff]) is no useful anchor


def _uncased(ch: str) -> bool:
    return ch.lower() == ch == ch.upper()


def _sequence(items: Any) -> frozenset[str] | None:
    """The smallest anchor set among the items every match goes through."""
    best = None
    for op, av in items:
        found = _item(str(op), av)
        if found is not None and (best is None or len(found) < len(best)):
            best = found
    return best


def _chars(items: Any) -> frozenset[str] | None:
    chars: set[str] = set()
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            chars.add(chr(av))
        elif name == "RANGE" and av[1] - av[0] <= MAX_RANGE:
            chars.update(chr(c) for c in range(av[0], av[1] + 1))
        else:  # NEGATE, CATEGORY (\w, \s ...), a wide range
            return None
    return frozenset(chars) if chars and all(_uncased(c) for c in chars) else None


def _item(name: str, av: Any) -> frozenset[str] | None:
    if name == "LITERAL":
        ch = chr(av)
        return frozenset(ch) if _uncased(ch) else None
    if name == "IN":
        return _chars(av)
    if name == "SUBPATTERN":
        return _sequence(av[-1])
    if name == "BRANCH":
        union: set[str] = set()
        for branch in av[1]:
            found = _sequence(branch)
            if found is None:
                return None
            union |= found
        return frozenset(union)
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        low, _high, inner = av
        return _sequence(inner) if low >= 1 else None
    return None  # ANY, AT, GROUPREF, lookarounds, ATOMIC_GROUP ...: no anchor of their own


def anchors(pattern: re.Pattern) -> frozenset[str] | None:
    """Characters one of which every match of `pattern` contains; None when no such set is known."""
    if _sre_parse is None:
        return None
    try:
        return _sequence(_sre_parse.parse(pattern.pattern, pattern.flags))
    except Exception:  # an unexpected tree: run the pattern always
        return None
