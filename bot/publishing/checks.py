"""Pre-publish checks (发布前检查): run at submission and again just before publishing.

`check_post` is pure: text in, problems out (bot.textcheck.Problem, with the field, line and column).
Besides the word checks of bot.textcheck (sensitive terms, typos) it checks what the platforms
refuse: lengths, links, images, the cover.

`recheck_publication` is the one entry point that reads the database: the scheduler calls it
right before a publication goes out. It reloads the rule files only when they changed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlmodel import Session, select

from bot.config import Config
from bot.publishing.weibo_length import hashtags, weibo_cut, weibo_length
from bot.textcheck import (
    SNIPPET_CONTEXT,
    CheckRules,
    Problem,
    check_sensitive,
    check_typos,
    problem,
    rules_for,
    snippet_of,
    text_position,
)

# Platform limits that are facts of the platforms' APIs, not settings (Draft_Box/Add_draft.html).
WECHAT_AUTHOR_MAX_CHARS = 16  # draft/add answers 45110 above it
WECHAT_DIGEST_MAX_CHARS = 128  # draft/add answers 45004 above it
WECHAT_CONTENT_MAX_CHARS = 20000  # content 必须少于2万字符 (且小于1M: never reached below 20,000 characters)
# Images WeChat keeps in an article: those uploaded by media/uploadimg (govbot uploads its "/media/<id>" ones).
WECHAT_IMAGE_HOSTS = ("mmbiz.qpic.cn", "mmbiz.qlogo.cn")
_IMG_SRC = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*["']([^"']*)["']""", re.I)
WECHAT_IMAGE_MAX_BYTES = 10 * 1024 * 1024  # material/add image: 40009 above it
WEIBO_PIC_MAX_BYTES = 5 * 1024 * 1024  # statuses/share pic: 20006 above it
WECHAT_IMAGE_KINDS = ("jpeg", "png", "gif", "bmp")
WEIBO_IMAGE_KINDS = ("jpeg", "png", "gif")


_URL = re.compile(r"https?://[^\s<>\"'，。；、！？）)」』【】]+", re.I)
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class CoverInfo:
    """What the checks need to know about a cover image (not the bytes themselves)."""

    filename: str
    size: int
    kind: str | None  # jpeg | png | gif | bmp, from the file's first bytes; None: not an image


def image_kind(data: bytes) -> str | None:
    """The image format from the file's magic bytes, as the platforms judge it (not the name or MIME)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return None


# ---- the checks ---------------------------------------------------------------------------------


def _visible_text(body: str) -> str:
    return html.unescape(_TAG.sub("", body)).replace("\xa0", " ").strip(" \t\r\n\u3000")


def _links_to(text: str, domain: str) -> tuple[bool, list[str]]:
    domain = domain.lower().strip(".")
    hosts = []
    for m in _URL.finditer(text):
        host = (urlsplit(m.group(0)).hostname or "").lower()
        hosts.append(host)
        if host == domain or host.endswith("." + domain):
            return True, hosts
    return False, hosts


def _external_images(body: str) -> list[str]:
    """Body images WeChat would filter out: neither uploaded to govbot (/media/<id>) nor WeChat's own."""
    out = []
    for src in _IMG_SRC.findall(body):
        src = html.unescape(src).strip()
        host = (urlsplit(src).hostname or "").lower()
        if not src.startswith("/media/") and host not in WECHAT_IMAGE_HOSTS:
            out.append(src)
    return out


