"""When to try a platform call again (config scheduler.*): pure, so every job waits the same way."""

from __future__ import annotations

from bot.config import SchedulerConfig


def backoff_delay(scheduler: SchedulerConfig, attempts: int, retry_after: float | None = None) -> float:
    """Seconds to wait after `attempts` failed attempts: doubling from backoff_base_s up to backoff_max_s,
    and never sooner than the platform asked (Retry-After, rate limits)."""
    delay = min(scheduler.backoff_max_s, scheduler.backoff_base_s * 2 ** max(0, attempts - 1))
    return max(delay, retry_after or 0.0)
