"""Sina Weibo connector (政务微博) over httpx against the open API v2.

A status goes out in one call (`statuses/share.json`, cover as `pic`), so there are no intermediate
ids to resume from: reconciling means looking for our exact text on the account's timeline. Weibo
rewrites links to t.cn short links, so texts are compared with every link masked.
"""

from __future__ import annotations

import functools
import re
import ssl
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import certifi
import httpx
from loguru import logger

from bot.connectors.base import (
    CommentPage,
    OutgoingPost,
    PermanentError,
    ProgressFn,
    PublishResult,
    RemoteComment,
    ReplyRefused,
    Stats,
    TransientError,
)

PLATFORM = "weibo"
RATE_LIMITED = {10022, 10023, 10024}  # IP / user / user-per-API hourly limits
TOO_FAST = {20016}  # too many posts in the hour
REPEATED = {20017, 20019, 20111}  # repeated text: maybe our own earlier attempt
TOKEN_INVALID = {21301, 21314, 21315, 21316, 21317, 21319, 21327, 21332, 21501}
SYSTEM_BUSY = {10001, 10002, 10009, 10010}
TARGET_GONE = {20101, 20201}  # the status or comment replied to no longer exists
# Weibo refuses the same text by the same user within a day.
REPEAT_WINDOW = timedelta(hours=24)
TIMELINE_PAGE = 100
TIMELINE_PAGES = 10
COMMENT_PAGE = 200
COMMENT_PAGES = 50
URL_RE = re.compile(r"https?://[^\s<>\"'，。；！？、）)]+")


class RepeatedContent(PermanentError):
    """Weibo says the text was already posted: reconcile before believing it is someone else's."""


def comparable(text: str) -> str:
    """The text as Weibo lists it, give or take links (they come back as t.cn short links)."""
    return URL_RE.sub("\x00", text).strip()


_tls_lock = threading.Lock()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def tls_context() -> ssl.SSLContext:
    """One TLS context per process: each one loads the whole CA bundle, slow to repeat per account."""
    with _tls_lock:
        return _tls_context()


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%a %b %d %H:%M:%S %z %Y").astimezone(UTC)


