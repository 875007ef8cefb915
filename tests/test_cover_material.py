"""A WeChat cover is uploaded as permanent material (永久素材) once per account and image, then reused:
across articles, across connectors and worker processes (the entries live in the database), never
across accounts; an entry WeChat refuses (40007) is dropped and the cover uploaded again, once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlmodel import Session, select

from bot.config import Config
from bot.connectors.base import Cover, OutgoingPost, PermanentError
from bot.connectors.covers import CoverLibrary
from bot.connectors.registry import ledger_for
from bot.connectors.wechat import WeChatConnector
from bot.context import Context
from bot.emulator.testing import EmulatorAdmin, run_emulator
from bot.models import Account, CoverMaterial, Publication
from bot.service import register_emulator_accounts
from tests.test_scheduler_support import (
    Worker,
    accounts,
    png,
    schedule,
    settled,
    signed_post,
    wait_for,
    worker_config,
)

FIRST, SECOND = ("wxdemo0000000001", "demo-appsecret-0001"), ("wxdemo0000000002", "demo-appsecret-0002")


@dataclass
class Emu:
    admin: EmulatorAdmin
    ctx: Context

    def connector(self, appid_secret: tuple[str, str] = FIRST) -> WeChatConnector:
        appid, secret = appid_secret
        with Session(self.ctx.engine) as s:
            account = s.exec(select(Account).where(Account.remote_id == appid)).one()
        return WeChatConnector(appid=appid, secret=secret, engine=self.ctx.engine,
                               api_base=self.ctx.config.wechat_api_base, timeout=5.0,
                               ledger=ledger_for(self.ctx, account))

    def uploads(self) -> int:
        return self.admin.state()["counters"]["calls"].get("wechat material/add_material", 0)

    def thumbs(self) -> list[str]:
        """The thumb_media_id of every draft made, oldest first."""
        drafts = self.admin.state()["wechat"]["drafts"].values()
        return [item["thumb_media_id"] for d in sorted(drafts, key=lambda d: d["update_time"]) for item in d["news_item"]]

    def entries(self) -> dict[tuple[int, str], str]:
        with Session(self.ctx.engine) as s:
            return {(c.account_id, c.sha256): c.media_id for c in s.exec(select(CoverMaterial))}


@pytest.fixture
def emu(make_config: Callable[..., Config], open_ctx: Callable[[Config], Context]) -> Iterator[Emu]:
    with run_emulator() as url, EmulatorAdmin(url) as admin:
        ctx = open_ctx(make_config(emulator_url=url))
        register_emulator_accounts(ctx, emulator_url=url)
        yield Emu(admin, ctx)


def article(title: str, image: bytes | None = None) -> OutgoingPost:
    return OutgoingPost(publication_id=1, title=title, body=f"<p>{title}：详见正文。</p>",
                        cover=Cover("cover.png", image or png(), "image/png"))


def draft(wx: WeChatConnector, post: OutgoingPost) -> dict[str, str]:
    ids: dict[str, str] = {}
    wx.prepare(post, progress=lambda step, got: ids.update(got), resume={})
    return ids


def test_the_same_cover_is_uploaded_once_per_account_and_reused_by_a_new_connector(emu):
    wx = emu.connector()
    first = draft(wx, article("防汛通知"))
    second = draft(wx, article("防汛通知（二）"))
    wx.close()
    # A connector built afresh (as another worker process builds its own) finds it in the database.
    other = emu.connector()
    third = draft(other, article("防汛通知（三）"))
    other.close()
    assert emu.uploads() == 1
    assert first["media_id"] == second["media_id"] == third["media_id"]
    assert emu.thumbs() == [first["media_id"]] * 3


def test_different_bytes_and_other_accounts_get_their_own_upload(emu):
    wx, wx2 = emu.connector(FIRST), emu.connector(SECOND)
    a = draft(wx, article("通知甲", png(2, 2)))
    b = draft(wx, article("通知乙", png(3, 3)))
    c = draft(wx2, article("通知丙", png(2, 2)))
    wx.close()
    wx2.close()
    assert emu.uploads() == 3
    assert len({a["media_id"], b["media_id"], c["media_id"]}) == 3
    assert len(emu.entries()) == 3


def test_a_cover_deleted_from_the_library_is_uploaded_again_once(emu):
    wx = emu.connector()
    first = draft(wx, article("停水通知"))
    # An officer deletes the image in the material library (素材管理): WeChat now refuses its media_id.
    wx._post("material/del_material", {"media_id": first["media_id"]})
    second = draft(wx, article("停水通知（续）"))
    assert emu.uploads() == 2 and second["media_id"] != first["media_id"]
    assert emu.thumbs() == [first["media_id"], second["media_id"]]
    assert list(emu.entries().values()) == [second["media_id"]]
    # The new entry is the one used from then on.
    third = draft(wx, article("停水通知（再续）"))
    wx.close()
    assert third["media_id"] == second["media_id"] and emu.uploads() == 2


def test_a_process_still_holding_a_refused_entry_uploads_again_too(emu):
    one, two = emu.connector(), emu.connector()  # two worker processes' connectors of one account
    first = draft(one, article("路灯维修公告"))
    assert draft(two, article("路灯维修公告（二）"))["media_id"] == first["media_id"]
    one._post("material/del_material", {"media_id": first["media_id"]})
    second = draft(two, article("路灯维修公告（三）"))
    # `one` still holds the refused id in memory: refused, uploaded again, and its upload is the entry now.
    third = draft(one, article("路灯维修公告（四）"))
    one.close()
    two.close()
    assert len({first["media_id"], second["media_id"], third["media_id"]}) == 3 and emu.uploads() == 3
    assert list(emu.entries().values()) == [third["media_id"]]
    assert emu.thumbs()[-1] == third["media_id"]


def test_a_refused_stored_id_means_a_fresh_upload_and_a_fresh_refusal_is_an_error(emu):
    wx = emu.connector()
    account_id = wx.ledger.account_id
    digest = article("供暖通知").cover.digest()
    CoverLibrary(emu.ctx.engine, account_id).remember(digest, "stale-entry")
    # A resumed attempt's stored cover id (Publication.remote_media_id) that WeChat no longer knows: the
    # cover is uploaded again, never taken from an entry that may be as stale.
    ids: dict[str, str] = {"media_id": "gone-media-id"}
    wx.prepare(article("供暖通知"), progress=lambda step, got: ids.update(got), resume=dict(ids))
    assert ids["media_id"] not in ("gone-media-id", "stale-entry") and "draft_id" in ids
    assert emu.uploads() == 1 and emu.entries() == {(account_id, digest): ids["media_id"]}

    # A cover refused right after its upload is not uploaded again: an error, not a loop.
    def delete_it(step: str, got: dict[str, str]) -> None:
        if step == "draft":
            wx._post("material/del_material", {"media_id": got["media_id"]})

    with pytest.raises(PermanentError) as refused:
        wx.prepare(article("供暖通知（二）", png(4, 4)), progress=delete_it, resume={})
    wx.close()
    assert refused.value.code == 40007 and emu.uploads() == 2


def test_worker_processes_share_the_cover(tmp_path, make_config):
    """Two real worker processes one after the other on one database: the second reuses the first's upload."""
    with run_emulator() as url, EmulatorAdmin(url) as admin:
        config_path, config = worker_config(tmp_path, url, {"scheduler": {"publish_status_checks_s": [0.3, 0.5]}})
        ctx = Context.open(config)
        try:
            from bot import db
            from bot.service import prepare

            db.upgrade(config.database_url)
            prepare(ctx)
            register_emulator_accounts(ctx, emulator_url=url)
            for k, title in enumerate(["环保督查通报", "环保督查通报（二）"]):
                with ctx.session() as s:
                    post = signed_post(s, ctx.config, title=title)
                    pub_id = schedule(s, post, accounts(s)["示例县发布"]).id
                worker = Worker(config_path, tmp_path / f"worker{k}.log")
                try:
                    worker.wait_running()
                    wait_for(lambda i=pub_id: settled(lambda: Session(ctx.engine), [i]), timeout=30,
                             what=f"publication {pub_id}")
                finally:
                    worker.stop()
            with Session(ctx.engine) as s:
                pubs = list(s.exec(select(Publication)))
            assert {p.state for p in pubs} == {"published"}
            assert len({p.remote_media_id for p in pubs}) == 1
            assert admin.state()["counters"]["calls"].get("wechat material/add_material", 0) == 1
        finally:
            ctx.close()
