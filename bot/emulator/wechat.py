"""WeChat Official Account (公众号) API, emulated on ``/wechat/cgi-bin/`` and ``/wechat/datacube/``.

Point wechatpy 1.8 at it with ``client.API_BASE_URL = f"{base}/wechat/cgi-bin/"`` and
``client.datacube.API_BASE_URL = f"{base}/wechat/datacube/"``; wechatpy's
``fetch_access_token`` uses a hard-coded ``https://api.weixin.qq.com/cgi-bin/token``, so
the connector must fetch ``{base}/wechat/cgi-bin/token`` itself (see
``bot.emulator.testing.wechat_client``).

All answers are HTTP 200 JSON (``errcode``/``errmsg`` on errors) as on the real platform.
Error codes used (official meanings):

=====  ===========================================================================
40001  invalid credential (unknown or superseded access_token)
40002  invalid grant_type
40003  invalid openid (custom message to a user who never followed the account)
40004  invalid media type
40005  invalid file type (upload that is not an image for type image/thumb)
40007  invalid media_id (unknown draft, media or thumb_media_id)
40008  invalid message type
40009  invalid image size (> 10 MB); 40010 voice; 40011 video; 40012 thumb (> 64 KB)
40013  invalid appid (only when auto_register is off)
40097  invalid args (bad publish_id, offset/count out of range ...)
40125  invalid appsecret
40164  invalid ip, not in whitelist (config ``wechat_ip_whitelist``)
41001  access_token missing; 41002 appid missing; 41004 appsecret missing
41005  media data missing
42001  access_token expired
43001  require GET method; 43002 require POST method
44003  empty news data; 44004 empty content
45002  content size out of limit; 45003 title size out of limit;
       45004 description (digest) size out of limit; 45008 article size out of limit;
       45110 author size out of limit
45009  reach max api daily quota limit (per account and API, ``wechat_quotas``:
       API_Call_Limits.html, e.g. freepublish/submit, /get, /batchget 100 a day)
45015  response out of time limit or subscription is canceled (48 h window)
47001  data format error (body is not JSON)
48001  api unauthorized (an API the emulator does not serve)
53600  Article ID 无效
61500  date format error; 61501 date range error (datacube)
88000  without comment privilege; 88001 msg_data is not exists; 88005 already reply;
88007  reply content beyond max len or content len is zero; 88008 comment is not exists;
88010  count range error (count must be 1..49); 88011 begin range error;
88012  type range error
=====  ===========================================================================

Publishing is asynchronous: a ``freepublish/submit`` job reports ``publish_status`` 1
(publishing) until ``wechat_publish_delay_s`` has passed, then 0 (success) or 4 (platform
audit failed: banned word or an injected ``reject``), and the emulator pushes
PUBLISHJOBFINISH to the account's callback URL (``bot.emulator.push.push_publish_results``).
Comment ``index`` is 0-based as in the official docs (wechatpy's default ``index=1``
means the second article).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from bot.emulator import faults
from bot.emulator.state import BEIJING, EmulatorState, random_token

JSON_TYPE = "application/json; encoding=utf-8"
MEDIA_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
MEDIA_LIMITS = {"image": (10 * 1024 * 1024, 40009, "invalid image size"),
                "thumb": (64 * 1024, 40012, "invalid thumb size"),
                "voice": (2 * 1024 * 1024, 40010, "invalid voice size"),
                "video": (10 * 1024 * 1024, 40011, "invalid video size")}
CUSTOM_MSG_TYPES = {"text", "image", "voice", "video", "music", "news", "mpnews",
                    "mpnewsarticle", "msgmenu", "wxcard", "miniprogrampage"}
# user actions that open the 48 h customer-service window (all but unsubscribe)
WINDOW_OPENING = {"text", "image", "voice", "video", "shortvideo", "location", "link",
                  "subscribe", "click", "view", "scan"}


class WeChatError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    def body(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "errmsg": self.errmsg}


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                    status_code=status, media_type=JSON_TYPE)


def _ok(**extra: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **extra}


@dataclass
class Upload:
    filename: str
    content_type: str
    content: bytes


@dataclass
class Call:
    path: str
    method: str
    query: dict[str, str]
    body: bytes
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)
    appid: str | None = None
    client_ip: str = ""

    def json(self) -> dict[str, Any]:
        try:
            payload = json.loads(self.body.decode("utf-8")) if self.body else {}
        except (UnicodeDecodeError, ValueError) as exc:
            raise WeChatError(47001, "data format error") from exc
        if not isinstance(payload, dict):
            raise WeChatError(47001, "data format error")
        return payload


@dataclass
class Route:
    fn: Callable[[EmulatorState, Call], Any]
    method: str
    auth: bool


ROUTES: dict[str, Route] = {}


def api(path: str, method: str = "POST", auth: bool = True):
    def register(fn: Callable[[EmulatorState, Call], Any]):
        ROUTES[path] = Route(fn, method, auth)
        return fn
    return register


def _int(value: Any, errcode: int = 40097, errmsg: str = "invalid args") -> int:
    if isinstance(value, bool):
        raise WeChatError(errcode, errmsg)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise WeChatError(errcode, errmsg) from exc


def _new_media_id() -> str:
    return random_token(43, MEDIA_ID_ALPHABET)


def _quota(state: EmulatorState, appid: str, api: str) -> None:
    """Count one call of `api` in its window (the Beijing day) or raise 45009 (API_Call_Limits.html)."""
    limit = state.config["wechat_quotas"].get(api)
    if limit is None:
        return
    length = state.config["wechat_quota_window_s"]
    window = int((state.now() + 8 * 3600) // length)  # windows aligned on Beijing midnight
    counts = state.data["wechat"]["quota"]
    key = f"{appid}:{api}:{window}"
    if counts.get(key, 0) >= limit:
        raise WeChatError(45009, "reach max api daily quota limit")
    counts[key] = counts.get(key, 0) + 1
    state.changed()


# ---- access tokens -------------------------------------------------------------------

def _account_for_secret(state: EmulatorState, appid: str | None, secret: str | None) -> dict:
    if not appid:
        raise WeChatError(41002, "appid missing")
    if not secret:
        raise WeChatError(41004, "appsecret missing")
    account = state.data["wechat"]["accounts"].get(appid)
    if account is None:
        if not state.config["auto_register"]:
            raise WeChatError(40013, "invalid appid")
        return state.register_wechat_account(appid=appid, secret=secret, auto=True)
    if account["secret"] != secret:
        raise WeChatError(40125, "invalid appsecret")
    return account


def _issue_token(state: EmulatorState, appid: str, kind: str, force: bool) -> dict:
    now = state.now()
    tokens = state.data["wechat"]["tokens"]
    mine = [(t, rec) for t, rec in tokens.items()
            if rec["appid"] == appid and rec["kind"] == kind and rec["expires_at"] > now
            and not rec.get("superseded")]
    # api_getstableaccesstoken: stable tokens are isolated from /cgi-bin/token ones and a non-forced call
    # returns the valid one; api_getaccesstoken: a new token invalidates the previous (5 min grace).
    if kind == "stable" and not force and mine:
        token, rec = max(mine, key=lambda item: item[1]["issued"])
        return {"access_token": token, "expires_in": int(rec["expires_at"] - now)}
    _quota(state, appid, "stable_token" if kind == "stable" else "token")
    grace = state.config["wechat_token_grace_s"]
    for _, rec in mine:
        rec["expires_at"] = min(rec["expires_at"], now + grace)
        rec["superseded"] = True
    for token in [t for t, rec in tokens.items() if rec["expires_at"] < now - 86400]:
        del tokens[token]
    token = random_token(40) + random_token(40)
    ttl = state.config["wechat_token_expires_in"]
    tokens[token] = {"appid": appid, "kind": kind, "issued": now, "expires_at": now + ttl}
    state.changed()
    return {"access_token": token, "expires_in": ttl}


@api("token", method="GET", auth=False)
def token(state: EmulatorState, call: Call) -> dict:
    if call.query.get("grant_type") != "client_credential":
        raise WeChatError(40002, "invalid grant_type")
    account = _account_for_secret(state, call.query.get("appid"), call.query.get("secret"))
    return _issue_token(state, account["appid"], "normal", force=True)


@api("stable_token", auth=False)
def stable_token(state: EmulatorState, call: Call) -> dict:
    body = call.json()
    if body.get("grant_type") != "client_credential":
        raise WeChatError(40002, "invalid grant_type")
    account = _account_for_secret(state, body.get("appid"), body.get("secret"))
    return _issue_token(state, account["appid"], "stable", force=bool(body.get("force_refresh")))


def authenticate(state: EmulatorState, call: Call) -> None:
    access_token = call.query.get("access_token")
    if not access_token:
        raise WeChatError(41001, "access_token missing")
    rec = state.data["wechat"]["tokens"].get(access_token)
    if rec is None:
        raise WeChatError(40001, "invalid credential, access_token is invalid or not latest")
    if rec["expires_at"] <= state.now():
        if rec.get("superseded"):
            raise WeChatError(40001, "invalid credential, access_token is invalid or not latest")
        raise WeChatError(42001, "access_token expired")
    call.appid = rec["appid"]


def expire_tokens_of(state: EmulatorState, access_token: str | None) -> None:
    """Expire every token of the account owning ``access_token`` (token_expired fault)."""
    with state.lock:
        tokens = state.data["wechat"]["tokens"]
        rec = tokens.get(access_token or "")
        if rec is None:
            return
        now = state.now()
        for other in tokens.values():
            if other["appid"] == rec["appid"] and other["expires_at"] > now:
                other["expires_at"] = now
        state.changed()
        state.flush()


# ---- media ---------------------------------------------------------------------------

def _image_kind(content: bytes) -> str | None:
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if content[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if content.startswith(b"BM"):
        return "bmp"
    return None


@api("material/add_material")
def add_material(state: EmulatorState, call: Call) -> dict:
    media_type = call.query.get("type") or call.fields.get("type")
    if media_type not in MEDIA_LIMITS:
        raise WeChatError(40004, "invalid media type")
    upload = call.files.get("media")
    if upload is None or not upload.content:
        raise WeChatError(41005, "media data missing")
    limit, errcode, errmsg = MEDIA_LIMITS[media_type]
    if len(upload.content) > limit:
        raise WeChatError(errcode, errmsg)
    fmt = None
    if media_type in ("image", "thumb"):
        fmt = _image_kind(upload.content)
        if fmt is None:
            raise WeChatError(40005, "invalid file type")
    media_id = _new_media_id()
    record = {
        "appid": call.appid,
        "type": media_type,
        "filename": upload.filename,
        "content_type": upload.content_type,
        "size": len(upload.content),
        "sha1": hashlib.sha1(upload.content).hexdigest(),
        "created": state.now(),
    }
    result: dict[str, Any] = {"media_id": media_id}
    if media_type in ("image", "thumb"):
        record["url"] = (f"http://mmbiz.qpic.cn/sz_mmbiz_{fmt}/{random_token(40)}/0"
                         f"?wx_fmt={fmt}")
        result["url"] = record["url"]
    state.data["wechat"]["media"][media_id] = record
    state.put_blob(media_id, upload.content)
    state.changed()
    return result


@api("media/uploadimg")
def upload_article_image(state: EmulatorState, call: Call) -> dict:
    """An image for use inside article content (not counted as material)."""
    upload = call.files.get("media")
    if upload is None or not upload.content:
        raise WeChatError(41005, "media data missing")
    fmt = _image_kind(upload.content)
    if fmt not in ("png", "jpeg"):
        raise WeChatError(40005, "invalid file type")
    if len(upload.content) > 1024 * 1024:
        raise WeChatError(40009, "invalid image size")
    return {"url": f"http://mmbiz.qpic.cn/mmbiz_{fmt}/{random_token(40)}/0"}


def _own_media(state: EmulatorState, call: Call, media_id: Any) -> dict:
    record = state.data["wechat"]["media"].get(media_id) if isinstance(media_id, str) else None
    if record is None or record["appid"] != call.appid:
        raise WeChatError(40007, "invalid media_id")
    return record


@api("material/get_material")
def get_material(state: EmulatorState, call: Call) -> Any:
    media_id = call.json().get("media_id")
    record = _own_media(state, call, media_id)
    content = state.get_blob(media_id) or b""
    return Response(content, media_type=record.get("content_type") or "application/octet-stream")


@api("material/del_material")
def del_material(state: EmulatorState, call: Call) -> dict:
    media_id = call.json().get("media_id")
    _own_media(state, call, media_id)
    del state.data["wechat"]["media"][media_id]
    state.changed()
    return _ok()


@api("material/get_materialcount", method="GET")
def get_materialcount(state: EmulatorState, call: Call) -> dict:
    counts = {"voice_count": 0, "video_count": 0, "image_count": 0, "news_count": 0}
    for record in state.data["wechat"]["media"].values():
        if record["appid"] == call.appid and record["type"] in ("voice", "video", "image"):
            counts[f"{record['type']}_count"] += 1
    return counts


# ---- drafts (草稿箱) ------------------------------------------------------------------

def _digest_of(content: str) -> str:
    text = html.unescape(re.sub(r"<[^>]+>", "", content))
    return re.sub(r"\s+", " ", text).strip()[:54]


_SCRIPT = re.compile(r"<script\b.*?</script\s*>", re.I | re.S)
_IMG = re.compile(r"<img\b[^>]*>", re.I)
_IMG_SRC = re.compile(r"""\bsrc\s*=\s*["']([^"']*)["']""", re.I)
WECHAT_IMAGE_HOSTS = ("mmbiz.qpic.cn", "mmbiz.qlogo.cn")


def _filter_content(content: str) -> str:
    """What WeChat keeps of an article body: no scripts, no images but those it hosts."""
    def keep(m: re.Match) -> str:
        src = _IMG_SRC.search(m.group(0))
        host = re.sub(r"^https?://([^/]+).*$", r"\1", src.group(1)).lower() if src else ""
        return m.group(0) if host in WECHAT_IMAGE_HOSTS else ""
    return _IMG.sub(keep, _SCRIPT.sub("", content))


def _article(state: EmulatorState, call: Call, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise WeChatError(44003, "empty news data")
    title = raw.get("title") or ""
    content = raw.get("content") or ""
    author = raw.get("author") or ""
    digest = raw.get("digest") or ""
    if not isinstance(title, str) or not title.strip():
        raise WeChatError(44003, "empty news data")
    if len(title) > 32:  # Add_draft: title 总长度不超过32个字
        raise WeChatError(45003, "title size out of limit")
    if len(author) > 16:  # Add_draft: author 总长度不超过16个字
        raise WeChatError(45110, "author size out of limit")
    if len(digest) > 128:  # Add_draft: digest 总长度不超过128个字
        raise WeChatError(45004, "description size out of limit")
    if not isinstance(content, str) or not content.strip():
        raise WeChatError(44004, "empty content")
    # Add_draft: content 必须少于2万字符, 小于1M
    if len(content) >= 20000 or len(content.encode("utf-8")) >= 1024 * 1024:
        raise WeChatError(45002, "content size out of limit")
    # Add_draft: 此处会去除JS; 图片url必须来源 media/uploadimg, 外部图片url将被过滤
    content = _filter_content(content)
    # Add_draft: thumb_media_id 必须是永久MediaID; one the account does not hold (never uploaded, or deleted)
    # gets 40007 invalid media_id (community reports: other-blowsnow/n8n-nodes-wechat-offiaccount#28, #34).
    thumb = _own_media(state, call, raw.get("thumb_media_id"))
    return {
        "title": title,
        "author": author,
        "digest": digest or _digest_of(content),
        "content": content,
        "content_source_url": raw.get("content_source_url") or "",
        "thumb_media_id": raw["thumb_media_id"],
        "thumb_url": thumb.get("url", ""),
        "show_cover_pic": int(raw.get("show_cover_pic", 0) or 0),
        "need_open_comment": int(raw.get("need_open_comment", 0) or 0),
        "only_fans_can_comment": int(raw.get("only_fans_can_comment", 0) or 0),
        "url": f"http://mp.weixin.qq.com/s?__biz={random_token(16)}&tempkey={random_token(32)}",
    }


def _articles(state: EmulatorState, call: Call, raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise WeChatError(44003, "empty news data")
    if len(raw) > 8:
        raise WeChatError(45008, "article size out of limit")
    return [_article(state, call, item) for item in raw]


def _own_draft(state: EmulatorState, call: Call, media_id: Any) -> dict:
    draft = state.data["wechat"]["drafts"].get(media_id) if isinstance(media_id, str) else None
    if draft is None or draft["appid"] != call.appid:
        raise WeChatError(40007, "invalid media_id")
    return draft


@api("draft/add")
def draft_add(state: EmulatorState, call: Call) -> dict:
    articles = _articles(state, call, call.json().get("articles"))
    media_id = _new_media_id()
    now = int(state.now())
    state.data["wechat"]["drafts"][media_id] = {
        "appid": call.appid, "news_item": articles, "create_time": now, "update_time": now}
    state.changed()
    return {"media_id": media_id}


@api("draft/get")
def draft_get(state: EmulatorState, call: Call) -> dict:
    draft = _own_draft(state, call, call.json().get("media_id"))
    return {"news_item": draft["news_item"]}


@api("draft/delete")
def draft_delete(state: EmulatorState, call: Call) -> dict:
    media_id = call.json().get("media_id")
    _own_draft(state, call, media_id)
    del state.data["wechat"]["drafts"][media_id]
    state.changed()
    return _ok()


@api("draft/update")
def draft_update(state: EmulatorState, call: Call) -> dict:
    body = call.json()
    draft = _own_draft(state, call, body.get("media_id"))
    index = _int(body.get("index", 0))
    if not 0 <= index < len(draft["news_item"]):
        raise WeChatError(40097, "invalid args")
    draft["news_item"][index] = _article(state, call, body.get("articles"))
    draft["update_time"] = int(state.now())
    state.changed()
    return _ok()


@api("draft/count", method="GET")
def draft_count(state: EmulatorState, call: Call) -> dict:
    drafts = state.data["wechat"]["drafts"].values()
    return {"total_count": sum(1 for d in drafts if d["appid"] == call.appid)}


def _page(body: dict[str, Any]) -> tuple[int, int, bool]:
    offset = _int(body.get("offset", 0))
    count = _int(body.get("count", 20))
    if offset < 0 or not 1 <= count <= 20:
        raise WeChatError(40097, "invalid args")
    return offset, count, bool(_int(body.get("no_content", 0)))


def _news_items(items: list[dict[str, Any]], no_content: bool) -> list[dict[str, Any]]:
    if not no_content:
        return items
    return [{k: v for k, v in item.items() if k != "content"} for item in items]


@api("draft/batchget")
def draft_batchget(state: EmulatorState, call: Call) -> dict:
    offset, count, no_content = _page(call.json())
    drafts = sorted(((mid, d) for mid, d in state.data["wechat"]["drafts"].items()
                     if d["appid"] == call.appid),
                    key=lambda item: item[1]["update_time"], reverse=True)
    page = drafts[offset:offset + count]
    return {
        "total_count": len(drafts),
        "item_count": len(page),
        "item": [{"media_id": mid,
                  "content": {"news_item": _news_items(d["news_item"], no_content),
                              "create_time": d["create_time"],
                              "update_time": d["update_time"]},
                  "update_time": d["update_time"]} for mid, d in page],
    }


# ---- publishing (发布) ----------------------------------------------------------------

@api("freepublish/submit")
def freepublish_submit(state: EmulatorState, call: Call) -> dict:
    media_id = call.json().get("media_id")
    draft = _own_draft(state, call, media_id)
    rejected = state.faults.take("wechat", call.path, ["reject"]) is not None
    publish_id = str(state.next_seq("wechat_publish_id", 100000001))
    msg_data_id = state.next_seq("wechat_msg_data_id", 2247483649)
    state.data["wechat"]["publishes"][publish_id] = {
        "appid": call.appid,
        "publish_id": publish_id,
        "msg_data_id": msg_data_id,
        "draft_media_id": media_id,
        "news_item": draft["news_item"],
        "submit_time": state.now(),
        "polls": 0,
        "status": 1,
        "forced_reject": rejected,
        "article_id": None,
        "fail_idx": [],
    }
    del state.data["wechat"]["drafts"][media_id]
    state.changed()
    return _ok(publish_id=publish_id, msg_data_id=msg_data_id)


def settle_publishes(state: EmulatorState) -> None:
    """Finish publish jobs that have run for wechat_publish_delay_s (polling does not hurry them)."""
    with state.lock:
        now = state.now()
        delay = state.config["wechat_publish_delay_s"]
        for job in state.data["wechat"]["publishes"].values():
            if job["status"] == 1 and now - job["submit_time"] >= delay:
                _finish(state, job, now)


def _finish(state: EmulatorState, job: dict[str, Any], now: float) -> None:
    items = job["news_item"]
    failed = [i + 1 for i, item in enumerate(items)
              if state.contains_banned(item["title"], item["digest"], item["content"])]
    if job["forced_reject"] and not failed:
        failed = list(range(1, len(items) + 1))
    if failed:
        job["status"] = 4
        job["fail_idx"] = failed
        state.changed()
        return
    article_id = random_token(44, MEDIA_ID_ALPHABET)
    published = []
    for item in items:
        entry = {k: v for k, v in item.items()}
        entry["url"] = f"https://mp.weixin.qq.com/s/{random_token(22, MEDIA_ID_ALPHABET)}"
        entry["is_deleted"] = False
        published.append(entry)
    job["status"] = 0
    job["article_id"] = article_id
    job["finish_time"] = now
    state.data["wechat"]["articles"][article_id] = {
        "appid": job["appid"],
        "article_id": article_id,
        "publish_id": job["publish_id"],
        "msg_data_id": job["msg_data_id"],
        "news_item": published,
        "create_time": int(job["submit_time"]),
        "update_time": int(now),
    }
    state.changed()


def _publish_status(state: EmulatorState, job: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"publish_id": job["publish_id"], "publish_status": job["status"]}
    article = state.data["wechat"]["articles"].get(job["article_id"] or "")
    if article is not None:
        if all(item["is_deleted"] for item in article["news_item"]):
            result["publish_status"] = 5
        result["article_id"] = article["article_id"]
        result["article_detail"] = {
            "count": len(article["news_item"]),
            "item": [{"idx": i + 1, "article_url": item["url"]}
                     for i, item in enumerate(article["news_item"])],
        }
    result["fail_idx"] = job["fail_idx"]
    return result


@api("freepublish/get")
def freepublish_get(state: EmulatorState, call: Call) -> dict:
    publish_id = str(call.json().get("publish_id", ""))
    job = state.data["wechat"]["publishes"].get(publish_id)
    if job is None or job["appid"] != call.appid:
        raise WeChatError(40097, "invalid args")
    settle_publishes(state)
    if job["status"] == 1:
        job["polls"] += 1
        state.changed()
    return _publish_status(state, job)


def _own_articles(state: EmulatorState, appid: str | None) -> list[dict[str, Any]]:
    settle_publishes(state)
    articles = [a for a in state.data["wechat"]["articles"].values() if a["appid"] == appid]
    return sorted(articles, key=lambda a: (a["update_time"], a["msg_data_id"]), reverse=True)


@api("freepublish/batchget")
def freepublish_batchget(state: EmulatorState, call: Call) -> dict:
    offset, count, no_content = _page(call.json())
    articles = _own_articles(state, call.appid)
    page = articles[offset:offset + count]
    return {
        "total_count": len(articles),
        "item_count": len(page),
        "item": [{"article_id": a["article_id"],
                  "content": {"news_item": _news_items(a["news_item"], no_content),
                              "create_time": a["create_time"],
                              "update_time": a["update_time"]},
                  "update_time": a["update_time"]} for a in page],
    }


def _own_article(state: EmulatorState, call: Call, article_id: Any) -> dict[str, Any]:
    settle_publishes(state)
    article = (state.data["wechat"]["articles"].get(article_id)
               if isinstance(article_id, str) else None)
    if article is None or article["appid"] != call.appid:
        raise WeChatError(53600, "Article ID 无效")
    return article


@api("freepublish/getarticle")
def freepublish_getarticle(state: EmulatorState, call: Call) -> dict:
    article = _own_article(state, call, call.json().get("article_id"))
    return {"news_item": article["news_item"]}


@api("freepublish/delete")
def freepublish_delete(state: EmulatorState, call: Call) -> dict:
    body = call.json()
    article = _own_article(state, call, body.get("article_id"))
    index = _int(body.get("index", 0))
    if not 0 <= index <= len(article["news_item"]):
        raise WeChatError(40097, "invalid args")
    targets = article["news_item"] if index == 0 else [article["news_item"][index - 1]]
    for item in targets:
        item["is_deleted"] = True
    article["update_time"] = int(state.now())
    state.changed()
    return _ok()


# ---- comments (留言) -------------------------------------------------------------------

def find_article_by_msg(state: EmulatorState, msg_data_id: Any) -> dict[str, Any] | None:
    settle_publishes(state)
    try:
        wanted = int(msg_data_id)
    except (TypeError, ValueError):
        return None
    for article in state.data["wechat"]["articles"].values():
        if article["msg_data_id"] == wanted:
            return article
    return None


def _comment_target(state: EmulatorState, call: Call,
                    body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    article = find_article_by_msg(state, body.get("msg_data_id"))
    index = _int(body.get("index", 0) or 0, 88001, "msg_data is not exists")
    if (article is None or article["appid"] != call.appid
            or not 0 <= index < len(article["news_item"])):
        raise WeChatError(88001, "msg_data is not exists")
    return article, index


def _comments(state: EmulatorState, article: dict[str, Any], index: int) -> list[dict]:
    key = f"{article['msg_data_id']}:{index}"
    return state.data["wechat"]["comments"].setdefault(key, [])


def _find_comment(state: EmulatorState, call: Call, body: dict[str, Any]) -> dict[str, Any]:
    article, index = _comment_target(state, call, body)
    wanted = _int(body.get("user_comment_id"), 88008, "comment is not exists")
    for comment in _comments(state, article, index):
        if comment["user_comment_id"] == wanted and not comment.get("deleted"):
            return comment
    raise WeChatError(88008, "comment is not exists")


def _set_open(state: EmulatorState, call: Call, value: int) -> dict:
    article, index = _comment_target(state, call, call.json())
    article["news_item"][index]["need_open_comment"] = value
    state.changed()
    return _ok()


@api("comment/open")
def comment_open(state: EmulatorState, call: Call) -> dict:
    return _set_open(state, call, 1)


@api("comment/close")
def comment_close(state: EmulatorState, call: Call) -> dict:
    return _set_open(state, call, 0)


@api("comment/list")
def comment_list(state: EmulatorState, call: Call) -> dict:
    body = call.json()
    article, index = _comment_target(state, call, body)
    begin = _int(body.get("begin", 0), 88011, "begin range error. begin < 0")
    count = _int(body.get("count"), 88010, "count range error. cout <= 0 or count > 50")
    kind = _int(body.get("type", 0), 88012, "type range error")
    if begin < 0:
        raise WeChatError(88011, "begin range error. begin < 0")
    if not 0 < count < 50:
        raise WeChatError(88010, "count range error. cout <= 0 or count > 50")
    if kind not in (0, 1, 2):
        raise WeChatError(88012, "type range error")
    wanted = [c for c in _comments(state, article, index) if not c.get("deleted")
              and (kind == 0 or (kind == 1 and c["comment_type"] == 0)
                   or (kind == 2 and c["comment_type"] == 1))]
    page = []
    for comment in wanted[begin:begin + count]:
        entry = {k: comment[k] for k in ("user_comment_id", "openid", "create_time",
                                         "content", "comment_type")}
        if comment.get("reply"):
            entry["reply"] = dict(comment["reply"])
        page.append(entry)
    return _ok(total=len(wanted), comment=page)


def _mark(state: EmulatorState, call: Call, value: int) -> dict:
    _find_comment(state, call, call.json())["comment_type"] = value
    state.changed()
    return _ok()


@api("comment/markelect")
def comment_markelect(state: EmulatorState, call: Call) -> dict:
    return _mark(state, call, 1)


@api("comment/unmarkelect")
def comment_unmarkelect(state: EmulatorState, call: Call) -> dict:
    return _mark(state, call, 0)


@api("comment/delete")
def comment_delete(state: EmulatorState, call: Call) -> dict:
    _find_comment(state, call, call.json())["deleted"] = True
    state.changed()
    return _ok()


@api("comment/reply/add")
def comment_reply_add(state: EmulatorState, call: Call) -> dict:
    body = call.json()
    comment = _find_comment(state, call, body)
    content = body.get("content")
    if not isinstance(content, str) or not content.strip() or len(content) > 1000:
        raise WeChatError(88007, "reply content beyond max len or content len is zero")
    if comment.get("reply"):
        raise WeChatError(88005, "already reply")
    comment["reply"] = {"content": content, "create_time": int(state.now())}
    if state.config["wechat_comment_reorder_on_reply"]:
        # unverified (community reports): the list is not append-only; a replied comment moves up.
        article, index = _comment_target(state, call, body)
        comments = _comments(state, article, index)
        comments.remove(comment)
        comments.insert(0, comment)
    state.changed()
    return _ok()


@api("comment/reply/delete")
def comment_reply_delete(state: EmulatorState, call: Call) -> dict:
    comment = _find_comment(state, call, call.json())
    comment.pop("reply", None)
    state.changed()
    return _ok()


def inject_comment(state: EmulatorState, *, openid: str, content: str,
                   msg_data_id: int | str | None = None, article_id: str | None = None,
                   index: int = 0, comment_type: int = 0, position: int | None = None) -> dict[str, Any]:
    """A reader leaves a comment (留言) under a published article (admin API, demo)."""
    if not openid or not content:
        raise ValueError("a WeChat comment needs openid and content")
    with state.lock:
        if article_id is not None:
            settle_publishes(state)
            article = state.data["wechat"]["articles"].get(article_id)
        else:
            article = find_article_by_msg(state, msg_data_id)
        if article is None:
            raise ValueError(f"no published article with msg_data_id={msg_data_id!r} "
                             f"article_id={article_id!r}")
        if not 0 <= index < len(article["news_item"]):
            raise ValueError(f"article {article['article_id']} has no index {index} "
                             f"(0-based, {len(article['news_item'])} articles)")
        comments = _comments(state, article, index)
        comment = {
            "user_comment_id": max((c["user_comment_id"] for c in comments), default=0) + 1,
            "openid": openid,
            "create_time": int(state.now()),
            "content": content,
            "comment_type": comment_type,
        }
        # `position`: where the comment shows up in the list (it is not append-only, see reply).
        comments.insert(len(comments) if position is None else max(0, position), comment)
        state.changed()
        state.flush()
        return {"appid": article["appid"], "article_id": article["article_id"],
                "msg_data_id": article["msg_data_id"], "index": index, **comment}


# ---- customer-service messages (客服消息) ----------------------------------------------

def record_user_action(state: EmulatorState, appid: str, openid: str, action: str) -> None:
    """Remember a user's interaction; it opens (or, for unsubscribe, closes) the 48 h window."""
    with state.lock:
        followers = state.data["wechat"]["followers"].setdefault(appid, {})
        entry = followers.setdefault(openid, {"subscribed": True, "last_interaction": None})
        if action == "unsubscribe":
            entry["subscribed"] = False
        elif action in WINDOW_OPENING:
            entry["subscribed"] = True
            entry["last_interaction"] = state.now()
        state.changed()
        state.flush()


