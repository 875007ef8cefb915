"""How long a Weibo status is, as Weibo counts it (字数): every character counts one, an ASCII
character half, and each link a fixed length whatever its own length (the link is shortened by the
platform). Pure. The console mirrors this function in JavaScript (static/posts.js, `weiboLength`);
a browser test checks that both agree.
"""

from __future__ import annotations

import re

# A link counts as this many characters however long it is (unverified: Weibo's own counter shows
# 10 for the t.cn links it shortens to; configurable per call).
URL_LENGTH = 10
_URL = re.compile(r"https?://[\x21-\x7e]+")


def weibo_length(text: str, url_length: int = URL_LENGTH) -> float:
    """Characters as Weibo counts them; round up to compare with the 140 limit."""
    total = 0.0
    for part in _URL.split(text):
        total += sum(0.5 if ord(ch) < 128 else 1.0 for ch in part)
    return total + url_length * len(_URL.findall(text))
