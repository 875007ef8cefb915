"""When to poll a WeChat article's comments (留言): pure, so the schedule is tested directly.

Every comment/list call is spent from a daily budget (about 10,000 a day per account, of which
polling may take polling.comment_budget_share), so articles are polled by need: new ones often,
old ones rarely, and any article where a new comment turned up recently as often as a new one.
The list is not append-only (a comment can appear at a lower offset), so each article's whole
list is read again every polling.full_rescan_s.
"""

from __future__ import annotations

from datetime import datetime, timedelta

DAY = 86400.0
# (age below, interval as a multiple of fresh_interval_s): 5 min, 20 min, 1 h, 4 h with the default.
AGE_BANDS = ((1 * DAY, 1), (3 * DAY, 4), (7 * DAY, 12))
OLD_FACTOR = 48
# A new comment within this long makes an article "busy": polled as often as a new one.
ACTIVE_WITHIN_S = 2 * 3600.0


def poll_interval(*, age_s: float, since_new_s: float | None, fresh_s: float) -> float:
    """Seconds between two polls of an article `age_s` old whose last new comment came `since_new_s` ago."""
    if since_new_s is not None and since_new_s < ACTIVE_WITHIN_S:
        return fresh_s
    for below, factor in AGE_BANDS:
        if age_s < below:
            return fresh_s * factor
    return fresh_s * OLD_FACTOR


def next_poll(*, now: datetime, published_at: datetime, last_new_at: datetime | None, fresh_s: float) -> datetime:
    since_new = (now - last_new_at).total_seconds() if last_new_at else None
    return now + timedelta(seconds=poll_interval(age_s=(now - published_at).total_seconds(),
                                                 since_new_s=since_new, fresh_s=fresh_s))


def needs_full_rescan(*, now: datetime, full_scan_at: datetime | None, every_s: float) -> bool:
    return full_scan_at is None or (now - full_scan_at).total_seconds() >= every_s