@api("message/custom/send")
def custom_send(state: EmulatorState, call: Call) -> dict:
    body = call.json()
    touser = body.get("touser")
    msgtype = body.get("msgtype")
    follower = state.data["wechat"]["followers"].get(call.appid or "", {}).get(touser or "")
    if not touser or follower is None:
        raise WeChatError(40003, "invalid openid")
    if msgtype not in CUSTOM_MSG_TYPES:
        raise WeChatError(40008, "invalid message type")
    payload = body.get(msgtype)
    if not isinstance(payload, dict):
        raise WeChatError(44004, "empty content")
    if msgtype == "text":
        content = payload.get("content")
        if not isinstance(content, str) or not content:
            raise WeChatError(44004, "empty content")
        if len(content.encode("utf-8")) > 2048:
            raise WeChatError(45002, "content size out of limit")
    last = follower.get("last_interaction")
    window = state.config["wechat_custom_window_s"]
    if not follower["subscribed"] or last is None or state.now() - last > window:
        raise WeChatError(45015, "response out of time limit or subscription is canceled")
    state.append_log(state.data["wechat"]["custom_messages"], {
        "appid": call.appid, "touser": touser, "msgtype": msgtype, msgtype: payload,
        "time": state.now()})
    return _ok()


# ---- data cube (图文分析) -------------------------------------------------------------

