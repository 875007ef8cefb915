"""Where jieba keeps its prepared dictionary: in govbot's data directory, not /tmp.

Building jieba's prefix dictionary takes seconds; its cache file makes later starts fast, but /tmp
is private or cleared under systemd and in containers, so the cache lives in `<data_dir>/cache`.
"""

from __future__ import annotations

import logging
from pathlib import Path


def use_cache_dir(data_dir: Path) -> None:
    """Call before the first classification (it loads jieba's dictionary)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)  # keep the dictionary-loading chatter out of logs and output
    cache = Path(data_dir) / "cache"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only data dir: jieba falls back to its temp dir
    jieba.dt.tmp_dir = str(cache)