class WeiboConnector:
    platform = PLATFORM

    def __init__(self, *, uid: str, access_token: str, api_base: str, timeout: float):
        self.uid = uid
        self.http = httpx.Client(base_url=api_base if api_base.endswith("/") else api_base + "/", timeout=timeout,
                                 headers={"Authorization": f"OAuth2 {access_token}"}, verify=tls_context())

    # ---- plumbing -----------------------------------------------------------------------

    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 data: dict[str, Any] | None = None, files: dict[str, Any] | None = None) -> Any:
        try:
            res = self.http.request(method, path, params=params, data=data, files=files)
        except httpx.HTTPError as e:
            raise TransientError(PLATFORM, None, f"{path}: {type(e).__name__}: {e}") from e
        try:
            body = res.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("error_code"):
            raise self._error(path, body, res.status_code)
        if res.status_code >= 500 or res.status_code == 429:
            raise TransientError(PLATFORM, None, f"{path}: HTTP {res.status_code}")
        if res.status_code >= 400:
            raise PermanentError(PLATFORM, None, f"{path}: HTTP {res.status_code}")
        if body is None:
            raise TransientError(PLATFORM, None, f"{path}: HTTP {res.status_code}, answer is not JSON")
        return body

    def _error(self, path: str, body: dict[str, Any], http_status: int) -> Exception:
        code = int(body["error_code"])
        text = f"{path}: {body.get('error', '')}"
        if code in RATE_LIMITED:
            return TransientError(PLATFORM, code, text, retry_after=self._rate_limit_reset())
        if code in TOO_FAST or code in SYSTEM_BUSY or http_status >= 500:
            return TransientError(PLATFORM, code, text)
        if code in REPEATED:
            return RepeatedContent(PLATFORM, code, text)
        if code in TOKEN_INVALID:
            return PermanentError(PLATFORM, code, f"{text} (access token expired or invalid: authorise the app again)")
        if code in TARGET_GONE:
            return ReplyRefused(PLATFORM, code, text)
        return PermanentError(PLATFORM, code, text)

    def _rate_limit_reset(self) -> float | None:
        """Seconds until the hourly limit resets, as the platform reports it (this call is not counted)."""
        try:
            status = self.http.get("account/rate_limit_status.json").json()
        except (httpx.HTTPError, ValueError):
            return None
        seconds = status.get("reset_time_in_seconds") if isinstance(status, dict) else None
        return float(seconds) if isinstance(seconds, (int, float)) else None

    # ---- publishing ---------------------------------------------------------------------

    def prepare(self, post: OutgoingPost, *, progress: ProgressFn, resume: dict[str, str]) -> None:
        """Nothing to do ahead: a status goes out in one call."""

    def discard(self, *, resume: dict[str, str]) -> bool:
        return False

    def publish(self, post: OutgoingPost, *, progress: ProgressFn, resume: dict[str, str]) -> PublishResult:
        files = {"pic": (post.cover.filename, post.cover.data, post.cover.mime)} if post.cover else None
        try:
            body = self._request("POST", "statuses/share.json", data={"status": post.weibo_text}, files=files)
        except RepeatedContent:
            found = self.find_published(post, since=datetime.now(UTC) - REPEAT_WINDOW, resume=resume)
            if found is None:
                raise
            logger.info("weibo {}: repeated content is our own status {}", self.uid, found.remote_id)
            return found
        # Weibo's created_at has whole seconds only: the moment of the answer is more precise.
        return self._result(body, published_at=datetime.now(UTC))

    def _result(self, status: dict[str, Any], published_at: datetime | None = None) -> PublishResult:
        sid = str(status.get("idstr") or status["id"])
        if published_at is None and status.get("created_at"):
            published_at = parse_time(status["created_at"])
        return PublishResult(remote_id=sid, url=f"https://m.weibo.cn/status/{sid}", published_at=published_at)

    def find_published(self, post: OutgoingPost, *, since: datetime, resume: dict[str, str]) -> PublishResult | None:
        wanted = comparable(post.weibo_text)
        for page in range(1, TIMELINE_PAGES + 1):
            body = self._request("GET", "statuses/user_timeline.json",
                                 params={"uid": self.uid, "count": TIMELINE_PAGE, "page": page})
            statuses = body.get("statuses") or []
            for status in statuses:
                created = parse_time(status["created_at"])
                if created >= since and comparable(status.get("text", "")) == wanted:
                    return self._result(status)
            if len(statuses) < TIMELINE_PAGE or parse_time(statuses[-1]["created_at"]) < since:
                return None
        return None

    # ---- comments, messages, figures ----------------------------------------------------

    def list_comments(self, *, target: str, cursor: str) -> CommentPage:
        """Comments newer than `cursor` (a comment id): `target` "to_me" (all our statuses) or one status id."""
        since_id = int(cursor or 0)
        path, extra = ("comments/to_me.json", {}) if target == "to_me" else ("comments/show.json", {"id": target})
        found: list[RemoteComment] = []
        for page in range(1, COMMENT_PAGES + 1):
            body = self._request("GET", path, params={"since_id": since_id, "count": COMMENT_PAGE, "page": page,
                                                      **extra})
            comments = body.get("comments") or []
            found.extend(self._comment(c) for c in comments)
            if len(comments) < COMMENT_PAGE or not body.get("next_cursor"):
                break
        else:
            logger.warning("weibo {}: more than {} comments since {}, older ones in this window skipped",
                           self.uid, COMMENT_PAGE * COMMENT_PAGES, since_id)
        found.sort(key=lambda c: int(c.dedupe_key))
        newest = max([since_id, *(int(c.dedupe_key) for c in found)])
        return CommentPage(comments=found, cursor=str(newest))

    @staticmethod
    def _comment(raw: dict[str, Any]) -> RemoteComment:
        cid = str(raw.get("idstr") or raw["id"])
        status = raw.get("status") or {}
        sid = str(status.get("idstr") or status.get("id") or "")
        user = raw.get("user") or {}
        return RemoteComment(
            dedupe_key=cid, ref=sid, sender_id=str(user.get("idstr") or user.get("id") or ""),
            sender_name=str(user.get("screen_name", "")), text=str(raw.get("text", "")),
            created_at=parse_time(raw["created_at"]), reply_target={"cid": cid, "id": sid}, raw=dict(raw))

    def reply_comment(self, comment: RemoteComment | dict[str, str], text: str) -> str:
        target = comment.reply_target if isinstance(comment, RemoteComment) else comment
        body = self._request("POST", "comments/reply.json",
                             data={"cid": target["cid"], "id": target["id"], "comment": text})
        return str(body.get("idstr") or body.get("id") or "")

    def send_message(self, user_id: str, text: str) -> None:
        raise ReplyRefused(PLATFORM, None, "Weibo accounts cannot send private messages through the open API")

    def fetch_stats(self, result: PublishResult) -> Stats:
        rows = self._request("GET", "statuses/count.json", params={"ids": result.remote_id})
        row = next((r for r in rows if str(r.get("idstr") or r.get("id")) == result.remote_id), None)
        if row is None:
            return Stats()
        return Stats(likes=row.get("attitudes"), shares=row.get("reposts"), comments=row.get("comments"))

    def close(self) -> None:
        self.http.close()
