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

import uvicorn
from wechatpy import WeChatClient

from bot.emulator.app import create_app
from bot.emulator.state import EmulatorState


@contextmanager
def run_emulator(state: EmulatorState | None = None, *, demo: bool = False,
                 demo_interval_s: float = 20.0) -> Iterator[str]:
    """Serve the emulator on a free loopback port in a thread; yields its base URL."""
    app = create_app(state, demo=demo, demo_interval_s=demo_interval_s)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"emulator-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the emulator did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


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
