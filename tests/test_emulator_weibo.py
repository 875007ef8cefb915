"""The Weibo side of the emulator over real HTTP with httpx."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from bot.emulator.state import EmulatorState
from bot.emulator.testing import EmulatorAdmin, run_emulator

RIP = "203.0.113.7"
TOKEN = "2.00weibo_test_token"
CREATED_AT = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} "
                        r"\+0800 \d{4}$")


class Weibo:
    def __init__(self, base_url: str, token: str = TOKEN) -> None:
        self.http = httpx.Client(base_url=f"{base_url}/weibo/2/", timeout=10)
        self.token = token

    def get(self, path: str, **params) -> httpx.Response:
        return self.http.get(path, params={"access_token": self.token, **params})

    def post(self, path: str, files=None, **data) -> httpx.Response:
        return self.http.post(path, data={"access_token": self.token, **data}, files=files)

    def share(self, text: str) -> httpx.Response:
        return self.post("statuses/share.json", status=text, rip=RIP)


@pytest.fixture
def emu() -> Iterator[tuple[str, EmulatorState, EmulatorAdmin]]:
    state = EmulatorState()
    with run_emulator(state) as base_url, EmulatorAdmin(base_url) as admin:
        admin.register_weibo(access_token=TOKEN, uid=1900000001, screen_name="某某镇发布")
        yield base_url, state, admin


@pytest.fixture
def wb(emu) -> Weibo:
    return Weibo(emu[0])


def error(response: httpx.Response) -> tuple[int, int]:
    return response.status_code, response.json()["error_code"]


def test_share_returns_a_status_object(wb):
    response = wb.share("秋季防火提示，详见 https://www.gov.example.cn/notice/1")
    assert response.status_code == 200
    status = response.json()
    assert status["idstr"] == str(status["id"]) == status["mid"]
    assert CREATED_AT.match(status["created_at"])
    assert status["user"] == {**status["user"], "id": 1900000001, "screen_name": "某某镇发布"}
    assert re.fullmatch(r"秋季防火提示，详见 http://t\.cn/\w{8}", status["text"])
    assert {"reposts_count", "comments_count", "attitudes_count"} <= status.keys()


def test_share_accepts_the_oauth2_header_and_a_picture(emu):
    http = httpx.Client(base_url=f"{emu[0]}/weibo/2/")
    response = http.post("statuses/share.json",
                         headers={"Authorization": f"OAuth2 {TOKEN}"},
                         data={"status": "图片 http://gov.example.cn/p", "rip": RIP},
                         files={"pic": ("p.jpg", b"\xff\xd8\xff\xe0" + b"0" * 32, "image/jpeg")})
    assert response.status_code == 200
    assert len(response.json()["pic_ids"]) == 1 and response.json()["original_pic"]
    bad = http.post("statuses/share.json", headers={"Authorization": f"OAuth2 {TOKEN}"},
                    data={"status": "图片2 http://gov.example.cn/p", "rip": RIP},
                    files={"pic": ("p.txt", b"hello", "text/plain")})
    assert error(bad) == (400, 20005)


@pytest.mark.parametrize(("text", "expected"), [
    (None, (400, 10016)),
    ("", (400, 20008)),
    ("长" * 131 + " http://gov.example.cn/x", (400, 20012)),
    ("没有链接的微博", (400, 10017)),
    ("别的域名 https://example.com/a", (400, 10017)),
    ("冒充域名 https://gov.example.cn.evil.com/a", (400, 10017)),
    ("含有违禁词示例 http://gov.example.cn/a", (400, 20021)),
])
def test_share_validation(wb, text, expected):
    data = {"rip": RIP} if text is None else {"status": text, "rip": RIP}
    response = wb.post("statuses/share.json", **data)
    assert error(response) == expected
    assert response.json()["request"] == "/2/statuses/share.json"


def test_exactly_140_characters_is_allowed(wb):
    # As Weibo counts: the link 10, the space and "a" half each, 129 characters: 140.
    text = "http://gov.example.cn/a " + "字" * 129 + "a"
    assert wb.share(text).status_code == 200
    assert error(wb.share(text + "b")) == (400, 20012)


def test_ascii_counts_half_and_a_link_ten(wb):
    text = "Notice " + "x" * 243 + " https://gov.example.cn/notice/2026/autumn-recruitment-details"
    assert len(text) > 280 and wb.share(text).status_code == 200


def test_share_needs_rip_and_refuses_hashtags(emu, wb):
    response = wb.post("statuses/share.json", status="没有 rip http://gov.example.cn/r")
    assert error(response) == (400, 10016) and "rip" in response.json()["error"]
    assert error(wb.share("带话题 #防火# http://gov.example.cn/h")) == (400, 10017)
    emu[2].config(weibo_require_rip=False)
    assert wb.post("statuses/share.json", status="没有 rip http://gov.example.cn/r").status_code == 200


def test_repeat_content_within_24_hours(emu, wb):
    assert wb.share("同样的内容 http://gov.example.cn/a").status_code == 200
    assert error(wb.share("同样的内容 http://gov.example.cn/a")) == (400, 20019)
    emu[2].advance(24 * 3600 + 1)
    assert wb.share("同样的内容 http://gov.example.cn/a").status_code == 200


def test_post_and_call_rate_limits(emu, wb):
    admin = emu[2]
    admin.config(weibo_posts_per_hour=2, weibo_calls_per_hour=5)
    assert wb.share("一 http://gov.example.cn/1").status_code == 200
    assert wb.share("二 http://gov.example.cn/2").status_code == 200
    assert error(wb.share("三 http://gov.example.cn/3")) == (400, 20016)
    assert wb.get("statuses/user_timeline.json").status_code == 200
    limits = wb.get("account/rate_limit_status.json").json()
    assert limits["remaining_user_hits"] == 1 and limits["user_limit"] == 5
    assert wb.get("statuses/user_timeline.json").status_code == 200
    assert error(wb.get("statuses/user_timeline.json")) == (403, 10023)
    admin.advance(3601)
    assert wb.share("三 http://gov.example.cn/3").status_code == 200


def test_tokens(emu):
    base_url, _, admin = emu
    assert error(Weibo(base_url, token="").get("statuses/user_timeline.json")) == (401, 21301)
    fresh = Weibo(base_url, token="2.00auto_registered")
    assert fresh.get("account/get_uid.json").json()["uid"] > 0
    admin.revoke_weibo_token("2.00auto_registered", "expired")
    response = fresh.get("statuses/user_timeline.json")
    assert error(response) == (400, 21327) and response.json()["error"] == "expired_token"
    admin.revoke_weibo_token(TOKEN, "revoked")
    response = Weibo(base_url).share("x http://gov.example.cn/")
    assert error(response) == (403, 21332) and response.json()["error"] == "invalid_access_token"
    admin.config(auto_register=False)
    assert error(Weibo(base_url, token="2.00never_seen").get("account/get_uid.json")) == (403, 21332)


def test_user_timeline_paging_for_reconciliation(emu, wb):
    ids = [wb.share(f"第{i}条 http://gov.example.cn/{i}").json()["id"] for i in range(5)]
    other = Weibo(emu[0], token="2.00someone_else")
    other.share("别人的 http://gov.example.cn/o")
    page = wb.get("statuses/user_timeline.json", count=2).json()
    assert page["total_number"] == 5
    assert [s["id"] for s in page["statuses"]] == [ids[4], ids[3]]
    assert page["next_cursor"] == ids[2]
    second = wb.get("statuses/user_timeline.json", count=2, page=2).json()
    assert [s["id"] for s in second["statuses"]] == [ids[2], ids[1]]
    newer = wb.get("statuses/user_timeline.json", since_id=ids[2]).json()
    assert [s["id"] for s in newer["statuses"]] == [ids[4], ids[3]]
    older = wb.get("statuses/user_timeline.json", max_id=ids[1]).json()
    assert [s["id"] for s in older["statuses"]] == [ids[1], ids[0]]
    assert error(wb.get("statuses/user_timeline.json", count="many")) == (400, 10017)


def test_comments_to_me_show_reply_and_counts(emu, wb):
    admin = emu[2]
    status = wb.share("征集意见 http://gov.example.cn/s").json()
    first = admin.weibo_comment(status_id=status["id"], uid=6000000001, screen_name="老张",
                                text="小区门口垃圾没人清理")
    second = admin.weibo_comment(status_id=status["idstr"], uid=6000000002, screen_name="晴天",
                                 text="点赞👍")
    inbox = wb.get("comments/to_me.json").json()
    assert inbox["total_number"] == 2
    assert [c["id"] for c in inbox["comments"]] == [second["id"], first["id"]]
    assert inbox["comments"][1]["status"]["id"] == status["id"]
    assert inbox["comments"][1]["user"]["screen_name"] == "老张"
    assert CREATED_AT.match(inbox["comments"][1]["created_at"])
    newer = wb.get("comments/to_me.json", since_id=first["id"]).json()
    assert [c["id"] for c in newer["comments"]] == [second["id"]]

    reply = wb.post("comments/reply.json", cid=first["id"], id=status["id"],
                    comment="您好，已转城管部门处理。")
    assert reply.status_code == 200
    body = reply.json()
    assert body["text"] == "回复@老张:您好，已转城管部门处理。"
    assert body["reply_comment"]["id"] == first["id"]
    assert body["user"]["id"] == 1900000001
    assert wb.get("comments/to_me.json").json()["total_number"] == 2  # own replies excluded
    assert wb.get("comments/by_me.json").json()["comments"][0]["id"] == body["id"]
    shown = wb.get("comments/show.json", id=status["id"]).json()
    assert shown["total_number"] == 3
    counts = wb.get("statuses/count.json", ids=f"{status['id']},42").json()
    assert counts == [{**counts[0], "id": status["id"], "comments": 3}]


def test_reply_errors(emu, wb):
    admin = emu[2]
    status = wb.share("问答 http://gov.example.cn/q").json()
    other = wb.share("另一条 http://gov.example.cn/r").json()
    comment = admin.weibo_comment(status_id=status["id"], uid=6000000003, screen_name="阿强",
                                  text="社保卡怎么补办？")
    assert error(wb.post("comments/reply.json", cid=999, id=status["id"], comment="好")) == (400, 20201)
    assert error(wb.post("comments/reply.json", cid=comment["id"], id=other["id"],
                         comment="好")) == (400, 20201)
    assert error(wb.post("comments/reply.json", cid=comment["id"], id=123,
                         comment="好")) == (400, 20101)
    assert error(wb.post("comments/reply.json", cid=comment["id"], id=status["id"],
                         comment="答" * 141)) == (400, 20012)
    assert error(wb.post("comments/reply.json", cid=comment["id"], id=status["id"])) == (400, 10016)
    assert error(wb.get("comments/show.json")) == (400, 10016)
    admin.config(weibo_comments_per_hour=1)
    assert wb.post("comments/reply.json", cid=comment["id"], id=status["id"],
                   comment="请带身份证到社保所。").status_code == 200
    assert error(wb.post("comments/reply.json", cid=comment["id"], id=status["id"],
                         comment="补充一下")) == (403, 10024)


def test_destroy_and_unknown_paths(emu, wb):
    status = wb.share("要删除的 http://gov.example.cn/d").json()
    other = Weibo(emu[0], token="2.00another").share("别人 http://gov.example.cn/e").json()
    assert error(wb.post("statuses/destroy.json", id=other["id"])) == (400, 20102)
    assert wb.post("statuses/destroy.json", id=status["id"]).status_code == 200
    assert error(wb.get("statuses/show.json", id=status["id"])) == (400, 20101)
    assert error(wb.get("statuses/nope.json")) == (400, 10020)
    assert error(wb.get("statuses/share.json")) == (400, 10021)


def test_admin_comment_injection_errors(emu):
    response = httpx.post(f"{emu[0]}/_emulator/weibo/comments",
                          json={"status_id": 1, "uid": 1, "screen_name": "x", "text": "y"})
    assert response.status_code == 400 and "no Weibo status" in response.json()["error"]
