"""Injected faults, each kind on both platforms, over real HTTP."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import requests
from wechatpy.exceptions import APILimitedException, WeChatClientException

from bot.emulator.state import EmulatorState
from bot.emulator.testing import EmulatorAdmin, run_emulator, wechat_client

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
TOKEN = "2.00faults"


@pytest.fixture
def emu() -> Iterator[tuple[str, EmulatorState, EmulatorAdmin]]:
    # Publish jobs end at once here: these tests are about faults, not the job's run time.
    state = EmulatorState(config={"wechat_publish_delay_s": 0.0})
    with run_emulator(state) as base_url, EmulatorAdmin(base_url) as admin:
        yield base_url, state, admin


@pytest.fixture
def client(emu):
    return wechat_client(emu[0], "wx_faults", "secret", timeout=5)


@pytest.fixture
def weibo(emu) -> httpx.Client:
    return httpx.Client(base_url=f"{emu[0]}/weibo/2/", params={"access_token": TOKEN}, timeout=5)


def draft(client) -> str:
    thumb = client.material.add("image", ("c.png", io.BytesIO(PNG), "image/png"))["media_id"]
    return client.post("draft/add", data={"articles": [{
        "title": "通知", "content": "<p>内容</p>", "thumb_media_id": thumb}]})["media_id"]


def share(weibo: httpx.Client, text: str, timeout: float = 5) -> httpx.Response:
    return weibo.post("statuses/share.json", data={"status": text, "rip": "203.0.113.7"}, timeout=timeout)


def test_http_500_counts_down(emu, client, weibo):
    _, _, admin = emu
    client.access_token  # noqa: B018 - fetch the token before arming the fault
    admin.fault("wechat", "draft/count", "http_500", count=2)
    for _ in range(2):
        with pytest.raises(WeChatClientException) as exc:
            client.get("draft/count")
        assert exc.value.errcode is None and exc.value.response.status_code == 500
    assert client.get("draft/count") == {"total_count": 0}
    admin.fault("weibo", "statuses/share", "http_500")
    response = share(weibo, "a http://gov.example.cn/")
    assert response.status_code == 500 and response.json()["error_code"] == 10001
    admin.fault("weibo", "statuses/share", "http_500", status=502)
    assert share(weibo, "b http://gov.example.cn/").status_code == 502
    assert share(weibo, "c http://gov.example.cn/").status_code == 200


def test_timeout_does_nothing_and_keeps_the_server_responsive(emu, client, weibo):
    base_url, state, admin = emu
    media_id = draft(client)
    admin.fault("wechat", "freepublish/submit", "timeout", delay_s=1.5)
    started = time.monotonic()
    slow_client = wechat_client(base_url, "wx_faults", "secret", timeout=0.3,
                                access_token=client.access_token)
    with pytest.raises(requests.Timeout):
        slow_client.post("freepublish/submit", data={"media_id": media_id})
    # while the emulator sleeps on that request it still answers others
    assert httpx.get(f"{base_url}/_emulator/health").status_code == 200
    assert time.monotonic() - started < 1.0
    assert state.data["wechat"]["publishes"] == {}
    assert client.post("freepublish/submit", data={"media_id": media_id})["errcode"] == 0
    admin.fault("weibo", "statuses/share", "timeout", delay_s=1.0)
    with pytest.raises(httpx.ReadTimeout):
        share(weibo, "超时 http://gov.example.cn/", timeout=0.3)
    assert weibo.get("statuses/user_timeline.json").json()["total_number"] == 0


def test_slow_answers_correctly_after_the_delay(emu, client):
    _, _, admin = emu
    client.access_token  # noqa: B018
    admin.fault("wechat", "draft/count", "slow", delay_s=0.4)
    started = time.monotonic()
    assert client.get("draft/count") == {"total_count": 0}
    assert time.monotonic() - started >= 0.4


def test_accept_then_hang_stores_the_result(emu, client, weibo):
    base_url, _, admin = emu
    media_id = draft(client)
    admin.fault("wechat", "freepublish/submit", "accept_then_hang", delay_s=1.0)
    hasty = wechat_client(base_url, "wx_faults", "secret", timeout=0.3,
                          access_token=client.access_token)
    with pytest.raises(requests.Timeout):
        hasty.post("freepublish/submit", data={"media_id": media_id})
    admin.advance(5)
    listing = client.post("freepublish/batchget", data={"offset": 0, "count": 10, "no_content": 1})
    assert listing["total_count"] == 1
    assert listing["item"][0]["content"]["news_item"][0]["title"] == "通知"

    admin.fault("weibo", "statuses/share", "accept_then_hang", delay_s=1.0)
    with pytest.raises(httpx.ReadTimeout):
        share(weibo, "发出去了吗 http://gov.example.cn/x", timeout=0.3)
    timeline = weibo.get("statuses/user_timeline.json").json()
    assert timeline["total_number"] == 1


def test_token_expired_forces_a_refetch(emu, client, weibo):
    base_url, _, admin = emu
    old = client.access_token
    admin.fault("wechat", "draft/count", "token_expired")
    with pytest.raises(WeChatClientException) as exc:
        client.get("draft/count")
    assert exc.value.errcode == 42001
    stale = wechat_client(base_url, "wx_faults", "secret", access_token=old)
    with pytest.raises(WeChatClientException) as exc:
        stale.get("draft/count")
    assert exc.value.errcode == 42001
    client.fetch_access_token()
    assert client.get("draft/count") == {"total_count": 0}

    admin.fault("weibo", "user_timeline", "token_expired")
    response = weibo.get("statuses/user_timeline.json")
    assert response.json()["error_code"] == 21327
    assert weibo.get("statuses/user_timeline.json").status_code == 200


def test_rate_limit(emu, client, weibo):
    _, _, admin = emu
    media_id = draft(client)
    admin.fault("wechat", "freepublish/submit", "rate_limit")
    with pytest.raises(APILimitedException) as exc:
        client.post("freepublish/submit", data={"media_id": media_id})
    assert exc.value.errcode == 45009
    admin.fault("weibo", "comments/to_me", "rate_limit")
    response = weibo.get("comments/to_me.json")
    assert response.status_code == 403 and response.json()["error_code"] == 10023


def test_reject_is_consumed_by_publishing_only(emu, client, weibo):
    _, _, admin = emu
    admin.fault("wechat", "freepublish", "reject")
    media_id = draft(client)  # draft/add does not consume it
    submitted = client.post("freepublish/submit", data={"media_id": media_id})
    client.post("freepublish/get", data={"publish_id": submitted["publish_id"]})
    final = client.post("freepublish/get", data={"publish_id": submitted["publish_id"]})
    assert final["publish_status"] == 4 and final["fail_idx"] == [1]
    again = client.post("freepublish/submit", data={"media_id": draft(client)})
    client.post("freepublish/get", data={"publish_id": again["publish_id"]})
    assert client.post("freepublish/get", data={"publish_id": again["publish_id"]})["publish_status"] == 0

    admin.fault("weibo", "statuses/share", "reject")
    assert share(weibo, "正常内容 http://gov.example.cn/").json()["error_code"] == 20021
    assert share(weibo, "正常内容 http://gov.example.cn/").status_code == 200


def test_fault_admin(emu):
    base_url, _, admin = emu
    admin.fault("wechat", "a", "slow", count=3)
    admin.fault("weibo", "b", "http_500")
    assert [f["kind"] for f in admin.state()["faults"]] == ["slow", "http_500"]
    assert httpx.delete(f"{base_url}/_emulator/faults", params={"platform": "weibo"}).json() == {
        "cleared": 1}
    assert admin.clear_faults() == 1
    for bad in ({"platform": "wechat", "path": "x", "kind": "explode"},
                {"platform": "qq", "path": "x", "kind": "slow"},
                {"platform": "wechat", "path": "x", "kind": "slow", "count": 0},
                {"platform": "wechat", "kind": "slow"}):
        response = httpx.post(f"{base_url}/_emulator/faults", json=bad)
        assert response.status_code == 400 and response.json()["error"]


def test_concurrent_requests_during_a_hang(emu, client):
    """Several callers hang at once; each is answered after its own delay."""
    base_url, _, admin = emu
    token = client.access_token
    admin.fault("wechat", "draft/count", "slow", count=3, delay_s=0.5)
    results: list[dict] = []

    def call() -> None:
        results.append(wechat_client(base_url, "wx_faults", "secret",
                                     access_token=token).get("draft/count"))

    threads = [threading.Thread(target=call) for _ in range(3)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [{"total_count": 0}] * 3
    assert time.monotonic() - started < 1.4