def _date(value: Any) -> date:
    try:
        return datetime.strptime(str(value), "%Y-%m-%d").date()
    except ValueError as exc:
        raise WeChatError(61500, "date format error") from exc


def _date_range(state: EmulatorState, call: Call) -> date:
    body = call.json()
    begin, end = _date(body.get("begin_date")), _date(body.get("end_date"))
    today = datetime.fromtimestamp(state.now(), BEIJING).date()
    # article statistics span one day and are available up to yesterday only
    if begin != end or end >= today:
        raise WeChatError(61501, "date range error")
    return begin


def article_metrics(article_id: str, idx: int, day: int) -> dict[str, int]:
    """Cumulative plausible statistics ``day`` days after publication, deterministic."""
    seed = int(hashlib.sha256(f"{article_id}:{idx}".encode()).hexdigest()[:16], 16)
    target_user = 3000 + seed % 20000
    final_readers = 80 + (seed >> 8) % 4000
    share = 0.3 + 0.7 * (1 - 0.4 ** (day + 1))
    read_user = int(final_readers * share)
    share_user = read_user * (2 + (seed >> 20) % 8) // 100
    fav_user = read_user * (1 + (seed >> 24) % 4) // 100
    return {
        "target_user": target_user,
        "int_page_read_user": read_user,
        "int_page_read_count": read_user + read_user // 5,
        "ori_page_read_user": read_user // 20,
        "ori_page_read_count": read_user // 18,
        "share_user": share_user,
        "share_count": share_user + share_user // 4,
        "add_to_fav_user": fav_user,
        "add_to_fav_count": fav_user,
    }


