"""Repeated identical errors logged once per interval with a count, not once per occurrence.

A database outage under load fails every request the same way; one line per failure buries the log
(a 13 s PostgreSQL outage wrote 9,967 lines). The first occurrence of a key is logged at once; later
ones within `interval_s` are counted and reported with the next line logged for that key.

    from bot.logthrottle import log_throttled
    log_throttled("callback.store", "ERROR", "cannot store delivery: {}", reason)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from loguru import logger


@dataclass
class _Seen:
    logged_at: float
    suppressed: int = 0


class LogThrottle:
    def __init__(self, interval_s: float = 60.0):
        self.interval_s = interval_s
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()

    def log(self, key: str, level: str, message: str, *args: object, exception: bool = False, _depth: int = 1) -> bool:
        """Log `message` unless `key` was logged within the interval; True when it was written."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.logged_at < self.interval_s:
                seen.suppressed += 1
                return False
            suppressed = seen.suppressed if seen is not None else 0
            self._seen[key] = _Seen(logged_at=now)
        if suppressed:
            message += " ({} more like this in the last {:g} s)"
            args = (*args, suppressed, self.interval_s)
        # depth: the caller's module and line, not this helper's.
        logger.opt(exception=exception, depth=_depth).log(level, message, *args)
        return True

    def clear(self, key: str) -> int:
        """Forget `key` (the condition ended); returns how many occurrences went unlogged."""
        with self._lock:
            seen = self._seen.pop(key, None)
        return seen.suppressed if seen is not None else 0


_default = LogThrottle()


def log_throttled(key: str, level: str, message: str, *args: object, exception: bool = False) -> bool:
    """`LogThrottle.log` on the process-wide throttle (60 s interval)."""
    return _default.log(key, level, message, *args, exception=exception, _depth=2)


def clear_throttled(key: str) -> int:
    return _default.clear(key)
