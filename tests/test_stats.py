"""Interaction figures: published posts get reads, likes, shares and comments from the platforms."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from bot.clock import utcnow
from bot.emulator.testing import EmulatorAdmin
from bot.models import Publication
from bot.publishing.stats import refresh_stats
from tests.test_scheduler import WECHAT, WEIBO, due, publisher, run, sctx  # noqa: F401  (fixtures)
from tests.test_scheduler_support import accounts


def test_figures_are_fetched_stored_and_refreshed_only_when_stale(sctx, publisher, emulator):  # noqa: F811
    _, ids = due(sctx, "冬季供暖保障工作的通知")
    pubs = run(publisher, ids)
    assert {p.state for p in pubs.values()} == {"published"}
    with Session(sctx.engine) as s:
        accs = accounts(s)
    wx, wb = (next(p for p in pubs.values() if p.account_id == accs[name].id) for name in (WECHAT, WEIBO))
    with EmulatorAdmin(emulator) as admin:
        admin._call("POST", "/wechat/comments", {"msg_data_id": wx.remote_msg_data_id, "index": 0,
                                                           "openid": "o1", "content": "点赞"})
        for i in range(2):
            admin._call("POST", "/weibo/comments", {"status_id": wb.remote_id, "uid": f"9{i}",
                                                             "screen_name": f"u{i}", "text": "辛苦了"})
        # The data cube answers for a day only once the day is over.
        admin.advance(2 * 86400)

    assert refresh_stats(sctx) == 2
    with Session(sctx.engine) as s:
        wx, wb = s.get(Publication, wx.id), s.get(Publication, wb.id)
        assert wx.comments == 1 and wx.reads is not None and wx.reads >= 0 and wx.stats_at is not None
        assert wb.comments == 2 and wb.likes is not None and wb.shares is not None
    # Fresh figures are not fetched again until polling.stats_interval_s has passed.
    assert refresh_stats(sctx) == 0
    later = utcnow() + timedelta(seconds=sctx.config.polling.stats_interval_s + 1)
    assert refresh_stats(sctx, now=later) == 2

