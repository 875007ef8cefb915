"""bot.reloading: rules files loaded again when they change, the last good value kept on a bad edit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.reloading import Reloading


def bump(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_reload_on_change_keep_last_good_and_try_a_bad_file_once(tmp_path: Path):
    file = tmp_path / "n.txt"
    file.write_text("1", encoding="utf-8")
    loads = []

    def load() -> int:
        loads.append(1)
        return int(file.read_text(encoding="utf-8"))

    value = Reloading(lambda: [file], load, what="numbers", errors=(ValueError,))
    assert value.get() == 1 and value.get() == 1 and len(loads) == 1  # unchanged: not loaded again
    bump(file, "2")
    assert value.get() == 2 and value.last_error is None
    bump(file, "two")
    assert value.get() == 2 and isinstance(value.last_error, ValueError)  # the last good value stays
    calls = len(loads)
    assert value.get() == 2 and len(loads) == calls  # a bad file is not tried again until it changes
    file.unlink()
    with pytest.raises(FileNotFoundError):  # not one of `errors`: a bug is not hidden
        value.get()


def test_a_bad_file_at_start_raises_and_the_check_interval_is_kept(tmp_path: Path):
    file = tmp_path / "n.txt"
    file.write_text("x", encoding="utf-8")
    with pytest.raises(ValueError):
        Reloading(lambda: [file], lambda: int(file.read_text(encoding="utf-8")), what="n", errors=(ValueError,))
    file.write_text("1", encoding="utf-8")
    value = Reloading(lambda: [file], lambda: int(file.read_text(encoding="utf-8")), what="n", errors=(ValueError,),
                      check_every_s=3600)
    bump(file, "2")
    assert value.get() == 1  # within the interval the file is not even looked at
    value.reload_if_changed()
    assert value.get() == 2
