"""`govbot serve` and `govbot worker`: start-up in a fixed order.

database (migrate or refuse) -> accounts and users from the config -> emulator (embedded default)
-> background worker -> web. `/healthz` answers 200 once all of it is up.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from loguru import logger

from bot.context import Context
from bot.seed import sync_from_config


def prepare(ctx: Context) -> None:
    from bot.publishing.gap import gap_check
    from bot.publishing.settle import handle_missed

    with ctx.session() as session:
        sync_from_config(session=session, config=ctx.config)
    # Posts due while the service was down: flagged if beyond the grace period, else the first tick sends them.
    handle_missed(ctx)
    gap_check(ctx)


class ThreadedServer(uvicorn.Server):
    """A uvicorn server in a background thread (the emulator beside the service)."""

    def install_signal_handlers(self) -> None:  # the main thread owns signals
        pass

    @contextmanager
    def running(self, health_url: str, timeout: float = 15.0) -> Iterator[None]:
        thread = threading.Thread(target=self.run, name="emulator", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(health_url, timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"emulator did not start at {health_url}")
            time.sleep(0.05)
        try:
            yield
        finally:
            self.should_exit = True
            thread.join(timeout=5)


def callback_url(ctx: Context, appid: str) -> str:
    base = ctx.config.web.public_url or f"http://{ctx.config.web.host}:{ctx.config.web.port}"
    return f"{base.rstrip('/')}/wechat/callback/{appid}"


def register_emulator_accounts(ctx: Context, emulator_url: str | None = None) -> None:
    """Tell the emulator about our accounts, as an admin would configure them on the real platforms."""
    emulator_url = emulator_url or ctx.config.emulator_url
    for acc in ctx.config.accounts:
        if acc.platform == "wechat":
            body = {"platform": "wechat", "appid": acc.appid, "secret": acc.secret, "token": acc.token,
                    "encoding_aes_key": acc.encoding_aes_key or None, "encrypt": acc.message_mode == "aes",
                    "callback_url": callback_url(ctx, acc.appid), "original_id": f"gh_{acc.appid[-12:]}"}
        else:
            body = {"platform": "weibo", "access_token": acc.access_token, "uid": acc.uid, "screen_name": acc.name}
        httpx.post(f"{emulator_url}/_emulator/accounts", json=body, timeout=5).raise_for_status()


@contextmanager
def emulator_running(ctx: Context) -> Iterator[None]:
    if not ctx.config.emulator.enabled:
        yield
        return
    from bot.emulator.app import create_app
    from bot.emulator.state import EmulatorState

    em = ctx.config.emulator
    state = EmulatorState(state_file=ctx.config.path(em.state_file))
    app = create_app(state, demo=em.demo, demo_interval_s=em.demo_interval_s)
    server = ThreadedServer(uvicorn.Config(app, host=em.host, port=em.port, log_level="warning", log_config=None))
    with server.running(f"{ctx.config.emulator_url}/_emulator/health"):
        register_emulator_accounts(ctx)
        logger.info("platform emulator at {}", ctx.config.emulator_url)
        yield


def run_web(ctx: Context) -> None:
    """The web app under uvicorn: in this process, or in web.workers processes sharing the port
    (each opens its own database connections; the background worker stays in this process)."""
    from bot.web.app import create_app

    web = ctx.config.web
    if web.workers == 1:
        uvicorn.run(create_app(ctx), host=web.host, port=web.port, log_level="warning", access_log=False,
                    log_config=None)  # its records go through bot.logs (redacted)
        return
    if ctx.config.source != "<defaults>":
        os.environ["GOVBOT_CONFIG"] = ctx.config.source  # read again by each web process
    uvicorn.run("bot.web.app:app_from_config", factory=True, workers=web.workers, host=web.host, port=web.port,
                log_level="warning", access_log=False, log_config=None)


def serve(ctx: Context, *, worker: bool = True) -> None:
    from bot.worker import build_scheduler

    prepare(ctx)
    cfg = ctx.config
    with emulator_running(ctx):
        scheduler = build_scheduler(ctx) if worker else None
        if scheduler is not None:
            scheduler.start()
        web = f"http://{cfg.web.host}:{cfg.web.port}"
        print(f"govbot console  {web}/", flush=True)
        print(f"JSON API        {web}/api/docs", flush=True)
        print(f"health          {web}/healthz", flush=True)
        if cfg.emulator.enabled:
            print(f"emulator        {cfg.emulator_url}/_emulator/state", flush=True)
        try:
            run_web(ctx)
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=True)


def run_worker(ctx: Context) -> None:
    """A worker process without web (scale-out): ticks until SIGTERM/SIGINT."""
    from bot.worker import build_scheduler

    prepare(ctx)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    scheduler = build_scheduler(ctx)
    scheduler.start()
    print(f"worker {ctx.worker_id} running", flush=True)
    stop.wait()
    scheduler.shutdown(wait=True)
