"""When to try again after a failure: the one backoff every job uses (publishing, replies, the
outbox, the digest's channels). Pure."""

from __future__ import annotations

import random

from bot.config import SchedulerConfig


def backoff(attempts: int, *, base: float, cap: float, retry_after: float | None = None,
            rng: random.Random | None = None) -> float:
    """Seconds to wait after `attempts` failed attempts: doubling from `base` up to `cap`. With `rng`, a
    random part of that (half to all), so that workers which failed together do not retry together.
    Never sooner than the platform asked (Retry-After, a rate limit's reset), even past the cap: an
    earlier try would only fail again and use up an attempt."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    if rng is not None:
        delay *= rng.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


def backoff_delay(scheduler: SchedulerConfig, attempts: int, retry_after: float | None = None) -> float:
    """backoff() with the platform-call settings (config scheduler.backoff_base_s, backoff_max_s)."""
    return backoff(attempts, base=scheduler.backoff_base_s, cap=scheduler.backoff_max_s, retry_after=retry_after)