def _articles_of_day(state: EmulatorState, call: Call, day: date):
    for article in _own_articles(state, call.appid):
        published = datetime.fromtimestamp(article["create_time"], BEIJING).date()
        if published == day:
            for i, item in enumerate(article["news_item"]):
                yield article, i, item


@api("datacube/getarticlesummary")
def getarticlesummary(state: EmulatorState, call: Call) -> dict:
    day = _date_range(state, call)
    rows = []
    for article, i, item in _articles_of_day(state, call, day):
        metrics = article_metrics(article["article_id"], i, 0)
        metrics.pop("target_user")
        rows.append({"ref_date": day.isoformat(), "msgid": f"{article['msg_data_id']}_{i + 1}",
                     "title": item["title"], **metrics})
    return {"list": rows}


@api("datacube/getarticletotal")
def getarticletotal(state: EmulatorState, call: Call) -> dict:
    # api_getarticletotal: 获取群发文章 (mass-sent articles only; no longer maintained). The
    # emulator has no mass send, so freepublish articles never appear here.
    _date_range(state, call)
    return {"list": []}


@api("datacube/getarticletotaldetail")
def getarticletotaldetail(state: EmulatorState, call: Call) -> dict:
    """api_getarticletotaldetail: 发表内容 (freepublish) figures per article, one row per day since."""
    day = _date_range(state, call)
    yesterday = datetime.fromtimestamp(state.now(), BEIJING).date() - timedelta(days=1)
    rows = []
    for article, i, _item in _articles_of_day(state, call, day):
        details = []
        for d in range(min(29, (yesterday - day).days) + 1):
            today, before = article_metrics(article["article_id"], i, d), (
                article_metrics(article["article_id"], i, d - 1) if d else None)
            details.append({"stat_date": (day + timedelta(days=d)).isoformat(),
                            "read_user": today["int_page_read_user"] - (before["int_page_read_user"] if before else 0),
                            "share_user": today["share_user"] - (before["share_user"] if before else 0)})
        rows.append({"ref_date": day.isoformat(), "msgid": f"{article['msg_data_id']}_{i + 1}",
                     "publish_type": 0, "detail_list": details})
    return {"list": rows, "is_delay": False}


