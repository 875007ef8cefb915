"""The one small interface every platform connector implements.

A connector turns govbot's platform-neutral requests into one platform's API calls and the answers
back into platform-neutral results; it never touches the database or calls handlers. Errors are
classified once, here: TransientError (retry with backoff) or PermanentError (stop, show the
platform's message). The same code serves the real platforms and the built-in emulator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.errors import GovbotError, platform_zh


class PlatformError(GovbotError):
    """An error answer (or no answer) from a platform."""

    transient = False

    def __init__(self, platform: str, code: str | int | None, message: str):
        super().__init__("platform.error", platform=platform, platform_code=code, message=message)
        # `code` stays the platform's own code (45009, 88005): connectors and callers compare it.
        self.platform, self.code, self.message = platform, code, message

    @property
    def error_code(self) -> str:
        return "platform.error"

    @property
    def message_en(self) -> str:
        p = self.params
        return f"{p['platform']} error {p['platform_code']}: {p['message']}" if p["platform_code"] is not None \
            else f"{p['platform']}: {p['message']}"

    @property
    def message_zh(self) -> str:
        return platform_zh(self.params["platform"], self.params["platform_code"], self.params["message"])


class TransientError(PlatformError):
    """Worth retrying later: 5xx, time-outs, connection errors, rate limits."""

    transient = True

    def __init__(self, platform: str, code: str | int | None, message: str, retry_after: float | None = None):
        super().__init__(platform, code, message)
        self.retry_after = retry_after


class PermanentError(PlatformError):
    """Retrying will not help: token revoked, content rejected, quota exhausted, bad request."""


class ConfigurationError(PermanentError):
    """The account's set-up is wrong (AppSecret, IP whitelist, appid): `advice` says what to fix, in Chinese."""

    def __init__(self, platform: str, code: str | int | None, message: str, advice: str):
        self.advice = advice
        super().__init__(platform, code, f"{message}: {advice}")


class AwaitingOutcome(TransientError):
    """The platform accepted the post and has not reported the outcome yet (WeChat publish job running).

    Never a failure: the publication waits for the push (PUBLISHJOBFINISH) or its next status check.
    """


class ReplyRefused(PermanentError):
    """The platform refuses this reply (already replied: WeChat 88005; 48-hour window closed: 45015)."""


@dataclass(frozen=True)
class Cover:
    filename: str
    data: bytes
    mime: str
    sha256: str = ""  # of data, when the caller has it (Media.sha256); computed when empty

    def digest(self) -> str:
        return self.sha256 or hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class OutgoingPost:
    """What one publication sends. `publication_id` makes logs traceable; it is not sent."""

    publication_id: int
    title: str
    body: str  # HTML for WeChat articles
    digest: str = ""
    weibo_text: str = ""
    cover: Cover | None = None
    author: str = ""  # WeChat 作者 (byline)
    open_comment: bool = True  # WeChat need_open_comment
    # Images inside the body by their src in `body` (e.g. "/media/12"), uploaded before the draft.
    images: dict[str, Cover] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishResult:
    remote_id: str  # WeChat article_id / Weibo status id
    url: str | None = None
    msg_data_id: str | None = None  # WeChat: what comments are listed by
    # When the platform took the post: our clock at its answer, or the platform's own time for a post
    # found again by find_published; None if unknown.
    published_at: datetime | None = None
    # Accepted, outcome still to come (WeChat: the publish job runs; its PUBLISHJOBFINISH settles it).
    pending: bool = False


# Called by a connector as soon as the platform hands back an id (cover media_id, draft media_id,
# publish_id), so the caller can store it before the next call: what makes crash recovery possible.
ProgressFn = Callable[[str, dict[str, str]], None]


@dataclass(frozen=True)
class RemoteComment:
    """A comment as the platform lists it, platform-neutral."""

    dedupe_key: str  # unique per account on the platform
    ref: str  # what it is under: "msg_data_id/index" (WeChat) or the Weibo status id
    sender_id: str
    sender_name: str
    text: str
    created_at: datetime
    replied: bool = False
    reply_target: dict[str, str] = field(default_factory=dict)  # ids needed to reply to it
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CommentPage:
    comments: list[RemoteComment]
    cursor: str  # where to continue next time


@dataclass(frozen=True)
class Stats:
    reads: int | None = None
    likes: int | None = None
    shares: int | None = None
    comments: int | None = None
    # Why the platform gives no reads/shares for this post (shown per post instead of a zero).
    unavailable: str | None = None


class Connector(Protocol):
    platform: str

    def prepare(self, post: OutgoingPost, *, progress: ProgressFn, resume: dict[str, str]) -> None:
        """Ahead of the due time, what makes nothing public yet (WeChat: cover and draft); ids go to `progress`."""

    def discard(self, *, resume: dict[str, str]) -> bool:
        """Remove what `prepare` left for a post that will not go out (WeChat: the draft); True if removed."""

    def publish(self, post: OutgoingPost, *, progress: ProgressFn, resume: dict[str, str]) -> PublishResult:
        """Publish; `resume` carries ids stored by earlier `progress` calls of a crashed attempt."""

    def find_published(self, post: OutgoingPost, *, since: datetime, resume: dict[str, str]) -> PublishResult | None:
        """Reconcile: the post if the platform already has it (published after `since`), else None."""

    def list_comments(self, *, target: str, cursor: str, full: bool = False, share: float = 1.0) -> CommentPage:
        """New comments under `target` (WeChat "msg_data_id/index"; Weibo "to_me") after `cursor`.

        `full`: read the whole list again (order is not append-only); `share`: the part of the
        budget this use may spend (comment polling leaves the rest to people)."""

    def reply_comment(self, comment: RemoteComment | dict[str, str], text: str) -> str:
        """Reply to one comment; returns the platform's id of the reply (may be empty)."""

    def send_message(self, user_id: str, text: str) -> None:
        """WeChat customer-service message (only within 48 h of the user's last message)."""

    def fetch_stats(self, result: PublishResult) -> Stats:
        """Interaction figures for a published post."""

    def warm_up(self) -> None:
        """Before the first call (a worker's start): what the first call would otherwise pay for."""

    def close(self) -> None: ...
