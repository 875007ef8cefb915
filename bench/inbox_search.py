"""Inbox search at scale: words found in N stored messages, as responders search them.

usage: python bench/inbox_search.py [CSV] [--messages N] [--pg URL]

1. Indexing: messages/s of `search_text` (the jieba words stored with each message at ingest).
2. Search: N messages with open tickets (texts from CSV, default ../shared/data/citizen_messages_dev.csv
   beside the repo, cycled) in a fresh SQLite file (FTS5) - and in PostgreSQL (GIN) with --pg URL of
   an empty database; p50/p95 over common words of one inbox page (count + first 30 rows, newest
   first), exactly as the 工单 page asks (bot.tickets.inbox.search).

Last line: messages=... index_msgs_per_s=... sqlite_p50_ms=... sqlite_p95_ms=... [pg_p50_ms=... pg_p95_ms=...]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data"
WORDS = ("路灯", "噪音", "物业", "学校", "公交", "医院", "社保", "拆迁", "停车", "垃圾", "小区 物业", "噪音 扰民",
         "公积金", "幼儿园", "出租车", "污染", "工资", "违建", "油烟", "道路 积水")


def read_texts(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [row["text"] for row in csv.DictReader(fh) if row.get("text")]


def fill(url: str, texts: list[str], n: int) -> None:
    from sqlalchemy import create_engine, insert

    from bot import db
    from bot.clock import utcnow
    from bot.models import Account, Department, Message, Ticket
    from bot.search import search_text

    db.upgrade(url)
    engine = create_engine(url)
    words = [search_text(t) for t in texts]
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(Department).values(id=1, name="住建局", created_at=now))
        conn.execute(insert(Account).values(id=1, name="示例县发布", platform="wechat", department_id=1, remote_id="wx",
                                            credentials={}, enabled=True, auto_reply=True, created_at=now))
        for start in range(0, n, 5000):
            ids = range(start + 1, min(n, start + 5000) + 1)
            conn.execute(insert(Message), [dict(
                id=i, account_id=1, kind="wechat_message", dedupe_key=str(i), msg_type="text", sender_id=f"o{i % 5000}",
                sender_name="", text=texts[i % len(texts)], search_text=words[i % len(texts)], raw="",
                received_at=now - timedelta(minutes=i), stored_at=now, intent="complaint", spam=False,
                needs_answer=True, rules="", department_id=1) for i in ids])
            conn.execute(insert(Ticket), [dict(
                id=i, message_id=i, department_id=1, intent="complaint", priority=2, state="new",
                created_at=now - timedelta(minutes=i), first_response_due=now + timedelta(days=1),
                resolution_due=now + timedelta(days=5), warn_at=now + timedelta(days=3)) for i in ids])
    engine.dispose()


def measure(url: str) -> list[float]:
    from sqlalchemy import create_engine
    from sqlmodel import Session

    from bot.clock import utcnow
    from bot.tickets.inbox import InboxQuery, search

    engine = create_engine(url)
    times = []
    with Session(engine) as session:
        search(session=session, query=InboxQuery(q=WORDS[0], state="all"), now=utcnow())  # warm-up
        for _ in range(3):
            for word in WORDS:
                t0 = time.perf_counter()
                page = search(session=session, query=InboxQuery(q=word, state="all", sort="newest"), now=utcnow())
                times.append((time.perf_counter() - t0) * 1000)
                assert page.total >= 0
    engine.dispose()
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", nargs="?", default=str(DATA / "citizen_messages_dev.csv"))
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--pg", default="", help="URL of an empty PostgreSQL database")
    args = parser.parse_args()
    from bot.search import search_text

    texts = read_texts(Path(args.csv))
    search_text(texts[0])  # load the dictionary
    t0 = time.perf_counter()
    for text in texts:
        search_text(text)
    index_rate = len(texts) / (time.perf_counter() - t0)
    print(f"indexing: {index_rate:.0f} messages/s ({len(texts)} messages, mean {statistics.mean(map(len, texts)):.0f} chars)")
    out = {"messages": args.messages, "index_msgs_per_s": round(index_rate)}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        fill(url, texts, args.messages)
        times = measure(url)
        print(f"sqlite FTS5: p50 {statistics.median(times):.1f} ms, p95 {pct(times, 0.95):.1f} ms over {len(times)} searches")
        out |= {"sqlite_p50_ms": round(statistics.median(times), 1), "sqlite_p95_ms": round(pct(times, 0.95), 1)}
    if args.pg:
        fill(args.pg, texts, args.messages)
        times = measure(args.pg)
        print(f"postgresql GIN: p50 {statistics.median(times):.1f} ms, p95 {pct(times, 0.95):.1f} ms")
        out |= {"pg_p50_ms": round(statistics.median(times), 1), "pg_p95_ms": round(pct(times, 0.95), 1)}
    print(" ".join(f"{k}={v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
