"""The background worker: APScheduler drives short ticks; the work itself lives in database rows.

Jobs are rebuilt from the config at every start (stable ids, replace_existing, max_instances=1,
coalesce, a misfire grace time). A job never holds pending work in memory: each tick claims due
rows with a lease, so several worker processes can share one database and a crash loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.schedulers.background import BackgroundScheduler
from loguru import logger

from bot.context import Context
from bot.logthrottle import log_throttled


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: Callable[[Context], object]
    seconds: float
    # Called once when the scheduler shuts down (after the last run), e.g. to hand back leases.
    on_shutdown: Callable[[Context], object] | None = None
    # Called once when the scheduler is built, before the first run, e.g. to open connections ahead.
    on_start: Callable[[Context], object] | None = None


def job_specs(ctx: Context) -> list[JobSpec]:
    """Every periodic job, from each part of the product."""
    from bot.inbound import processing as inbound
    from bot.inbound.autoreply import AUTOMATIC
    from bot.inbound.polling import poll_comments
    from bot.inspection.service import daily_check
    from bot.outbox import sending
    from bot.oversight.digest import digest_job
    from bot.publishing import scheduler as publishing
    from bot.publishing.gap import gap_check
    from bot.publishing.stats import refresh_stats
    from bot.replies import send_due
    from bot.tickets import service as tickets
    from bot.tickets.answering import RESPONDERS

    specs: list[JobSpec] = [
        JobSpec("publishing.tick", publishing.tick, ctx.config.scheduler.tick_seconds, on_shutdown=publishing.stop,
                on_start=publishing.start),
        JobSpec("inbound.poll_comments", poll_comments, ctx.config.polling.interval_s),
        JobSpec("tickets.check_deadlines", tickets.check_deadlines, ctx.config.tickets.check_interval_s),
        # Warnings and escalations by e-mail and the WeCom robot (rows written by check_deadlines).
        JobSpec("notifications.send", sending.send_due, 30.0),
        # Automatic and responders' replies alike.
        JobSpec("replies.send", lambda c: send_due(c, {True: AUTOMATIC, False: RESPONDERS}),
                max(1.0, ctx.config.scheduler.tick_seconds)),
        # 更新间隔: accounts near the 14-day silence limit are logged hourly (and shown in the API and console).
        JobSpec("publishing.gap_check", gap_check, 3600.0),
        JobSpec("publishing.refresh_stats", refresh_stats, ctx.config.polling.stats_interval_s),
        # Checks each minute whether an organisation's digest_time has come (once a day, retries after).
        JobSpec("oversight.digest", digest_job, 60.0),
        # 迎检: every account against the national checklist; new failures become rectification records.
        JobSpec("inspection.daily", daily_check, 6 * 3600.0),
        # WeChat deliveries answered by the callback: spool replay, then triage, routing and tickets.
        JobSpec("inbound.process", inbound.process_pending, ctx.config.callback.process_interval_s),
        JobSpec("inbound.prune_deliveries", inbound.prune_deliveries, 3600.0),
    ]
    return specs


def _guarded(spec: JobSpec, ctx: Context) -> Callable[[], None]:
    def run() -> None:
        try:
            spec.func(ctx)
        except Exception as exc:
            # A failing tick must not kill the scheduler; the next tick tries again. In an outage every
            # tick fails alike: logged once a minute with a count, not twice a second.
            log_throttled(f"job.{spec.id}.{type(exc).__name__}", "ERROR", "job {} failed", spec.id, exception=True)

    return run


def _run_hooks(specs: list[JobSpec], hook: str, ctx: Context, failure: str) -> None:
    """Each job's `hook` (on_start, on_shutdown), if it has one; a failing hook is logged, the rest still run."""
    for spec in specs:
        func = getattr(spec, hook)
        if func is not None:
            try:
                func(ctx)
            except Exception:
                logger.exception(failure, spec.id)


def build_scheduler(ctx: Context) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=ctx.tz)
    specs = job_specs(ctx)
    _run_hooks(specs, "on_start", ctx, "start of job {} failed; its first run tries again")
    for spec in specs:
        scheduler.add_job(
            _guarded(spec, ctx), "interval", seconds=spec.seconds, id=spec.id, name=spec.id,
            replace_existing=True, max_instances=1, coalesce=True, misfire_grace_time=max(5, int(spec.seconds * 2)),
        )
    scheduler.add_listener(lambda _event: _run_hooks(specs, "on_shutdown", ctx, "shutdown of job {} failed"),
                           EVENT_SCHEDULER_SHUTDOWN)
    return scheduler
