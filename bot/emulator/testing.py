"""Helpers to run the emulator on loopback for tests and local tools.

    with run_emulator() as base_url:
        client = wechat_client(base_url, "wx_test_app", "secret")
        client.post("draft/add", data={...})
        httpx.post(f"{base_url}/weibo/2/statuses/share.json", data={...})
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from wechatpy import WeChatClient

from bot.emulator.app import create_app
from bot.emulator.state import EmulatorState


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port in a thread; yields its base URL."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so, and
    # without it every keep-alive request waits ~40 ms for a delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"loopback-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the app did not start on port {port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def run_emulator(state: EmulatorState | None = None, *, demo: bool = False,
                 demo_interval_s: float = 20.0) -> Iterator[str]:
    """Serve the emulator on a free loopback port in a thread; yields its base URL."""
    with serve_app(create_app(state, demo=demo, demo_interval_s=demo_interval_s)) as url:
        yield url


class EmulatedWeChatClient(WeChatClient):
    """wechatpy's client aimed at the emulator (token URL included, no auto-retry)."""

    def __init__(self, base_url: str, appid: str, secret: str, **kwargs) -> None:
        kwargs.setdefault("auto_retry", False)
        kwargs.setdefault("timeout", 10)
        super().__init__(appid, secret, **kwargs)
        self.API_BASE_URL = f"{base_url}/wechat/cgi-bin/"
        self.datacube.API_BASE_URL = f"{base_url}/wechat/datacube/"

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=f"{self.API_BASE_URL}token",
            params={"grant_type": "client_credential", "appid": self.appid,
                    "secret": self.secret})


def wechat_client(base_url: str, appid: str, secret: str, **kwargs) -> WeChatClient:
    return EmulatedWeChatClient(base_url, appid, secret, **kwargs)


class EmulatorAdmin:
    """Thin client of the admin API (``/_emulator``); raises on HTTP errors."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self.base_url}/_emulator/", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EmulatorAdmin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def state(self) -> dict[str, Any]:
        return self._call("GET", "state")

    def reset(self, *, keep_accounts: bool = False) -> None:
        self._call("POST", "reset", {"keep_accounts": keep_accounts})

    def register_wechat(self, **account: Any) -> dict[str, Any]:
        return self._call("POST", "accounts", {"platform": "wechat", **account})

    def register_weibo(self, **account: Any) -> dict[str, Any]:
        return self._call("POST", "accounts", {"platform": "weibo", **account})

    def config(self, **changes: Any) -> dict[str, Any]:
        return self._call("POST", "config", changes)

    def advance(self, seconds: float) -> float:
        return self._call("POST", "clock", {"advance_s": seconds})["now"]

    def fault(self, platform: str, path: str, kind: str, **options: Any) -> dict[str, Any]:
        return self._call("POST", "faults",
                          {"platform": platform, "path": path, "kind": kind, **options})

    def clear_faults(self) -> int:
        return self._call("DELETE", "faults")["cleared"]

    def wechat_comment(self, **comment: Any) -> dict[str, Any]:
        return self._call("POST", "wechat/comments", comment)

    def weibo_comment(self, **comment: Any) -> dict[str, Any]:
        return self._call("POST", "weibo/comments", comment)

    def push(self, appid: str, msg_type: str, **fields: Any) -> dict[str, Any]:
        return self._call("POST", "wechat/push", {"appid": appid, "msg_type": msg_type, **fields})

    def revoke_weibo_token(self, access_token: str, reason: str = "revoked") -> dict[str, Any]:
        return self._call("POST", "weibo/tokens/revoke",
                          {"access_token": access_token, "reason": reason})
