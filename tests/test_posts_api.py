"""JSON API for posts, sign-off, scheduling, publications and accounts: a real app on a real SQLite file."""

import base64
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from bot.clock import to_local, utcnow
from bot.context import Context
from bot.users import get_user, issue_api_token
from bot.web.app import create_app

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
WEIBO = "示例县秋季招聘公告发布，详情 https://www.gov.example.cn/zp/2026"
POST = {"title": "示例县2026年秋季公开招聘公告", "body": "<p>经县政府研究，决定公开招聘工作人员。</p>",
        "digest": "秋季公开招聘", "weibo_text": WEIBO,
        "cover": {"filename": "cover.png", "data_base64": base64.b64encode(PNG).decode()}}


@pytest.fixture
def api(ctx: Context):
    with ctx.session() as s:
        tokens = {name: issue_api_token(session=s, user=get_user(session=s, username=name))
                  for name in ("admin", "xuanchuan", "bianji", "fenguan", "zhuyao", "gongkai")}
    client = TestClient(create_app(ctx))

    def call(method: str, path: str, as_user: str, status: int = 200, **kw):
        r = client.request(method, path, headers={"Authorization": f"Bearer {tokens[as_user]}"}, **kw)
        assert r.status_code == status, r.text
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r

    call.client = client
    return call


def create(api, **over) -> dict:
    return api("POST", "/api/posts", "xuanchuan", 201, json={**POST, **over})


def signed(api) -> dict:
    post = create(api)
    api("POST", f"/api/posts/{post['id']}/submit", "xuanchuan")
    for name in ("bianji", "fenguan", "zhuyao"):
        post = api("POST", f"/api/posts/{post['id']}/sign", name, json={"version": post["version"]})
    return post


def test_story_draft_three_signoffs_schedule_to_two_accounts(api):
    post = create(api)
    assert (post["status"], post["version"], post["author"]) == ("draft", 1, "xuanchuan")
    assert post["cover"]["mime"] == "image/png" and post["cover"]["size"] == len(PNG)
    pid = post["id"]
    post = api("POST", f"/api/posts/{pid}/submit", "xuanchuan")
    # The accounts chosen at submission are part of what is signed: the hash covers them.
    assert post["status"] == "in_review" and post["target_accounts"] == ["示例县发布", "示例县发布微博"]
    for name, stage in (("bianji", "初审"), ("fenguan", "复审"), ("zhuyao", "终审")):
        post = api("POST", f"/api/posts/{pid}/sign", name, json={"content_hash": post["content_hash"]})
        done = [s for s in post["chain"]["stages"] if s["signed_by"]]
        assert done[-1]["name"] == stage and done[-1]["signed_by"]["username"] == name
    assert post["status"] == "approved" and post["chain"]["complete"]

    at = to_local(utcnow() + timedelta(days=1), "Asia/Shanghai").replace(second=0, microsecond=0, tzinfo=None)
    out = api("POST", f"/api/posts/{pid}/schedule", "xuanchuan",
              json={"accounts": ["示例县发布", "示例县发布微博"], "at": at.isoformat()})
    pubs = out["publications"]
    assert [(p["account"], p["state"]) for p in pubs] == [("示例县发布", "pending"), ("示例县发布微博", "pending")]
    assert {p["due_at"] for p in pubs} == {at.isoformat() + "+08:00"}
    assert all(p["gap"]["scheduled"] == [at.isoformat() + "+08:00"] for p in pubs)
    assert out["post"]["status"] == "scheduled"

    listed = api("GET", "/api/publications?state=pending", "admin")["items"]
    assert sorted(p["account"] for p in listed) == ["示例县发布", "示例县发布微博"]
    assert api("GET", f"/api/publications/{pubs[0]['id']}", "admin")["post_title"] == POST["title"]
    accounts = {a["name"]: a for a in api("GET", "/api/accounts", "admin")["items"]}
    assert accounts["示例县发布"]["gap"]["scheduled"] and accounts["示例县住建"]["gap"]["level"] == "limit"
    assert [p["id"] for p in api("GET", "/api/posts?status=scheduled", "admin")["items"]] == [pid]
    history = [e["action"] for e in api("GET", f"/api/posts/{pid}", "admin")["history"]]
    assert history == ["post.created", "post.submitted", "post.signed", "post.signed", "post.signed",
                       "post.approved", "post.scheduled"]


def test_edit_after_signoff_restarts_the_chain(api):
    post = create(api)
    pid = post["id"]
    api("POST", f"/api/posts/{pid}/submit", "xuanchuan")
    api("POST", f"/api/posts/{pid}/sign", "bianji", json={"version": 1})
    out = api("PATCH", f"/api/posts/{pid}", "xuanchuan", json={"body": "<p>招聘工作人员20名。</p>"})
    assert out["changed"] and out["fields"] == ["body"] and len(out["voided_signoffs"]) == 1
    assert (out["post"]["status"], out["post"]["version"]) == ("draft", 2)
    assert out["post"]["chain"]["next_stage"]["name"] == "初审"
    assert out["post"]["signoffs"][0]["voided_at"] is not None
    assert "post.chain_restarted" in [e["action"] for e in out["post"]["history"]]
    assert not api("PATCH", f"/api/posts/{pid}", "xuanchuan", json={"body": "<p>招聘工作人员20名。</p>"})["changed"]

    api("POST", f"/api/posts/{pid}/submit", "xuanchuan")
    stale = api("POST", f"/api/posts/{pid}/sign", "bianji", 409, json={"version": 1})
    assert "stale" in stale["detail"]["text"]


