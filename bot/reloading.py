"""A value built from files and built again when one of them changes: the one way rules files
(triage rules, FAQ, check rules, rule names) are reloaded while the service runs.

A file's stamp is its path, modification time and size: a site file added or removed switches the
file in force (bot.resources.rule_file), an edit changes the time or size. A failed rebuild keeps
the last good value in force, logs the error and keeps it in `last_error`, and is not tried again
until a file changes again; with no good value yet (at start), the error is raised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from loguru import logger

T = TypeVar("T")
Stamp = tuple[tuple[Path, int, int] | None, ...]


def file_stamp(paths: Sequence[Path]) -> Stamp:
    stamp: list[tuple[Path, int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
            stamp.append((path, st.st_mtime_ns, st.st_size))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


class Reloading(Generic[T]):
    """`load()` over the files `paths()` names, loaded again by `get()` when their stamp changed.

    `check_every_s`: look at the files at most this often (a hot path asking on every request);
    `errors`: the exceptions of a bad file, which keep the last good value."""

    def __init__(self, paths: Callable[[], Sequence[Path]], load: Callable[[], T], *, what: str,
                 errors: tuple[type[Exception], ...], check_every_s: float = 0.0):
        self._paths, self._load, self.what, self._errors = paths, load, what, errors
        self.check_every_s = check_every_s
        self._lock = threading.Lock()
        self._stamp = file_stamp(paths())
        self._value = load()  # no last good value yet: a bad start raises
        self._next_check = time.monotonic() + check_every_s
        self.last_error: Exception | None = None

    def get(self) -> T:
        if self.check_every_s:
            now = time.monotonic()
            if now < self._next_check:
                return self._value
            self._next_check = now + self.check_every_s
        self.reload_if_changed()
        return self._value

    def reload_if_changed(self) -> None:
        """Load again now if a file changed (after an edit in the console: no wait for the next check)."""
        stamp = file_stamp(self._paths())
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            self._stamp = stamp  # a failed edit is not tried again until a file changes again
            try:
                self._value = self._load()
                self.last_error = None
                logger.info("{} reloaded", self.what)
            except self._errors as exc:
                self.last_error = exc
                logger.error("{} not reloaded, the last good ones stay in force: {}", self.what, exc)