def check_post(*, title: str, body: str, digest: str = "", weibo_text: str = "", cover: CoverInfo | None = None,
               platforms: Iterable[str] = (), config: Config, rules: CheckRules, byline: str = "") -> list[Problem]:
    """Every check for a post going to `platforms` (wechat, weibo). Empty list: fine to publish."""
    targets = set(platforms)
    problems: list[Problem] = []
    if not title.strip():
        problems.append(problem("empty_title", "title"))
    if not _visible_text(body) and "<img" not in body.lower():
        problems.append(problem("empty_body", "body"))

    fields = [("title", title), ("digest", digest), ("body", body), ("weibo_text", weibo_text)]
    for field, text in fields:
        if text:
            problems += check_sensitive(field, text, rules)
    for field, text in fields:
        if text:
            problems += check_typos(field, text, rules)

    if "wechat" in targets:
        wechat = config.platforms.wechat
        if len(title) > wechat.title_max_chars:
            problems.append(problem("wechat_title_too_long", "title", offset=wechat.title_max_chars, line=1,
                                    column=wechat.title_max_chars + 1,
                                    snippet=snippet_of(title, wechat.title_max_chars,
                                                     min(len(title), wechat.title_max_chars + SNIPPET_CONTEXT)),
                                    limit=wechat.title_max_chars, length=len(title)))
        if len(digest) > WECHAT_DIGEST_MAX_CHARS:
            problems.append(problem("wechat_digest_too_long", "digest", limit=WECHAT_DIGEST_MAX_CHARS, length=len(digest)))
        if len(byline) > WECHAT_AUTHOR_MAX_CHARS:
            problems.append(problem("wechat_author_too_long", "byline", limit=WECHAT_AUTHOR_MAX_CHARS, length=len(byline)))
        if len(body) > WECHAT_CONTENT_MAX_CHARS:
            problems.append(problem("wechat_body_too_long", "body", limit=WECHAT_CONTENT_MAX_CHARS, length=len(body)))
        for src in _external_images(body):
            problems.append(problem("wechat_external_image", "body", src=src[:80]))
        if cover is None:
            problems.append(problem("wechat_cover_missing", "cover"))
        elif cover.kind not in WECHAT_IMAGE_KINDS:
            problems.append(problem("wechat_cover_invalid", "cover", name=cover.filename))
        elif cover.size > WECHAT_IMAGE_MAX_BYTES:
            problems.append(problem("wechat_cover_invalid", "cover", text_code="check.wechat_cover_too_big", name=cover.filename, size=cover.size,
                                    limit=WECHAT_IMAGE_MAX_BYTES))

    if "weibo" in targets:
        weibo = config.platforms.weibo
        if not weibo_text.strip():
            problems.append(problem("weibo_text_missing", "weibo_text"))
        else:
            limit = weibo.long_post_max_chars if weibo.allow_long_posts else weibo.max_chars
            length = weibo_length(weibo_text)
            if length > limit:
                kind = "long posts" if weibo.allow_long_posts else "posts (long posts are switched off)"
                cut = weibo_cut(weibo_text, limit)
                line, column = text_position(weibo_text, cut)
                problems.append(problem("weibo_text_too_long", "weibo_text", offset=cut, line=line, column=column,
                                        snippet=snippet_of(weibo_text, cut, min(len(weibo_text), cut + SNIPPET_CONTEXT)),
                                        kind=kind, limit=limit, length=length))
            for m in hashtags(weibo_text):
                line, column = text_position(weibo_text, m.start())
                problems.append(problem("weibo_hashtag", "weibo_text", offset=m.start(), line=line, column=column,
                                        snippet=snippet_of(weibo_text, m.start(), m.end()), tag=m.group(0)))
            ok, hosts = _links_to(weibo_text, weibo.safe_domain)
            if not ok:
                found = f" (it links to {', '.join(hosts)})" if hosts else ""
                found_zh = f"（现链接到 {'、'.join(hosts)}）" if hosts else ""
                problems.append(problem("weibo_link_missing", "weibo_text", domain=weibo.safe_domain, found=found,
                                        found_zh=found_zh))
        if cover is not None and cover.kind not in WEIBO_IMAGE_KINDS:
            problems.append(problem("weibo_picture_invalid", "cover", name=cover.filename))
        elif cover is not None and cover.size > WEIBO_PIC_MAX_BYTES:
            problems.append(problem("weibo_picture_invalid", "cover", text_code="check.weibo_picture_too_big", name=cover.filename, size=cover.size,
                                    limit=WEIBO_PIC_MAX_BYTES))
    return problems


# ---- the scheduler's last look ------------------------------------------------------------------


def cover_info(*, session: Session, media_id: int | None) -> CoverInfo | None:
    """The cover's name, size and kind without loading the whole image."""
    return cover_infos(session=session, media_ids=[media_id]).get(media_id) if media_id is not None else None


def cover_infos(*, session: Session, media_ids: Iterable[int]) -> dict[int, CoverInfo]:
    """cover_info of several covers, in one query."""
    from bot.models import Media

    ids = set(media_ids)
    if not ids:
        return {}
    rows = session.exec(select(Media.id, Media.filename, func.length(Media.data), func.substr(Media.data, 1, 16))
                        .where(Media.id.in_(ids)))
    return {row[0]: CoverInfo(row[1], int(row[2] or 0), image_kind(bytes(row[3] or b""))) for row in rows}


def recheck_publication(*, session: Session, ctx, publication) -> list[Problem]:
    """Right before publishing: the content is still the signed version, the chain is complete, the
    account is enabled, and every check passes for the account's platform. Empty list: go ahead."""
    return recheck_publications(session=session, ctx=ctx, publications=[publication])[publication.id]


def recheck_publications(*, session: Session, ctx, publications: list) -> dict[int, list[Problem]]:
    """recheck_publication of a batch (a burst of due posts), by publication id: one query each for the
    sign-offs and the covers, whatever the batch's size."""
    from bot.models import Account, Post, SignOff
    from bot.publishing.signoff import chain_state

    post_ids = {p.post_id for p in publications}
    # session.get: rows the caller loaded in this session already cost no query.
    posts = {i: session.get(Post, i) for i in post_ids}
    accounts = {i: session.get(Account, i) for i in {p.account_id for p in publications}}
    signoffs: dict[int, list] = {post_id: [] for post_id in post_ids}
    for signoff in session.exec(select(SignOff).where(SignOff.post_id.in_(post_ids))
                                .order_by(SignOff.created_at, SignOff.id)):
        signoffs[signoff.post_id].append(signoff)
    covers = cover_infos(session=session, media_ids=[p.cover_media_id for p in posts.values()
                                                     if p.cover_media_id is not None])
    rules = rules_for(ctx.config)
    found: dict[int, list[Problem]] = {}
    for publication in publications:
        post, account = posts.get(publication.post_id), accounts.get(publication.account_id)
        if post is None or account is None:
            found[publication.id] = [problem("missing", "post", publication_id=publication.id)]
            continue
        problems: list[Problem] = []
        if publication.content_hash != post.content_hash:
            problems.append(problem("content_changed", "post", post_id=post.id, version=post.version))
        chain = chain_state(stages=ctx.config.signoff.stages, post=post, signoffs=signoffs[post.id])
        if not chain.complete:
            problems.append(problem("not_signed", "post", post_id=post.id, version=post.version,
                                    next_stage=chain.next_stage.name))
        if not account.enabled:
            problems.append(problem("account_disabled", "account", name=account.name))
        problems += check_post(title=post.title, body=post.body, digest=post.digest, weibo_text=post.weibo_text,
                               byline=post.byline, cover=covers.get(post.cover_media_id),
                               platforms=[account.platform], config=ctx.config, rules=rules)
        found[publication.id] = problems
    return found
