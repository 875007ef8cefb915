"""A worker killed (SIGKILL) after the platform accepted a post but before the database heard of it.

The emulator runs in this process; the workers are real `govbot worker` processes. The platforms
accept the post and then hang (fault accept_then_hang), the worker is killed while it waits, and a
new worker must find the post on the platform instead of publishing it a second time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.config import Config
from bot.context import Context
from bot.emulator.testing import EmulatorAdmin, run_emulator
from bot.models import AuditEvent, Post, Publication
from bot.service import register_emulator_accounts
from tests.test_scheduler_support import (
    Worker,
    accounts,
    copies,
    schedule,
    signed_post,
    wait_for,
    worker_config,
)

pytestmark = pytest.mark.slow  # real worker processes, one SIGKILLed

WECHAT, WEIBO = "示例县发布", "示例县发布微博"
# No callback server: submitted WeChat jobs are settled by the freepublish/get checks.
CONFIG = {"scheduler": {"tick_seconds": 0.2, "lease_seconds": 5, "backoff_base_s": 0.2, "backoff_max_s": 1.0,
                        "publish_status_checks_s": [0.5, 1.0]},
          # Longer than the kill takes: the killed worker is still waiting for the answer when it dies.
          "platforms": {"wechat": {"timeout_s": 30.0}, "weibo": {"timeout_s": 30.0}},
          "polling": {"interval_s": 600.0}}


def test_sigkill_after_the_platform_accepted_leaves_one_copy(tmp_path: Path, open_ctx: Callable[[Config], Context]):
    with run_emulator() as url, EmulatorAdmin(url) as admin:
        config_path, config = worker_config(tmp_path, url, CONFIG)
        ctx = open_ctx(config)
        register_emulator_accounts(ctx, emulator_url=url)
        admin.fault("wechat", "freepublish/submit", "accept_then_hang", delay_s=60)
        admin.fault("weibo", "statuses/share.json", "accept_then_hang", delay_s=60)
        with ctx.session() as s:
            post = signed_post(s, config, title="关于开展安全生产大检查的通知")
            accs = accounts(s)
            ids = [schedule(s, post, accs[name]).id for name in (WECHAT, WEIBO)]

        first = Worker(config_path, tmp_path / "worker1.log")
        try:
            first.wait_running()

            def accepted() -> bool:
                state = admin.state()
                return bool(state["wechat"]["publishes"]) and bool(state["weibo"]["statuses"])

            wait_for(accepted, timeout=60, what="the platforms to accept the post")
        finally:
            first.kill()

        with Session(ctx.engine) as s:
            rows = {p.account_id: p for p in s.exec(select(Publication).where(Publication.id.in_(ids)))}
            wechat, weibo = rows[accs[WECHAT].id], rows[accs[WEIBO].id]
        # The attempt was on record before the calls; the answers never were.
        assert wechat.state == weibo.state == "publishing"
        assert wechat.step == "submit" and wechat.remote_draft_id and wechat.remote_publish_id is None
        assert weibo.step == "started" and weibo.remote_id is None

        second = Worker(config_path, tmp_path / "worker2.log")
        try:
            second.wait_running()

            def published() -> bool:
                with Session(ctx.engine) as s:
                    states = s.exec(select(Publication.state).where(Publication.id.in_(ids))).all()
                    return set(states) == {"published"} and s.get(Post, post.id).status == "published"

            wait_for(published, timeout=60, what="the publications to be published")
        finally:
            assert second.stop() == 0, second.log()[-3000:]

        state = admin.state()
        assert copies(state, title=post.title) == 1
        assert copies(state, weibo_text=post.weibo_text) == 1
        assert admin.state()["counters"]["calls"]["wechat freepublish/submit"] == 1
        assert admin.state()["counters"]["calls"]["weibo statuses/share.json"] == 1
        with Session(ctx.engine) as s:
            pubs = s.exec(select(Publication).where(Publication.id.in_(ids))).all()
            assert all(p.attempts == 2 and p.remote_id for p in pubs)
            assert s.get(Post, post.id).status == "published"
            published_events = s.exec(select(AuditEvent).where(AuditEvent.action == "publication.published")).all()
        assert [e.detail["reconciled"] for e in published_events] == [True, True]
        assert "found on the platform after an interrupted attempt" in second.log()
