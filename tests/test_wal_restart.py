"""The callback's checkpointer keeps the SQLite WAL from growing under a steady stream of deliveries
(bot.inbound.intake.checkpoint): the log starts again from its beginning after each round."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from bot import db
from bot.db import sqlite_pragmas
from bot.inbound import intake


def wal_size_after_steady_writes(tmp_path, name: str) -> int:
    """The WAL's size after 1.6 s of commits every 2 ms, checkpointed every 0.2 s as the intake does."""
    path = tmp_path / f"{name}.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    sqlite_pragmas(writer, busy_ms=0)
    writer.execute("PRAGMA wal_autocheckpoint=0")  # as the callback's inline writer
    writer.execute("CREATE TABLE delivery(id INTEGER PRIMARY KEY, body TEXT)")
    engine = db.make_engine(f"sqlite:///{path}")
    stop = threading.Event()

    def deliveries() -> None:
        while not stop.is_set():
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("INSERT INTO delivery(body) VALUES (?)", ("消息" * 600,))
            writer.execute("COMMIT")
            time.sleep(0.002)

    thread = threading.Thread(target=deliveries)
    thread.start()
    try:
        for _ in range(8):
            time.sleep(0.2)
            with engine.connect() as conn:
                intake.checkpoint(conn)
    finally:
        stop.set()
        thread.join()
        engine.dispose()
    size = path.with_name(f"{name}.db-wal").stat().st_size
    writer.close()
    return size


def test_the_wal_starts_again_under_a_steady_stream_of_commits(tmp_path, monkeypatch):
    caught_up = wal_size_after_steady_writes(tmp_path, "passes")
    monkeypatch.setattr(intake, "CATCH_UP_PASSES", 1)  # one pass, as before: the commits made meanwhile stay behind
    one_pass = wal_size_after_steady_writes(tmp_path, "one")
    # One pass: the log never restarts and holds every commit (about 9 MB here); caught up, it restarts at
    # (nearly) every round and holds one or two rounds' commits: a fifth to a half of that on a busy machine.
    assert one_pass > 1.8 * caught_up, (one_pass, caught_up)


@pytest.mark.parametrize("url", ["sqlite://"])
def test_checkpoint_of_a_database_without_a_wal_ends(url):
    engine = db.make_engine(url)
    with engine.connect() as conn:
        intake.checkpoint(conn)  # -1 frames: no log to catch up with
