"""Anchor strings of a rule pattern: a set of strings one of which every match contains.

A pattern none of whose anchors occurs in a text cannot match it, so the scan skips it without
running the regular expression. One automaton pass over the text finds the anchors present, and on
a long letter most of the intent patterns are skipped this way; the result is exactly the same.

The set is read from the pattern's parse tree (the `re` module's own parser) and only from what
every match must contain. Inside a sequence, neighbouring parts whose matches form a small finite
set of strings (literals, classes of literal characters, alternations and optional parts of such)
combine into the set of their concatenations: "(?:没|无)有?人" gives 没人, 无人, 没有人, 无有人. A
repeat of at least once, or an alternation whose every branch has anchors, gives the anchors of its
parts. Of all the sets a pattern yields, the one of the longest strings is kept (the rarest in a
text). The anchors are for the text as the classifier scans it, normalized (bot.triage.rules.normalize:
half-width, lower case), with the patterns compiled IGNORECASE: an ASCII letter stands in lower case,
and other letters with case are never anchors. Whatever is not understood gives no anchors, and the
pattern is always run.
"""

from __future__ import annotations

import re
from typing import Any

try:
    from re import _parser as _sre_parse  # Python 3.11+
except ImportError:  # pragma: no cover - older layouts
    _sre_parse = None

MAX_RANGE = 64  # a wider class ([\u4e00-\u9fff]) is no useful anchor
MAX_STRINGS = 256  # a concatenation with more strings than this is cut where it would grow past it

# (exact, anchors, ends) of a part of a pattern: `exact` is the finite set of strings its matches
# are (None when not finite or too large), `anchors` a set one of which each of its matches
# contains, `ends` (a repeat of at least once) the strings each of its matches starts with and ends with.
_Found = tuple[frozenset[str] | None, frozenset[str] | None, frozenset[str] | None]
_NOTHING: _Found = (None, None, None)


def _anchor(ch: str) -> str | None:
    """The character as it stands in a normalized (lower-case) text, for a pattern compiled
    IGNORECASE: a character without case; an ASCII letter in lower case, except i and s (which
    IGNORECASE also matches with ı and ſ, both lower case already); None for any other letter."""
    if ch.lower() == ch == ch.upper():
        return ch
    if ch.isascii() and ch.isalpha() and ch.lower() not in "is":
        return ch.lower()
    return None


def _better(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """The rarer of two anchor sets: its shortest string longer; then fewer strings."""
    if not a or not all(a):
        return b if b and all(b) else None
    if not b or not all(b):
        return a
    key_a, key_b = (min(map(len, a)), -len(a)), (min(map(len, b)), -len(b))
    return a if key_a >= key_b else b


def _product(left: frozenset[str], right: frozenset[str]) -> frozenset[str] | None:
    if len(left) * len(right) > MAX_STRINGS:
        return None
    return frozenset(x + y for x in left for y in right)


def _sequence(items: Any) -> _Found:
    """Every match of a sequence is the concatenation of its parts' matches."""
    best: frozenset[str] | None = None
    run: frozenset[str] | None = frozenset([""])  # the concatenation of the exact parts so far
    whole = True  # every part so far exact, with no cut
    for op, av in items:
        exact, found, ends = _item(str(op), av)
        best = _better(best, found)
        if exact is None:
            # The run goes on into the part's first strings; a new run starts with its last ones.
            joined = _product(run, ends) if ends is not None and run is not None else None
            best, whole = _better(best, joined if joined is not None else run), False
            run = ends if ends is not None else frozenset([""])
            continue
        joined = _product(run, exact) if run is not None else None
        if joined is None:  # too many strings: what ran so far is one set, a new run starts here
            best, run, whole = _better(best, run), exact, False
        else:
            run = joined
    best = _better(best, run)
    return (run if whole else None), best, None


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
    anchored = {_anchor(c) for c in chars}
    return frozenset(anchored) if chars and None not in anchored else None  # type: ignore[arg-type]


def _repeat(low: int, high: int, inner: Any) -> _Found:
    exact, found, _ends = _sequence(inner)
    if low == 0 and high == 1:  # optional: its strings or nothing; no anchor of its own
        return (exact | {""} if exact is not None else None), None, None
    if low == high == 1:
        return exact, found, None
    if low == 0:
        return _NOTHING
    return None, found, exact


def _item(name: str, av: Any) -> _Found:
    if name == "LITERAL":
        ch = _anchor(chr(av))
        return (frozenset([ch]), frozenset([ch]), None) if ch is not None else _NOTHING
    if name == "IN":
        chars = _chars(av)
        return chars, chars, None
    if name == "SUBPATTERN":
        return _sequence(av[-1])
    if name == "BRANCH":
        exacts, anchored = [], []
        for branch in av[1]:
            exact, found, _ends = _sequence(branch)
            exacts.append(exact)
            anchored.append(found if found is not None and all(found) else None)
        exact = None if any(e is None for e in exacts) else frozenset().union(*exacts)
        if exact is not None and len(exact) > MAX_STRINGS:
            exact = None
        found = None if any(f is None for f in anchored) else frozenset().union(*anchored)
        return exact, found, None
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        return _repeat(*av)
    return _NOTHING  # ANY, AT, GROUPREF, lookarounds, ATOMIC_GROUP ...: no anchor of their own


def anchors(pattern: re.Pattern) -> frozenset[str] | None:
    """Strings one of which every match of `pattern` contains; None when no such set is known."""
    if _sre_parse is None:
        return None
    try:
        found = _sequence(_sre_parse.parse(pattern.pattern, pattern.flags))[1]
    except Exception:  # an unexpected tree: run the pattern always
        return None
    return found if found and all(found) else None
