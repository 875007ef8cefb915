"""Update-gap guard: days since the last post and whether scheduled posts keep gaps under the limit."""

from datetime import UTC, datetime, timedelta

from loguru import logger
from sqlmodel import select

from bot.models import Account, Post, Publication, User
from bot.publishing.gap import account_gaps, evaluate_gap, gap_check

NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)
D = timedelta(days=1)


def gap(last, scheduled=(), warn=10, limit=14):
    return evaluate_gap(account_id=1, account_name="a", platform="wechat", last_published_at=last,
                        scheduled=list(scheduled), now=NOW, warn_days=warn, limit_days=limit)


def test_recent_post_is_ok():
    g = gap(NOW - 3 * D)
    assert g.level == "ok" and round(g.days_since_last, 1) == 3.0
    assert g.silent_limit_at == NOW + 11 * D


def test_warns_at_threshold_without_a_scheduled_post():
    g = gap(NOW - 10 * D)
    assert g.level == "warn" and "nothing scheduled" in g.message


def test_limit_reached():
    g = gap(NOW - 14 * D)
    assert g.level == "limit" and "14.0 days" in g.message


def test_never_posted_nothing_scheduled_is_at_the_limit():
    assert gap(None).level == "limit"


def test_scheduled_posts_that_leave_a_long_gap_warn():
    g = gap(NOW - 2 * D, [NOW + 20 * D])
    assert g.level == "warn" and round(g.longest_planned_gap_days) == 22
    assert g.silent_limit_at == NOW + 34 * D


def test_scheduled_posts_that_close_the_gap_still_show_days_since():
    g = gap(NOW - 11 * D, [NOW + 1 * D])
    assert g.level == "warn" and "warning at 10" in g.message
    assert round(g.longest_planned_gap_days) == 12


def test_account_gaps_reads_the_database_and_logs(ctx):
    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING")
    try:
        with ctx.session() as s:
            author = s.exec(select(User).where(User.username == "xuanchuan")).one()
            wx = s.exec(select(Account).where(Account.name == "示例县发布")).one()
            post = Post(title="t", body="b", author_id=author.id, content_hash="h", status="published")
            s.add(post)
            s.flush()
            s.add(Publication(post_id=post.id, account_id=wx.id, state="published", due_at=NOW - 12 * D,
                              next_attempt_at=NOW - 12 * D, published_at=NOW - 12 * D))
        gaps = {g.account_name: g for g in gap_check(ctx, now=NOW)}
        assert gaps["示例县发布"].level == "warn"
        assert gaps["示例县住建"].level == "limit"
        with ctx.session() as s:
            assert {g.account_name for g in account_gaps(session=s, config=ctx.config, now=NOW)} == set(gaps)
    finally:
        logger.remove(sink)
    assert any("示例县发布" in m and "days without a post" in m for m in messages)
