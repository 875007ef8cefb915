"""Publishing as WeChat really limits it: the push settles posts, budgets are never overspent, and an
exhausted quota only delays. The emulator enforces the documented quotas; govbot's callback runs on
loopback so the emulator's PUBLISHJOBFINISH reaches it, as WeChat's would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from sqlmodel import Session, select

from bot.config import Config
from bot.connectors.quota import budget_overview, window_of
from bot.context import Context
from bot.emulator.state import EmulatorState
from bot.emulator.testing import EmulatorAdmin, run_emulator, serve_app
from bot.inbound.processing import process_pending
from bot.models import Post, Publication, SystemEvent
from bot.publishing.scheduler import Publisher
from bot.service import register_emulator_accounts
from bot.web.app import create_app
from tests.test_scheduler_support import accounts, schedule, signed_post, wait_for

WECHAT = "示例县发布"
APPID = "wxdemo0000000001"


@dataclass
class Live:
    ctx: Context
    admin: EmulatorAdmin
    publisher: Publisher

    def tick(self) -> None:
        """What a worker does meanwhile: the pushes received become events (inbound.process), then a publisher tick."""
        process_pending(self.ctx)
        self.publisher.tick()

    def calls(self, path: str) -> int:
        return self.admin.state()["counters"]["calls"].get(f"wechat {path}", 0)


@pytest.fixture
def live_factory(make_config: Callable[..., Config], open_ctx: Callable[[Config], Context]):
    """Emulator + govbot's web app (the callback) + a publisher, with config and emulator overrides."""
    opened: list = []

    def start(config: dict | None = None, emulator: dict | None = None) -> Live:
        em = run_emulator(EmulatorState(config=emulator or {}))
        url = em.__enter__()
        opened.append(em)
        ctx = open_ctx(make_config(config, emulator_url=url))
        register_emulator_accounts(ctx, emulator_url=url)
        web = serve_app(create_app(ctx))
        web_url = web.__enter__()
        opened.append(web)
        admin = EmulatorAdmin(url)
        # As an admin would enter it in 服务器配置: the emulator pushes to govbot's callback.
        admin.register_wechat(appid=APPID, secret="demo-appsecret-0001", token="demotoken0001",
                              callback_url=f"{web_url}/wechat/callback/{APPID}", original_id=f"gh_{APPID[-12:]}")
        publisher = Publisher(ctx)
        opened.append(publisher)
        return Live(ctx, admin, publisher)

    yield start
    for thing in reversed(opened):
        if isinstance(thing, Publisher):
            thing.stop()
        else:
            thing.__exit__(None, None, None)


def schedule_posts(ctx: Context, n: int, prefix: str) -> list[int]:
    with ctx.session() as s:
        account = accounts(s)[WECHAT]
        return [schedule(s, signed_post(s, ctx.config, title=f"{prefix}第{i + 1}号"), account).id for i in range(n)]


def states(ctx: Context, ids: list[int]) -> dict[int, str]:
    with Session(ctx.engine) as s:
        return dict(s.exec(select(Publication.id, Publication.state).where(Publication.id.in_(ids))).all())


def test_twenty_posts_in_a_day_settle_from_the_push_within_the_freepublish_get_budget(live_factory):
    # Documented quotas (emulator defaults); the fallback freepublish/get would come only after a minute.
    live = live_factory(emulator={"wechat_publish_delay_s": 0.5})
    ids = schedule_posts(live.ctx, 20, "通知")

    def all_published() -> bool:
        live.tick()
        return set(states(live.ctx, ids).values()) == {"published"}

    wait_for(all_published, timeout=60, what="20 publications published")
    with Session(live.ctx.engine) as s:
        account_id = accounts(s)[WECHAT].id
        budgets = {b.api: b for b in budget_overview(s, account_id, config=live.ctx.config)}
        pubs = s.exec(select(Publication).where(Publication.id.in_(ids))).all()
        events = s.exec(select(SystemEvent).where(SystemEvent.event == "publishjobfinish")).all()
    # Every article came with its push; freepublish/get was never needed, let alone overspent.
    assert budgets["freepublish/get"].used <= budgets["freepublish/get"].limit == 100
    assert live.calls("freepublish/get") == budgets["freepublish/get"].used == 0
    assert budgets["freepublish/submit"].used == live.calls("freepublish/submit") == 20
    assert len(events) == 20 and all("published" in e.outcome for e in events)
    articles = live.admin.state()["wechat"]["articles"]
    assert sorted(p.remote_id for p in pubs) == sorted(articles) and all(p.remote_url for p in pubs)
    assert all(p.published_at is not None and p.attempts == 0 for p in pubs)


