"""Data the browser scenarios start from, written through the same paths the service uses."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from sqlmodel import select

from bot.clock import utcnow
from bot.context import Context
from bot.emulator.testing import EmulatorAdmin
from bot.inbound.store import Incoming, ingest
from bot.models import Account, Post, Publication, User

STREETLIGHT = ("幸福路的路灯坏了好几天了，晚上一片漆黑，什么时候修？", "幸福路路灯坏了好几天了，晚上一片漆黑，什么时候修啊",
               "幸福路的路灯坏了好几天了，晚上黑漆漆一片，什么时候修？")


def weibo_comments(ctx: Context, emulator_url: str, texts: tuple[str, ...] | list[str],
                   responder: str = "zhujian") -> list[int]:
    """Comments under a Weibo post on the emulator, stored and ticketed as polling would; the tickets
    go to `responder`'s department. Returns the ticket ids (None for a message that needs no answer)."""
    status = httpx.post(f"{emulator_url}/weibo/2/statuses/share.json",
                        data={"access_token": "demo-weibo-token-0001",
                              "status": "幸福路路灯维修公告 http://gov.example.cn/n/2", "rip": "203.0.113.7"}).json()
    ids = []
    with EmulatorAdmin(emulator_url) as admin, ctx.session() as s:
        account = s.exec(select(Account).where(Account.name == "示例县发布微博")).one()
        person = s.exec(select(User).where(User.username == responder)).one()
        # The post the comments are under, as the scheduler records a publication.
        author = s.exec(select(User).where(User.username == "xuanchuan")).one()
        post = Post(title="幸福路路灯维修公告", body="幸福路路灯将于近期检修。", author_id=author.id, status="published",
                    content_hash="seed")
        s.add(post)
        s.flush()
        publication = Publication(post_id=post.id, account_id=account.id, state="published", due_at=utcnow(),
                                  next_attempt_at=utcnow(), remote_id=str(status["id"]), published_at=utcnow())
        s.add(publication)
        s.flush()
        for i, text in enumerate(texts):
            uid = 6000000200 + i
            c = admin.weibo_comment(status_id=status["id"], uid=uid, screen_name=f"幸福路居民{i + 1}", text=text)
            result = ingest(session=s, ctx=ctx, incoming=Incoming(
                account_id=account.id, kind="weibo_comment", dedupe_key=str(c["id"]), sender_id=str(uid),
                sender_name=f"幸福路居民{i + 1}", text=text, remote_ref=str(status["id"]), publication_id=publication.id,
                raw=json.dumps({"reply_target": {"cid": str(c["id"]), "id": str(status["id"])}}),
                received_at=utcnow() - timedelta(minutes=50 - i)))
            if result.ticket is not None:
                result.ticket.department_id = person.department_id
            ids.append(result.ticket.id if result.ticket else None)
    return ids
