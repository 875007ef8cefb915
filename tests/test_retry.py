"""The one backoff formula for platform retries (bot.retry)."""

from __future__ import annotations

from bot.config import SchedulerConfig
from bot.retry import backoff_delay


def test_backoff_doubles_up_to_the_cap_and_honours_retry_after():
    s = SchedulerConfig(backoff_base_s=2, backoff_max_s=30)
    assert [backoff_delay(s, n) for n in (0, 1, 2, 3, 4, 5)] == [2, 2, 4, 8, 16, 30]
    assert backoff_delay(s, 1, retry_after=60) == 60  # the platform asked for longer than the cap
    assert backoff_delay(s, 3, retry_after=1) == 8
