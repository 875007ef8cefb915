"""WeChat covers already in an account's permanent material library (永久素材), by the image's sha256.

A column's articles commonly share one cover. Uploading it again for every article would fill the
library, which has a hard cap (新增永久素材: 图片素材上限为100000), and cost a call per article. The
entries live in the CoverMaterial table, shared by every worker process; each process keeps the ones it
has read or written in memory too (a lookup per article, saved). An entry is only a hint: when WeChat
refuses its media_id (40007, e.g. an officer deleted the image in the library), the connector forgets
it and uploads the cover again (bot.connectors.wechat), and so does another process that still held it.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from bot.clock import utcnow
from bot.db import write_lock
from bot.models import CoverMaterial

_cover = CoverMaterial.__table__.c
# Statements built once: a lookup runs per article.
_LOOKUP = select(_cover.media_id).where(_cover.account_id == bindparam("p_account"), _cover.sha256 == bindparam("p_sha"))
_FORGET = delete(CoverMaterial.__table__).where(_cover.account_id == bindparam("p_account"),
                                                _cover.sha256 == bindparam("p_sha"),
                                                _cover.media_id == bindparam("p_media"))


@functools.cache
def _remember_statement(dialect: str) -> Any:
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect](CoverMaterial.__table__).values(
        account_id=bindparam("p_account"), sha256=bindparam("p_sha"), media_id=bindparam("p_media"),
        created_at=bindparam("p_now"))
    # Two workers that uploaded the same cover at once: the later upload is kept (both are valid).
    return insert.on_conflict_do_update(index_elements=["account_id", "sha256"],
                                        set_={"media_id": insert.excluded.media_id,
                                              "created_at": insert.excluded.created_at})


class CoverLibrary:
    """The covers one WeChat account holds as permanent material."""

    def __init__(self, engine: Engine, account_id: int):
        self.engine, self.account_id = engine, account_id
        self._known: dict[str, str] = {}  # sha256 -> media_id, as this process last read or wrote it

    def media_id(self, sha256: str) -> str | None:
        known = self._known.get(sha256)
        if known is None:
            with self.engine.connect() as conn:
                known = conn.execute(_LOOKUP, {"p_account": self.account_id, "p_sha": sha256}).scalar_one_or_none()
            if known is not None:
                self._known[sha256] = known
        return known

    def remember(self, sha256: str, media_id: str) -> None:
        with write_lock(self.engine), self.engine.begin() as conn:
            conn.execute(_remember_statement(conn.dialect.name), {"p_account": self.account_id, "p_sha": sha256,
                                                                  "p_media": media_id, "p_now": utcnow()})
        self._known[sha256] = media_id

    def forget(self, sha256: str, media_id: str) -> None:
        """Drop the entry if it still names `media_id` (another worker may have replaced it meanwhile)."""
        if self._known.get(sha256) == media_id:
            del self._known[sha256]
        with write_lock(self.engine), self.engine.begin() as conn:
            conn.execute(_FORGET, {"p_account": self.account_id, "p_sha": sha256, "p_media": media_id})
