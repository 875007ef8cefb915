"""Persistence across restarts, the admin API, the demo generator and the command line."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.responses import Response

from bot.emulator.demo import PRAISE, QUESTIONS, demo_step, pick_text
from bot.emulator.state import EmulatorState
from bot.emulator.testing import EmulatorAdmin, run_emulator, serve_app, wechat_client

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
WEIBO_TOKEN = "2.00persist"


def publish_both(base_url: str) -> tuple[str, int]:
    client = wechat_client(base_url, "wx_persist", "secret")
    thumb = client.material.add("image", ("c.png", io.BytesIO(PNG), "image/png"))["media_id"]
    media_id = client.post("draft/add", data={"articles": [{
        "title": "重启前发布", "content": "<p>正文</p>", "thumb_media_id": thumb}]})["media_id"]
    publish_id = client.post("freepublish/submit", data={"media_id": media_id})["publish_id"]
    client.post("freepublish/get", data={"publish_id": publish_id})
    EmulatorAdmin(base_url).advance(3)  # the job's run time (wechat_publish_delay_s)
    article_id = client.post("freepublish/get", data={"publish_id": publish_id})["article_id"]
    status = httpx.post(f"{base_url}/weibo/2/statuses/share.json",
                        data={"access_token": WEIBO_TOKEN, "status": "重启前 http://gov.example.cn/", "rip": "203.0.113.7"})
    return article_id, status.json()["id"]


def test_state_survives_a_restart(tmp_path: Path):
    path = tmp_path / "emulator.json"
    with run_emulator(EmulatorState(path)) as base_url:
        article_id, status_id = publish_both(base_url)
        media_id = next(iter(EmulatorAdmin(base_url).state()["wechat"]["media"]))
    assert json.loads(path.read_text(encoding="utf-8"))["wechat"]["articles"][article_id]

    with run_emulator(EmulatorState(path)) as base_url:
        client = wechat_client(base_url, "wx_persist", "secret")
        listing = client.post("freepublish/batchget", data={"offset": 0, "count": 10})
        assert [i["article_id"] for i in listing["item"]] == [article_id]
        assert client.material.get(media_id).content == PNG
        timeline = httpx.get(f"{base_url}/weibo/2/statuses/user_timeline.json",
                             params={"access_token": WEIBO_TOKEN}).json()
        assert [s["id"] for s in timeline["statuses"]] == [status_id]
        # the secret bound on first use is remembered too
        other = wechat_client(base_url, "wx_persist", "another-secret")
        with pytest.raises(Exception, match="40125"):
            other.fetch_access_token()
        # ids keep increasing after the restart
        new_status = httpx.post(f"{base_url}/weibo/2/statuses/share.json",
                                data={"access_token": WEIBO_TOKEN,
                                      "status": "重启后 http://gov.example.cn/", "rip": "203.0.113.7"}).json()
        assert new_status["id"] > status_id


def test_unreadable_state_file_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json"):
        EmulatorState(path)


def test_admin_state_reset_and_config(tmp_path: Path):
    state = EmulatorState(tmp_path / "s.json")
    with run_emulator(state) as base_url, EmulatorAdmin(base_url) as admin:
        assert httpx.get(f"{base_url}/_emulator/health").json()["status"] == "ok"
        publish_both(base_url)
        snapshot = admin.state()
        assert len(snapshot["wechat"]["articles"]) == 1 and len(snapshot["weibo"]["statuses"]) == 1
        assert snapshot["counters"]["calls"]["weibo statuses/share.json"] == 1
        assert snapshot["counters"]["calls"]["wechat freepublish/get"] == 2
        summary = snapshot["summary"]
        assert summary["wechat"]["wx_persist"]["articles"][0]["titles"] == ["重启前发布"]
        weibo_uid = snapshot["weibo"]["tokens"][WEIBO_TOKEN]["uid"]
        assert summary["weibo"][str(weibo_uid)]["statuses"][0]["text"] == "重启前 http://gov.example.cn/"
        assert admin.config(banned_words=["禁词"])["banned_words"] == ["禁词"]
        response = httpx.post(f"{base_url}/_emulator/config", json={"no_such_key": 1})
        assert response.status_code == 400 and "no_such_key" in response.json()["error"]
        admin.reset(keep_accounts=True)
        snapshot = admin.state()
        assert snapshot["wechat"]["articles"] == {} and snapshot["weibo"]["statuses"] == {}
        assert "wx_persist" in snapshot["wechat"]["accounts"]
        assert snapshot["config"]["banned_words"] == ["禁词"]
        admin.reset()
        assert admin.state()["wechat"]["accounts"] == {}


def test_account_registration_validation():
    with run_emulator() as base_url:
        url = f"{base_url}/_emulator/accounts"
        for body in ({"platform": "wechat", "appid": "wx"},
                     {"platform": "wechat", "appid": "wx", "secret": "s", "encrypt": True},
                     {"platform": "wechat", "appid": "wx", "secret": "s", "encoding_aes_key": "short"},
                     {"platform": "weibo"},
                     {"platform": "qq"}):
            response = httpx.post(url, json=body)
            assert response.status_code == 400 and response.json()["error"], body
        weibo = httpx.post(url, json={"platform": "weibo", "access_token": "t", "uid": "123",
                                      "screen_name": "某局"}).json()
        assert weibo == {"access_token": "t", "uid": 123, "screen_name": "某局"}


def test_demo_generates_plausible_traffic():
    received: list[bytes] = []
    callback = FastAPI()

    @callback.post("/cb")
    async def cb(request: Request) -> Response:
        received.append(await request.body())
        return Response("success")

    state = EmulatorState()
    with serve_app(callback) as cb_url, run_emulator(state) as base_url:
        import asyncio

        rng = random.Random(7)
        assert asyncio.run(demo_step(state, rng)) is None  # nothing published yet
        EmulatorAdmin(base_url).register_wechat(appid="wx_persist", secret="secret", token="t",
                                                callback_url=f"{cb_url}/cb")
        publish_both(base_url)
        kinds = [asyncio.run(demo_step(state, rng))["kind"] for _ in range(12)]
    assert {"wechat_comment", "weibo_comment", "wechat_message"} <= set(kinds)
    assert received
    comments = [c for bucket in state.data["wechat"]["comments"].values() for c in bucket]
    assert comments and all(len(c["openid"]) == 28 for c in comments)
    assert state.data["weibo"]["comments"]
    texts = {pick_text(random.Random(i)) for i in range(50)}
    assert texts & set(PRAISE) and texts & set(QUESTIONS)


def test_command_line_runs_the_server(tmp_path: Path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    state_file = tmp_path / "cli.json"
    process = subprocess.Popen([sys.executable, "-m", "bot.emulator", "--host", "127.0.0.1",
                                "--port", str(port), "--state-file", str(state_file), "--demo",
                                "--demo-interval", "0.2"],
                               cwd=Path(__file__).resolve().parents[1],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_emulator/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        with EmulatorAdmin(f"http://127.0.0.1:{port}") as admin:
            admin.register_weibo(access_token="2.00cli", uid=1, screen_name="某局")
        assert json.loads(state_file.read_text(encoding="utf-8"))["weibo"]["tokens"]["2.00cli"]
    finally:
        process.terminate()
        process.wait(timeout=10)
