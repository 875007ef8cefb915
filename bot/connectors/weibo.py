"""Sina Weibo connector (政务微博) over httpx against the open API v2.

A status goes out in one call (`statuses/share.json`, cover as `pic`, the poster's real IP as
`rip`), so there are no intermediate ids to resume from: reconciling means looking for our exact
text on the account's timeline. Weibo rewrites links to t.cn short links, so texts are compared with
every link masked. Every call is spent from the account's hourly budgets first (bot.connectors.quota:
all calls per the app's level, posts, comments); 10022-10024 and 20016 close the window instead of
failing. Error codes follow the official table (open.weibo.com/wiki/Error_code).
"""

from __future__ import annotations

import functools
import re
import socket
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
from bot.connectors.quota import Ledger

PLATFORM = "weibo"
# Error_code wiki: 10022 IP requests out of rate limit, 10023 user requests out of rate limit,
# 10024 user requests for (api) out of rate limit: the window is closed, never a failure.
RATE_LIMITED = {10022, 10023, 10024}
TOO_FAST = {20016}  # Error_code wiki: out of limit (update weibo too fast)
REPEATED = {20017, 20019, 20111}  # repeated text: maybe our own earlier attempt
# Error_code wiki 213xx: OAuth failures; 21327 expired_token, 21332 invalid_access_token.
TOKEN_INVALID = {21301, 21314, 21315, 21316, 21317, 21319, 21327, 21332}
# 10001 system error, 10002 service unavailable, 10009 too many pending tasks, 10010 job expired,
# 20032 "update success, while server slow now": the status may be there, reconcile finds it.
SYSTEM_BUSY = {10001, 10002, 10009, 10010, 20032}
# Official meanings officers see (Error_code wiki); 21501 is the short-URL API's "Urls is null".
MEANINGS = {
    10014: "应用的接口访问权限受限", 10016: "缺少必要参数", 10017: "参数值非法", 20003: "用户不存在",
    20005: "图片类型不支持（仅 JPG、GIF、PNG）", 20006: "图片太大", 20008: "内容为空", 20012: "内容超过字数限制",
    20018: "包含非法网址", 20019: "重复内容", 20020: "包含广告信息", 20021: "包含非法内容",
    21501: "Urls is null（短链接接口：网址为空）",
}
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


def budget_of(path: str) -> str | None:
    """The budget a call spends besides "calls": posting and commenting have their own hourly limits."""
    if path.startswith("statuses/share"):
        return "statuses/share"
    if path.startswith(("comments/create", "comments/reply")):
        return "comments"
    return None


@functools.cache
def own_address() -> str:
    """This machine's address, the `rip` sent when none is configured."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%a %b %d %H:%M:%S %z %Y").astimezone(UTC)


class WeiboConnector:
    platform = PLATFORM

    def __init__(self, *, uid: str, access_token: str, api_base: str, timeout: float, ledger: Ledger,
                 rip: str = ""):
        self.uid, self.ledger = uid, ledger
        self.rip = rip or own_address()
        self.http = httpx.Client(base_url=api_base if api_base.endswith("/") else api_base + "/", timeout=timeout,
                                 headers={"Authorization": f"OAuth2 {access_token}"}, verify=tls_context())

    # ---- plumbing -----------------------------------------------------------------------

    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 data: dict[str, Any] | None = None, files: dict[str, Any] | None = None, share: float = 1.0) -> Any:
        budget = budget_of(path)
        self.ledger.spend(*((budget, "calls") if budget else ("calls",)), share=share)
        try:
            request = self.http.build_request(method, path, params=params, data=data, files=files)
            # httpx streams a multipart body part by part, a socket write each (about fifteen for a post with
            # its picture, each a thread switch in a busy worker): read whole, it goes out in one.
            request.read()
            res = self.http.send(request)
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
        meaning = MEANINGS.get(code)
        text = f"{path}: {body.get('error', '')}" + (f" ({meaning})" if meaning else "")
        if code in RATE_LIMITED:
            # 10024 limits one API; 10022/10023 every call of the user (or IP).
            return self.ledger.closed_error((budget_of(path) or "calls") if code == 10024 else "calls", code, text)
        if code in TOO_FAST:
            return self.ledger.closed_error("statuses/share", code, text)
        if code in SYSTEM_BUSY or http_status >= 500:
            return TransientError(PLATFORM, code, text)
        if code in REPEATED:
            return RepeatedContent(PLATFORM, code, text)
        if code in TOKEN_INVALID:
            return PermanentError(PLATFORM, code, f"{text} (access token expired or invalid: authorise the app again)")
        if code in TARGET_GONE:
            return ReplyRefused(PLATFORM, code, text)
        return PermanentError(PLATFORM, code, text)

    # ---- publishing ---------------------------------------------------------------------

    def prepare(self, post: OutgoingPost, *, progress: ProgressFn, resume: dict[str, str]) -> None:
        """Nothing to do ahead: a status goes out in one call."""

    def discard(self, *, resume: dict[str, str]) -> bool:
        return False

    def publish(self, post: OutgoingPost, *, progress: ProgressFn, resume: dict[str, str]) -> PublishResult:
        files = {"pic": (post.cover.filename, post.cover.data, post.cover.mime)} if post.cover else None
        try:
            body = self._request("POST", "statuses/share.json", data={"status": post.weibo_text, "rip": self.rip},
                                 files=files)
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

    def list_comments(self, *, target: str, cursor: str, full: bool = False, share: float = 1.0) -> CommentPage:
        """Comments newer than `cursor` (a comment id): `target` "to_me" (all our statuses) or one status id.

        Weibo pages by comment id (since_id), so `full` changes nothing here."""
        since_id = int(cursor or 0)
        path, extra = ("comments/to_me.json", {}) if target == "to_me" else ("comments/show.json", {"id": target})
        found: list[RemoteComment] = []
        for page in range(1, COMMENT_PAGES + 1):
            body = self._request("GET", path, params={"since_id": since_id, "count": COMMENT_PAGE, "page": page,
                                                      **extra}, share=share)
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

    def warm_up(self) -> None:
        """Nothing: the HTTP client is made with the connector, and the access token is the account's own."""

    def close(self) -> None:
        self.http.close()
