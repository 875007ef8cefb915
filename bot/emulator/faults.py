"""Injected faults: make the emulated platforms fail the way the real ones do.

A fault is armed through ``POST /_emulator/faults`` with a platform (``wechat`` or
``weibo``), a path substring matched against the API path after the platform prefix
(``freepublish/submit``, ``statuses/share.json``, ``comment/``...), a kind, and how many
matching calls it affects (``count``, default 1).

Kinds:

``http_500``
    answer HTTP 500 (or ``status``, e.g. 502) with a gateway error body; nothing is done.
``timeout``
    wait ``delay_s`` (default 10 s) without doing anything, then answer HTTP 504.
    The client is expected to give up first.
``slow``
    wait ``delay_s`` (default 3 s), then perform the call and answer normally.
``accept_then_hang``
    perform the call (the result is stored), then wait ``delay_s`` (default 10 s) before
    answering: the platform accepted the post while the caller died or timed out.
``token_expired``
    answer "access token expired" (WeChat 42001, Weibo 21327) once. WeChat also expires
    every token of the account, so only a refetch helps; Weibo tokens stay usable
    (a Weibo token cannot be refetched; revoke one with ``/_emulator/weibo/tokens/revoke``).
``rate_limit``
    answer the quota error (WeChat 45009, Weibo 10023 with HTTP 403).
``reject``
    content rejected by platform audit: the next WeChat ``freepublish/submit`` ends with
    ``publish_status`` 4; the next Weibo ``statuses/share.json`` or ``comments/reply.json``
    answers 20021. It is consumed only by those publishing calls.

Delays use ``asyncio.sleep`` so the emulator keeps answering other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from starlette.responses import Response

FAULT_KINDS = ("http_500", "timeout", "slow", "accept_then_hang", "token_expired",
               "rate_limit", "reject")
PLATFORMS = ("wechat", "weibo")
# kinds applied around any request; "reject" is consumed by the publishing handlers
REQUEST_KINDS = ("http_500", "timeout", "slow", "accept_then_hang", "token_expired",
                 "rate_limit")
DEFAULT_DELAY_S = {"timeout": 10.0, "slow": 3.0, "accept_then_hang": 10.0}


@dataclass
class Fault:
    id: int
    platform: str
    path: str
    kind: str
    count: int
    delay_s: float | None = None
    status: int | None = None

    @property
    def delay(self) -> float:
        if self.delay_s is not None:
            return self.delay_s
        return DEFAULT_DELAY_S.get(self.kind, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultRegistry:
    """Armed faults, consumed in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._seq = 0

    def add(self, *, platform: str, path: str, kind: str, count: int = 1,
            delay_s: float | None = None, status: int | None = None) -> Fault:
        if platform not in PLATFORMS:
            raise ValueError(f"fault platform must be one of {', '.join(PLATFORMS)}, "
                             f"got {platform!r}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        if not isinstance(path, str) or not path:
            raise ValueError("fault path must be a non-empty substring of the API path")
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"fault count must be a positive integer, got {count!r}")
        if delay_s is not None and (not isinstance(delay_s, (int, float)) or delay_s < 0):
            raise ValueError(f"fault delay_s must be a non-negative number, got {delay_s!r}")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise ValueError(f"fault status must be an HTTP error status, got {status!r}")
        with self._lock:
            self._seq += 1
            fault = Fault(self._seq, platform, path.lstrip("/"), kind, count,
                          None if delay_s is None else float(delay_s), status)
            self._faults.append(fault)
            return fault

    def clear(self, platform: str | None = None) -> int:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if platform and f.platform != platform]
            return before - len(self._faults)

    def take(self, platform: str, path: str, kinds: Iterable[str]) -> Fault | None:
        """Consume one use of the first armed fault matching this call, if any."""
        wanted = set(kinds)
        with self._lock:
            for fault in self._faults:
                if fault.platform == platform and fault.kind in wanted and fault.path in path:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]


class FaultResponder(Protocol):
    """Platform-specific error answers for injected faults."""

    def server_error(self, status: int) -> Response: ...

    def gateway_timeout(self) -> Response: ...

    def rate_limited(self) -> Response: ...

    def token_expired(self) -> Response: ...


async def serve(registry: FaultRegistry, platform: str, path: str,
                responder: FaultResponder,
                handler: Callable[[], Awaitable[Response]]) -> Response:
    """Run ``handler`` for one API call, applying an armed request-level fault."""
    fault = registry.take(platform, path, REQUEST_KINDS)
    if fault is None:
        return await handler()
    if fault.kind == "http_500":
        return responder.server_error(fault.status or 500)
    if fault.kind == "rate_limit":
        return responder.rate_limited()
    if fault.kind == "token_expired":
        return responder.token_expired()
    if fault.kind == "timeout":
        await asyncio.sleep(fault.delay)
        return responder.gateway_timeout()
    if fault.kind == "slow":
        await asyncio.sleep(fault.delay)
        return await handler()
    response = await handler()  # accept_then_hang: the work is done and stored first
    await asyncio.sleep(fault.delay)
    return response