def test_signing_rules(api):
    pid = create(api)["id"]
    api("POST", f"/api/posts/{pid}/submit", "xuanchuan")
    own = api("POST", f"/api/posts/{pid}/sign", "xuanchuan", 403, json={"version": 1})
    assert "nobody signs their own draft" in own["detail"]["text"]
    assert "needs the role editor" in api("POST", f"/api/posts/{pid}/sign", "fenguan", 403, json={"version": 1})["detail"]["text"]
    assert "needs the role editor" in api("POST", f"/api/posts/{pid}/sign", "admin", 403, json={"version": 1})["detail"]["text"]
    assert "which version" in api("POST", f"/api/posts/{pid}/sign", "bianji", 400, json={})["detail"]["text"]
    api("POST", f"/api/posts/{pid}/sign", "bianji", json={"version": 1})


def test_reject_returns_to_the_editor(api):
    pid = create(api)["id"]
    api("POST", f"/api/posts/{pid}/submit", "xuanchuan")
    post = api("POST", f"/api/posts/{pid}/reject", "fenguan", json={"version": 1, "reason": "标题请加发文单位"})
    assert (post["status"], post["rejection_reason"]) == ("rejected", "标题请加发文单位")
    assert post["signoffs"][-1]["decision"] == "reject"
    api("POST", f"/api/posts/{pid}/reject", "fenguan", 422, json={"version": 1, "reason": ""})


def test_schedule_refused_until_fully_signed(api):
    pid = create(api)["id"]
    out = api("POST", f"/api/posts/{pid}/schedule", "xuanchuan", 409, json={"accounts": ["示例县发布"], "now": True})
    assert "only a fully signed post" in out["detail"]["text"]
    post = signed(api)
    assert api("POST", f"/api/posts/{post['id']}/schedule", "fenguan", 403,
               json={"accounts": ["示例县发布"], "now": True})["code"] == "permission.refused"
    assert "no account named" in api("POST", f"/api/posts/{post['id']}/schedule", "xuanchuan", 404,
                                     json={"accounts": ["不存在"], "now": True})["detail"]["text"]
    api("POST", f"/api/posts/{post['id']}/schedule", "xuanchuan", 400, json={"accounts": ["示例县发布"]})
    out = api("POST", f"/api/posts/{post['id']}/schedule", "admin", json={"accounts": ["示例县发布"], "now": True})
    assert out["publications"][0]["state"] == "pending"
    out = api("POST", f"/api/posts/{post['id']}/unschedule", "xuanchuan", json={})
    assert len(out["cancelled_publications"]) == 1 and out["post"]["status"] == "approved"


def test_failed_checks_are_422_with_details(api):
    pid = create(api, body="<p>本通知为内部资料，县人民政付印发。</p>", cover=None, weibo_text="")["id"]
    out = api("POST", f"/api/posts/{pid}/submit", "xuanchuan", 422)
    assert out["code"] == "check.failed"
    assert any("sensitive word “内部资料”" in p["text"] for p in out["detail"]["problems"])
    details = {d["code"]: d for d in out["detail"]["problems"]}
    assert details["sensitive_word"]["message_zh"].startswith("敏感词“内部资料”（")
    assert details["typo"]["suggestion"] == "人民政府" and details["typo"]["where"] == "body"
    assert details["sensitive_word"]["offset"] == 7 and details["sensitive_word"]["line"] == 1
    assert "wechat_cover_missing" in details
    check = api("POST", f"/api/posts/{pid}/check", "xuanchuan", json={"platforms": ["weibo"]})
    assert not check["ok"] and "weibo_text_missing" in {p["code"] for p in check["problems"]}
    assert api("GET", f"/api/posts/{pid}", "admin")["status"] == "draft"


def test_cover_upload_multipart_and_download(api):
    pid = create(api, cover=None)["id"]
    gif = b"GIF89a" + bytes(50)
    out = api("PUT", f"/api/posts/{pid}/cover", "xuanchuan", files={"cover": ("banner.gif", gif, "image/gif")})
    assert out["changed"] and out["fields"] == ["cover"] and out["post"]["cover"]["filename"] == "banner.gif"
    got = api("GET", f"/api/posts/{pid}/cover", "fenguan")
    assert got.content == gif and got.headers["content-type"] == "image/gif"
    bad = api("PUT", f"/api/posts/{pid}/cover", "xuanchuan", 400, files={"cover": ("a.txt", b"hello", "text/plain")})
    assert "not a JPEG, PNG, GIF or BMP" in bad["detail"]["text"]
    assert "not valid base64" in api("PATCH", f"/api/posts/{pid}", "xuanchuan", 400,
                                     json={"cover": {"filename": "x.png", "data_base64": "***"}})["detail"]["text"]


def test_auth_and_not_found(api):
    assert api.client.get("/api/posts").status_code == 401
    assert api.client.get("/api/posts", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api("GET", "/api/posts/999", "admin", 404)["code"] == "post.not_found"
    assert api("POST", "/api/posts", "fenguan", 403, json=POST)["code"] == "permission.refused"
    assert "unknown state" in api("GET", "/api/publications?state=lost", "admin", 400)["detail"]["text"]


def test_wechat_byline_and_comment_switch_are_checked_before_sign_off(api, ctx):
    from bot.models import Post

    post = create(api, byline="县委宣传部新闻科", open_comment=False)
    with ctx.session() as s:
        stored = s.get(Post, post["id"])
        assert (stored.byline, stored.open_comment) == ("县委宣传部新闻科", False)
    too_long = create(api, byline="县委宣传部新闻科融媒体中心编辑部值班室")
    refused = api("POST", f"/api/posts/{too_long['id']}/submit", "xuanchuan", 422)
    assert refused["code"] == "check.failed"
    assert any("作者最多 16 个字" in p["message_zh"] for p in refused["detail"]["problems"])