def test_quota_exhausted_on_purpose_nothing_fails_and_everything_completes_next_window(live_factory):
    # Short windows stand in for days: both sides count in the same 8-second windows. The ledger allows
    # 4 submits a window, the platform only 3: the 4th gets 45009, which closes the window.
    window = 8
    live = live_factory(
        config={"quotas": {"wechat_window_s": window, "wechat": {"freepublish/submit": 4}}},
        emulator={"wechat_publish_delay_s": 0.3, "wechat_quota_window_s": window,
                  "wechat_quotas": {"freepublish/submit": 3}})
    # Start early in a window, so the first three surely go out in it.
    wait_for(lambda: (window_of(_now(), window).end - _now()).total_seconds() > window - 2, timeout=window + 1,
             what="the start of a window")
    first_window = window_of(_now(), window)
    ids = schedule_posts(live.ctx, 6, "停水")
    seen_states: set[str] = set()

    def progress() -> bool:
        live.tick()
        now = states(live.ctx, ids)
        seen_states.update(now.values())
        return set(now.values()) == {"published"}

    wait_for(progress, timeout=3 * window, what="6 publications published across windows")
    assert "failed" not in seen_states
    live.tick()  # a push may settle the last publication after a tick's settle_posts: this one settles its post
    with Session(live.ctx.engine) as s:
        pubs = sorted(s.exec(select(Publication).where(Publication.id.in_(ids))).all(), key=lambda p: p.published_at)
        assert {s.get(Post, p.post_id).status for p in pubs} == {"published"}
    in_first = [p for p in pubs if p.published_at < first_window.end]
    assert len(in_first) == 3  # what the platform took before it said 45009
    assert all(p.published_at >= first_window.end for p in pubs[3:])
    assert live.calls("freepublish/submit") == 7  # 3 + the refused one + 3 in the next window
    assert all(p.attempts == 0 for p in pubs)  # waiting is not an attempt


def _now():
    from bot.clock import utcnow

    return utcnow()


def test_push_delivered_twice_settles_once(live_factory):
    live = live_factory(emulator={"wechat_publish_delay_s": 0.3})
    [pub_id] = schedule_posts(live.ctx, 1, "重复推送")
    wait_for(lambda: (live.tick(), states(live.ctx, [pub_id])[pub_id] == "published")[1], timeout=30,
             what="published")
    with Session(live.ctx.engine) as s:
        pub = s.get(Publication, pub_id)
    push = live.admin.push(APPID, "publishjobfinish", publish_id=pub.remote_publish_id, publish_status=0,
                           article_id=pub.remote_id, article_urls=[pub.remote_url])
    assert push["ok"]
    process_pending(live.ctx)
    with Session(live.ctx.engine) as s:
        again = s.get(Publication, pub_id)
        outcomes = [e.outcome for e in s.exec(select(SystemEvent)).all()]
    assert (again.state, again.remote_id) == ("published", pub.remote_id)
    assert any("already published" in o for o in outcomes)
    assert httpx.get(f"{live.admin.base_url}/_emulator/health").status_code == 200


def test_status_checks_are_sparse_then_hourly():
    from bot.publishing.outcome import next_status_check

    checks = [60.0, 300.0, 1800.0, 3600.0]
    assert next_status_check(0, checks) == 60
    assert next_status_check(61, checks) == 239
    assert next_status_check(1800, checks) == 1800
    assert next_status_check(3600, checks) == 3600  # then every hour after the last
    assert next_status_check(3600 + 1000, checks) == 2600
    # A day of checks costs 27 freepublish/get calls at most: well within 100 a day, even for several posts.
    t, n = 0.0, 0
    while t < 86400:
        t += next_status_check(t, checks)
        n += 1
    assert n <= 27
