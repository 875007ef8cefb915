"""The one backoff formula for platform retries (bot.retry)."""

from __future__ import annotations

from bot.config import SchedulerConfig
from bot.retry import backoff_delay


def test_backoff_doubles_up_to_the_cap_and_honours_retry_after():
    s = SchedulerConfig(backoff_base_s=2, backoff_max_s=30)
    assert [backoff_delay(s, n) for n in (0, 1, 2, 3, 4, 5)] == [2, 2, 4, 8, 16, 30]
    assert backoff_delay(s, 1, retry_after=60) == 60  # the platform asked for longer than the cap
    assert backoff_delay(s, 3, retry_after=1) == 8


def test_jitter_stays_between_half_and_all_of_the_delay_and_never_under_retry_after():
    import random

    from bot.retry import backoff

    rng = random.Random(7)
    delays = [backoff(n, base=2, cap=300, rng=rng) for n in range(1, 12)]
    for n, d in zip(range(1, 12), delays, strict=True):
        full = min(300, 2 * 2 ** (n - 1))
        assert full / 2 <= d <= full
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not the bare doubling
    assert backoff(1, base=2, cap=300, retry_after=60, rng=rng) == 60
    assert backoff(1, base=2, cap=300, retry_after=3600, rng=rng) == 3600  # the platform's word, past the cap