# ---- dispatch ------------------------------------------------------------------------

class _Responder:
    def __init__(self, state: EmulatorState, call: Call) -> None:
        self.state = state
        self.call = call

    def server_error(self, status: int) -> Response:
        return Response(f"<html><head><title>{status} Error</title></head><body><center>"
                        f"<h1>{status} Error</h1></center><hr><center>nginx</center></body>"
                        "</html>", status_code=status, media_type="text/html")

    def gateway_timeout(self) -> Response:
        return self.server_error(504)

    def rate_limited(self) -> Response:
        return json_response(WeChatError(45009, "reach max api daily quota limit").body())


    def token_expired(self) -> Response:
        expire_tokens_of(self.state, self.call.query.get("access_token"))
        return json_response(WeChatError(42001, "access_token expired").body())


async def read_call(request: Request, path: str) -> Call:
    call = Call(path=path, method=request.method.upper(), query=dict(request.query_params),
                body=await request.body(), client_ip=request.client.host if request.client else "")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                call.files[name] = Upload(value.filename or "", value.content_type or "",
                                          await value.read())
            else:
                call.fields[name] = value
    return call


def run_call(state: EmulatorState, call: Call) -> Response:
    route = ROUTES.get(call.path)
    try:
        if route is None:
            raise WeChatError(48001, f"api unauthorized (not emulated: {call.path})")
        if route.method != call.method:
            raise (WeChatError(43002, "require POST method") if route.method == "POST"
                   else WeChatError(43001, "require GET method"))
        with state.lock:
            whitelist = state.config["wechat_ip_whitelist"]
            if whitelist and call.client_ip not in whitelist:
                # Global return codes: 40164 调用接口的IP地址不在白名单中
                raise WeChatError(40164, f"invalid ip {call.client_ip}, not in whitelist")
            if route.auth:
                authenticate(state, call)
                _quota(state, call.appid or "", call.path)
            result = route.fn(state, call)
    except WeChatError as exc:
        result = exc.body()
    finally:
        state.flush()
    return result if isinstance(result, Response) else json_response(result)


async def dispatch(state: EmulatorState, request: Request, path: str) -> Response:
    state.count_call("wechat", path)
    call = await read_call(request, path)

    async def handle() -> Response:
        return run_call(state, call)

    return await faults.serve(state.faults, "wechat", path, _Responder(state, call), handle)


def create_router(state: EmulatorState) -> APIRouter:
    router = APIRouter()

    @router.api_route("/cgi-bin/{path:path}", methods=["GET", "POST"],
                      include_in_schema=False)
    async def cgi_bin(path: str, request: Request) -> Response:
        if path.startswith("datacube/"):
            path = f"cgi-bin/{path}"  # data cube lives beside cgi-bin, not under it
        return await dispatch(state, request, path)

    @router.api_route("/datacube/{path:path}", methods=["GET", "POST"],
                      include_in_schema=False)
    async def datacube(path: str, request: Request) -> Response:
        return await dispatch(state, request, f"datacube/{path}")

    return router
