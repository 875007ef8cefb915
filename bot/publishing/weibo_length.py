"""How long a Weibo text is, counted the way Weibo counts it: one pure function, for the checks,
the emulator and the console's live counter.

Weibo's own counter (the web client's JavaScript, ported bug for bug by WeCase's TweetUtils.py)
counts bytes and halves them: an ASCII character is one byte (half a character), anything else two
(a full character). A link counts as 20 bytes (10 characters) whatever its length, up to 140 bytes;
beyond that, the excess is added. Links to weibo.com/weibo.cn of at most 41 bytes count their own
length; t.cn short links count as plain text. The counter works on UTF-16 code units (JavaScript
strings), so an emoji outside the Basic Multilingual Plane is two units: 4 bytes, 2 characters.
WeCase matches http:// links only; https:// links are counted the same way here (unverified).
"""

from __future__ import annotations

import math
import re

URL_BYTES = 20  # what a link counts, in bytes (10 characters)
SHORT_OWN_MAX = 41  # weibo.com links up to this many bytes count their own length
LONG_URL_BYTES = 140  # links longer than this add their excess
_URL = re.compile(r"https?://[a-zA-Z0-9]+(?:\.[a-zA-Z0-9]+)+[-A-Z0-9a-z_$.+!*()/\\,:@&=?~#%]*")
_TCN = re.compile(r"^https?://t\.cn", re.I)
_WEIBO = re.compile(r"^https?://(?:weibo\.com|weibo\.cn)", re.I)


def _bytes(text: str) -> int:
    """ASCII 1 byte; other characters 2 per UTF-16 code unit (astral characters, e.g. emoji, are two units)."""
    return sum(1 if ord(c) < 0x80 else 4 if ord(c) > 0xFFFF else 2 for c in text)


def _url_bytes(url: str) -> int:
    own = _bytes(url)
    if _WEIBO.match(url) and own <= SHORT_OWN_MAX:
        return own
    return URL_BYTES if own <= LONG_URL_BYTES else own - LONG_URL_BYTES + URL_BYTES


def weibo_length(text: str) -> int:
    """The length of `text` in Weibo characters (what the 140 and 2,000 limits count)."""
    total = 0
    rest = []
    last = 0
    for m in _URL.finditer(text):
        url = m.group(0)
        if _TCN.match(url):
            continue  # counted as plain text
        total += _url_bytes(url)
        rest.append(text[last:m.start()])
        last = m.end()
    rest.append(text[last:])
    return math.ceil((total + _bytes("".join(rest))) / 2)


def weibo_cut(text: str, limit: int) -> int:
    """The offset in `text` where it passes `limit` Weibo characters (len(text) if it does not)."""
    if weibo_length(text) <= limit:
        return len(text)
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi) // 2
        if weibo_length(text[:mid + 1]) <= limit:
            lo = mid + 1
        else:
            hi = mid
    return lo


HASHTAG = re.compile(r"#[^#\s][^#]*?#")


def hashtags(text: str) -> list[re.Match]:
    """The #话题# topics in a text (statuses/share.json refuses them)."""
    return list(HASHTAG.finditer(text))
