"""Scale benchmark: the daily digest and the monthly inspection report on 1,000,000 messages.

Fills a temporary SQLite database (created by the migrations) with a year of data for 200 accounts in
20 departments: 1,000,000 messages and comments (about 57 % needing an answer, 3 % spam), a ticket for
each one needing an answer, the replies (a third automatic), and about 50,000 published posts with
interaction figures. The fill is INSERT ... SELECT over recursive CTEs inside SQLite, so no row
passes through Python. Then it times the digest of 1 December 2026 (written and stored, not sent)
and the monthly report for November 2026 (figures, CSV, HTML with charts).

Targets on SQLite: digest <= 1 s, monthly report <= 5 s. Last line (peak_rss_mb: the process that
computes the digest and the report; the fill runs in a child process and prints its own):
    digest_s=... report_s=... peak_rss_mb=...

Usage: .venv/bin/python bench/report_scale.py [--messages N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loguru import logger  # noqa: E402

from bot import db  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.context import Context  # noqa: E402
from bot.oversight.digest import organisation_scopes, produce_digest  # noqa: E402
from bot.oversight.reports import compute_report, month_period, resolve_scope, to_csv  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
ORG = "基准县人民政府"
ACCOUNTS = 200
DEPARTMENTS = 20
# A year of local time: 1 Dec 2025 .. 1 Dec 2026 (UTC+8), as the julian days SQLite computes with.
YEAR_START_UTC = "2025-11-30 16:00:00"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=TZ)
# SQLAlchemy's SQLite DateTime text form, so the app reads what the fill wrote.
TS = "strftime('%Y-%m-%d %H:%M:%S', {jd}) || '.000000'"


def ts(jd: str) -> str:
    return TS.format(jd=jd)


def fill(path: Path, messages: int) -> dict[str, float]:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-200000")
    con.execute("PRAGMA temp_store=MEMORY")
    now = "'2026-11-20 00:00:00.000000'"
    timings: dict[str, float] = {}

    def step(name: str, sql: str, *params: object) -> None:
        t = time.perf_counter()
        con.execute(sql, params)
        con.commit()
        timings[name] = time.perf_counter() - t

    step("organisation", f"INSERT INTO organisation (id, name, created_at) VALUES (1, ?, {now})", ORG)
    step("departments", f"""
        WITH RECURSIVE d(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM d WHERE i < {DEPARTMENTS})
        INSERT INTO department (id, name, organisation_id, created_at) SELECT i, '部门' || i, 1, {now} FROM d""")
    step("user", f"""INSERT INTO user (id, username, display_name, roles, department_lead, active, created_at)
        VALUES (1, 'editor', '编辑', 'editor', 0, 1, {now})""")
    step("accounts", f"""
        WITH RECURSIVE a(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM a WHERE i < {ACCOUNTS})
        INSERT INTO account (id, name, platform, department_id, remote_id, credentials, enabled, auto_reply, created_at)
        SELECT i, '账号' || i, CASE WHEN i % 2 THEN 'weibo' ELSE 'wechat' END, 1 + (i - 1) % {DEPARTMENTS},
               'r' || i, '{{}}', 1, 1, '2025-01-01 00:00:00.000000' FROM a""")
    # Posts: an account posts on about 70 % of days; every 25th account stops on 10 November (silent).
    step("posts", f"""
        WITH RECURSIVE d(day) AS (SELECT 0 UNION ALL SELECT day + 1 FROM d WHERE day < 364),
             a(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM a WHERE i < {ACCOUNTS})
        INSERT INTO post (title, body, digest, weibo_text, author_id, status, version, content_hash, created_at, updated_at)
        SELECT '通知 ' || a.i || '-' || d.day, '正文', '', '', 1, 'published', 1, 'h', {now}, {now}
        FROM d, a WHERE ((d.day * 7 + a.i * 13) % 10) < 7 AND NOT (a.i % 25 = 0 AND d.day > 343)
        ORDER BY d.day, a.i""")
    step("publications", f"""
        WITH RECURSIVE d(day) AS (SELECT 0 UNION ALL SELECT day + 1 FROM d WHERE day < 364),
             a(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM a WHERE i < {ACCOUNTS}),
             p AS (SELECT d.day, a.i, julianday('{YEAR_START_UTC}') + d.day + (9 + (a.i % 8)) / 24.0 AS jd,
                          ROW_NUMBER() OVER (ORDER BY d.day, a.i) AS post_id
                   FROM d, a WHERE ((d.day * 7 + a.i * 13) % 10) < 7 AND NOT (a.i % 25 = 0 AND d.day > 343))
        INSERT INTO publication (post_id, account_id, state, due_at, next_attempt_at, attempts, content_hash, step,
                                 published_at, reads, likes, shares, comments, created_at)
        SELECT post_id, i, CASE WHEN (post_id % 997) = 0 THEN 'failed' ELSE 'published' END,
               {ts('jd')}, {ts('jd')}, 1, 'h', 'done',
               CASE WHEN (post_id % 997) = 0 THEN NULL ELSE {ts('jd')} END,
               100 + post_id % 900, post_id % 40, post_id % 7, post_id % 11, {now}
        FROM p""")
    # Messages: evenly over the year; h is a cheap hash of i that spreads the properties.
    step("messages", f"""
        WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {messages} - 1),
             m AS (SELECT i, 1 + i % {ACCOUNTS} AS acc, (i * 2654435761) % 4294967291 AS h,
                          julianday('{YEAR_START_UTC}') + i * (365.0 / {messages}) AS jd FROM s)
        INSERT INTO message (id, account_id, kind, dedupe_key, msg_type, sender_id, sender_name, text, raw,
                             received_at, stored_at, intent, topic, spam, needs_answer, rules, department_id, replied_at)
        SELECT i + 1, acc,
               CASE WHEN acc % 2 THEN 'weibo_comment' WHEN h % 10 < 4 THEN 'wechat_message' ELSE 'wechat_comment' END,
               'k' || i, 'text', 'u' || (h % 50000), '', '市民留言第 ' || i || ' 条：小区道路破损，请尽快维修', '',
               {ts('jd')}, {ts('jd')},
               CASE WHEN h % 100 < 3 THEN 'other' WHEN h % 100 < 40 THEN 'complaint' WHEN h % 100 < 60 THEN 'question'
                    ELSE 'praise' END,
               '城乡建设', h % 100 < 3, h % 100 >= 3 AND h % 100 < 60, '', 1 + (acc - 1) % {DEPARTMENTS},
               CASE
                 WHEN h % 100 < 3 THEN NULL
                 WHEN h % 100 >= 60 AND h % 2 = 0 THEN NULL
                 WHEN h % 1000 = 7 THEN NULL
                 WHEN jd > julianday('2026-11-21 00:00:00') AND h % 10 < 4 THEN NULL
                 ELSE {ts('jd + (CASE WHEN h % 10 < 3 THEN 0.001 ELSE (h % 997) / 120.0 END) / 24.0')}
               END
        FROM m""")
    step("tickets", """
        INSERT INTO ticket (message_id, department_id, intent, topic, priority, state, created_at, first_response_due,
                            resolution_due, warn_at, first_response_at, answered_at)
        SELECT id, department_id, intent, topic, CASE WHEN intent = 'complaint' THEN 1 ELSE 2 END,
               CASE WHEN replied_at IS NOT NULL AND replied_at < '2026-12-01 01:00:00' THEN 'answered'
                    WHEN id % 3 = 0 THEN 'acknowledged' ELSE 'new' END,
               received_at,
               strftime('%Y-%m-%d 16:00:00', received_at, '+1 day') || '.000000',
               strftime('%Y-%m-%d 16:00:00', received_at, '+7 days') || '.000000',
               strftime('%Y-%m-%d 16:00:00', received_at, '+5 days') || '.000000',
               replied_at, replied_at
        FROM message WHERE needs_answer""")
    step("replies", """
        INSERT INTO reply (message_id, ticket_id, account_id, sender_id, author_id, automatic, faq_rule, channel, text,
                           state, attempts, created_at, sent_at)
        SELECT m.id, t.id, m.account_id, m.sender_id, CASE WHEN a.auto THEN NULL ELSE 1 END,
               a.auto, CASE WHEN a.auto THEN 'faq' END, m.kind, '您好，已收到。', 'sent', 1, m.replied_at, m.replied_at
        FROM message m LEFT JOIN ticket t ON t.message_id = m.id
        JOIN (SELECT id, (id * 2654435761) % 4294967291 % 10 < 3 AS auto FROM message) a ON a.id = m.id
        WHERE m.replied_at IS NOT NULL""")
    counts = {name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
              for name in ("message", "ticket", "reply", "publication")}
    con.close()
    print("rows:", ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return timings


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fill_in_child(path: Path, messages: int) -> tuple[dict[str, float], float]:
    return fill(path, messages), peak_rss_mb()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="keep the database and the report files in this folder")
    args = ap.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")

    tmp = tempfile.TemporaryDirectory(prefix="govbot-bench-")
    folder = args.keep or Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench.db"
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    t0 = time.perf_counter()
    db.upgrade(url)
    # The fill runs in a child process: its memory (SQLite building the indexes and the search index of a
    # million rows) is not the digest's or the report's, and peak_rss_mb below is this process's alone.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        timings, fill_rss = pool.apply(_fill_in_child, (path, args.messages))
    fill_s = time.perf_counter() - t0
    print("fill: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items() if v >= 0.05) + f"; total {fill_s:.1f}s, "
          f"peak RSS of the filling process {fill_rss:.0f} MB")

    config = parse_config({"database": {"url": url}, "data_dir": str(folder),
                           "organisations": [{"name": ORG, "digest_time": "08:30:00"}]})
    ctx = Context.open(config)

    with ctx.session() as s:
        (scope,) = organisation_scopes(session=s, config=config)
    t = time.perf_counter()
    outcome = produce_digest(ctx, scope=scope, day=date(2026, 12, 1), now=NOW, send=False)
    digest_s = time.perf_counter() - t
    d = outcome.digest
    print(f"digest: {d.unanswered:,} unanswered ({d.overdue:,} overdue, {d.due_today:,} due today) in "
          f"{len(d.departments)} departments, {len(d.accounts)} accounts flagged; {len(outcome.markdown):,} chars "
          f"markdown; {digest_s:.3f}s")

    from bot.oversight.charts import report_html

    t = time.perf_counter()
    start, end = month_period("2026-11", config.timezone)
    with ctx.session() as s:
        report = compute_report(session=s, config=config, calendar=ctx.calendar,
                                scope=resolve_scope(session=s, organisation=ORG), start=start, end=end, now=NOW)
    figures_s = time.perf_counter() - t
    csv_text = to_csv(report)
    html = report_html(report)
    report_s = time.perf_counter() - t
    (folder / "report-2026-11.csv").write_text(csv_text, encoding="utf-8-sig")
    (folder / "report-2026-11.html").write_text(html, encoding="utf-8")
    tot = report.total
    print(f"report 2026-11: {len(report.rows)} accounts, {tot.received:,} messages, reply rate "
          f"{tot.reply_rate:.1%}, on time {tot.first_response_on_time_rate:.1%} / {tot.resolution_on_time_rate:.1%}, "
          f"median {tot.response_hours_median:.1f} h, backlog {tot.backlog:,}; figures {figures_s:.3f}s, "
          f"with CSV + HTML charts {report_s:.3f}s ({len(html) // 1024} KiB)")
    ctx.close()
    print(f"digest_s={digest_s:.3f} report_s={report_s:.3f} peak_rss_mb={peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
