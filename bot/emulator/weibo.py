"""Sina Weibo open API v2, emulated on ``/weibo/2/`` (real: ``https://api.weibo.com/2/``).

The token comes as the ``access_token`` query/form parameter or an
``Authorization: OAuth2 <token>`` header. Tokens are registered through the admin API or,
when ``auto_register`` is on (default), on first use; a token expired or revoked through
``/_emulator/weibo/tokens/revoke`` is refused.

Errors are JSON ``{"error", "error_code", "request": "/2/<path>"}`` with these codes:

=====  ====  =================================================================
code   HTTP  meaning
=====  ====  =================================================================
10001  500   system error! (``http_500`` fault)
10016  400   Miss required parameter (x), see doc for more info (also: share.json
             without ``rip`` while ``weibo_require_rip`` is on)
10017  400   Parameter (x)'s value invalid ... (also: status without a link to
             the app's safe domain ``weibo_safe_domain``)
10020  400   Request api not found!
10021  400   HTTP method is not suported for this request!
10023  403   User requests out of rate limit! (150 calls/hour per user)
10024  403   User requests for (comments/...) out of rate limit! (60 comments/hour)
20005  400   Unsupported image type, only suport JPG, GIF, PNG!
20006  400   Image size too large.
20008  400   Content is null!
20012  400   Text too long, please input text less than 140 characters! (counted as
             Weibo counts: bot.publishing.weibo_length)
20016  400   Update weibo too fast! (30 posts/hour per user)
20019  400   Repeat content! (same text by the same user within 24 h)
20021  400   Content is illegal! (banned word or injected ``reject`` fault)
20101  400   Target weibo does not exist!
20102  400   Not your own weibo!
20201  400   Target weibo comment does not exist!
21301  401   auth faild! (no token at all)
21327  400   expired_token
21332  403   invalid_access_token (revoked, or unknown with auto_register off)
=====  ====  =================================================================

Like the real platform, links in a status are rewritten to ``http://t.cn/...`` short
links in the returned and listed ``text`` (config ``weibo_shorten_urls``), and a reply
made through ``comments/reply.json`` reads ``回复@<name>:<comment>``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from bot.emulator import faults
from bot.emulator.state import BEIJING, EmulatorState
from bot.publishing.weibo_length import hashtags, weibo_length

JSON_TYPE = "application/json;charset=UTF-8"
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
URL_RE = re.compile(r"https?://[^\s<>\"'，。；！？、）)]+")
SOURCE = '<a href="https://app.weibo.com/t/feed/govbot" rel="nofollow">政务微博</a>'
BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
HOUR = 3600.0
MAX_PIC_BYTES = 5 * 1024 * 1024


class WeiboError(Exception):
    def __init__(self, error_code: int, error: str, status: int = 400) -> None:
        super().__init__(f"{error_code} {error}")
        self.error_code = error_code
        self.error = error
        self.status = status


def error_response(path: str, error_code: int, error: str, status: int) -> Response:
    body = {"error": error, "error_code": error_code, "request": f"/2/{path}"}
    return json_response(body, status)


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                    status_code=status, media_type=JSON_TYPE)


def created_at(ts: float) -> str:
    """Weibo's timestamp format, e.g. ``Sat Nov 21 12:08:00 +0800 2026``."""
    dt = datetime.fromtimestamp(ts, BEIJING)
    return (f"{DAYS[dt.weekday()]} {MONTHS[dt.month - 1]} {dt.day:02d} "
            f"{dt:%H:%M:%S} +0800 {dt.year}")


def _missing(name: str) -> WeiboError:
    return WeiboError(10016, f"Miss required parameter ({name}) , see doc for more info")


def _invalid(name: str, expect: str, got: Any) -> WeiboError:
    return WeiboError(10017, f"Parameter ({name})'s value invalid, expect ({expect}) , "
                             f"but get ({got}) , see doc for more info")


@dataclass
class Call:
    path: str
    method: str
    params: dict[str, str]
    headers: dict[str, str]
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    uid: int | None = None
    token: str | None = None

    def int_param(self, name: str, default: int | None = None, *, required: bool = False) -> int:
        raw = self.params.get(name)
        if raw is None or raw == "":
            if required:
                raise _missing(name)
            return 0 if default is None else default
        try:
            return int(raw)
        except ValueError as exc:
            raise _invalid(name, "int64", raw) from exc

    def text_param(self, name: str) -> str:
        value = self.params.get(name)
        if value is None:
            raise _missing(name)
        return value


def token_of(call: Call) -> str | None:
    if call.params.get("access_token"):
        return call.params["access_token"]
    auth = call.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("oauth2", "bearer") and value.strip():
        return value.strip()
    return None


def _hits(state: EmulatorState, uid: int, kind: str) -> list[float]:
    per_user = state.data["weibo"]["hits"].setdefault(str(uid), {})
    now = state.now()
    recent = [t for t in per_user.get(kind, []) if now - t < HOUR]
    per_user[kind] = recent
    return recent


def authenticate(state: EmulatorState, call: Call, *, count: bool = True) -> None:
    token = token_of(call)
    if not token:
        raise WeiboError(21301, "auth faild!", 401)
    record = state.data["weibo"]["tokens"].get(token)
    if record is None:
        if not state.config["auto_register"]:
            raise WeiboError(21332, "invalid_access_token", 403)
        state.register_weibo_account(access_token=token, auto=True)
        record = state.data["weibo"]["tokens"][token]
    if record["status"] == "expired":
        raise WeiboError(21327, "expired_token", 400)
    if record["status"] != "active":
        raise WeiboError(21332, "invalid_access_token", 403)
    call.uid = record["uid"]
    call.token = token
    if count:
        calls = _hits(state, record["uid"], "calls")
        if len(calls) >= state.config["weibo_calls_per_hour"]:
            raise WeiboError(10023, "User requests out of rate limit!", 403)
        calls.append(state.now())
        state.changed()


# ---- views ---------------------------------------------------------------------------

def user_view(state: EmulatorState, uid: int) -> dict[str, Any]:
    user = state.data["weibo"]["users"].get(str(uid))
    if user is None:
        user = state.ensure_weibo_user(uid, f"用户{str(uid)[-6:]}")
    return dict(user)


def _engagement(status_id: int, created: float, now: float) -> tuple[int, int]:
    """Deterministic reposts and likes that grow with the status' age."""
    seed = int(hashlib.sha256(str(status_id).encode()).hexdigest()[:12], 16)
    hours = max(0.0, (now - created) / HOUR)
    growth = 1 - 0.7 ** hours
    return int((seed % 60) * growth), int((20 + (seed >> 12) % 400) * growth)


def status_view(state: EmulatorState, status: dict[str, Any], *,
                with_user: bool = True) -> dict[str, Any]:
    reposts, likes = _engagement(status["id"], status["created"], state.now())
    comments = sum(1 for c in state.data["weibo"]["comments"].values()
                   if c["status_id"] == status["id"] and not c.get("deleted"))
    view: dict[str, Any] = {
        "created_at": created_at(status["created"]),
        "id": status["id"],
        "idstr": str(status["id"]),
        "mid": str(status["id"]),
        "text": status["text"],
        "textLength": sum(2 if ord(ch) > 127 else 1 for ch in status["original_text"]),
        "source": SOURCE,
        "favorited": False,
        "truncated": False,
        "in_reply_to_status_id": "",
        "in_reply_to_user_id": "",
        "pic_ids": list(status["pic_ids"]),
        "reposts_count": reposts,
        "comments_count": comments,
        "attitudes_count": likes,
        "visible": {"type": 0, "list_id": 0},
    }
    if status["pic_ids"]:
        pic = status["pic_ids"][0]
        view["thumbnail_pic"] = f"http://wx1.sinaimg.cn/thumbnail/{pic}.jpg"
        view["bmiddle_pic"] = f"http://wx1.sinaimg.cn/bmiddle/{pic}.jpg"
        view["original_pic"] = f"http://wx1.sinaimg.cn/large/{pic}.jpg"
    if with_user:
        view["user"] = user_view(state, status["uid"])
    return view


def comment_view(state: EmulatorState, comment: dict[str, Any], *,
                 with_status: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "created_at": created_at(comment["created"]),
        "id": comment["id"],
        "idstr": str(comment["id"]),
        "mid": str(comment["id"]),
        "rootid": comment.get("root_id", comment["id"]),
        "text": comment["text"],
        "source": SOURCE,
        "user": user_view(state, comment["uid"]),
    }
    if with_status:
        status = state.data["weibo"]["statuses"].get(str(comment["status_id"]))
        if status is not None:
            view["status"] = status_view(state, status)
    parent = state.data["weibo"]["comments"].get(str(comment.get("reply_to") or ""))
    if parent is not None:
        view["reply_comment"] = comment_view(state, parent, with_status=False)
    return view


def _paged(call: Call, items: list[dict[str, Any]], default_count: int,
           max_count: int) -> tuple[list[dict[str, Any]], int, int]:
    """Newest-first paging with since_id / max_id / count / page, like the real API."""
    since_id = call.int_param("since_id", 0)
    max_id = call.int_param("max_id", 0)
    count = call.int_param("count", default_count)
    page = call.int_param("page", 1)
    if count < 1:
        raise _invalid("count", f"1~{max_count}", count)
    if page < 1:
        raise _invalid("page", ">=1", page)
    count = min(count, max_count)
    chosen = sorted((i for i in items if i["id"] > since_id and (not max_id or i["id"] <= max_id)),
                    key=lambda i: i["id"], reverse=True)
    start = (page - 1) * count
    window = chosen[start:start + count]
    next_cursor = chosen[start + count]["id"] if len(chosen) > start + count else 0
    return window, len(chosen), next_cursor


def _listing(key: str, state: EmulatorState, views: list[dict[str, Any]], total: int,
             next_cursor: int) -> dict[str, Any]:
    return {key: views, "previous_cursor": 0, "next_cursor": next_cursor,
            "total_number": total, "hasvisible": False}


# ---- content rules -------------------------------------------------------------------

def _shorten(state: EmulatorState, url: str) -> str:
    number = int(hashlib.sha1(url.encode()).hexdigest()[:12], 16)
    code = ""
    while len(code) < 6:
        number, digit = divmod(number, 62)
        code += BASE62[digit]
    code = "A6" + code
    state.data["weibo"]["short_urls"][code] = url
    return f"http://t.cn/{code}"


def _display_text(state: EmulatorState, text: str) -> str:
    if not state.config["weibo_shorten_urls"]:
        return text
    return URL_RE.sub(lambda m: _shorten(state, m.group(0)), text)


def _check_text(text: str) -> None:
    if not text.strip():
        raise WeiboError(20008, "Content is null!")
    # statuses/share wiki: 140 characters as Weibo counts them (ASCII half, a link 10; WeCase's port)
    if weibo_length(text) > 140:
        raise WeiboError(20012, "Text too long, please input text less than 140 characters!")
    # statuses/share wiki: the status may not carry #话题#; the error code is unverified (10017 used)
    if hashtags(text):
        raise _invalid("status", "text without #topic#", text[:40])


def _check_safe_domain(state: EmulatorState, text: str) -> None:
    safe = state.config["weibo_safe_domain"].lower()
    for url in URL_RE.findall(text):
        host = (urlsplit(url).hostname or "").lower()
        if host == safe or host.endswith("." + safe):
            return
    raise _invalid("status", f"a url of the app's safe domain {safe}", text[:40])


def _check_allowed(state: EmulatorState, call: Call, text: str) -> None:
    if state.contains_banned(text):
        raise WeiboError(20021, "Content is illegal!")
    if state.faults.take("weibo", call.path, ["reject"]) is not None:
        raise WeiboError(20021, "Content is illegal!")


def _next_id(state: EmulatorState) -> int:
    return state.next_seq("weibo_id", 5012345678901234, 1013)


def _status(state: EmulatorState, status_id: int) -> dict[str, Any]:
    status = state.data["weibo"]["statuses"].get(str(status_id))
    if status is None or status.get("deleted"):
        raise WeiboError(20101, "Target weibo does not exist!")
    return status


# ---- endpoints -----------------------------------------------------------------------

ROUTES: dict[str, tuple[str, Any]] = {}


def api(path: str, method: str = "GET"):
    def register(fn):
        ROUTES[path] = (method, fn)
        return fn
    return register


@api("statuses/share.json", "POST")
def share(state: EmulatorState, call: Call) -> dict[str, Any]:
    text = call.text_param("status")
    # statuses/share wiki: rip (the posting user's real IP) is required; enforcement unverified
    if state.config["weibo_require_rip"] and not call.params.get("rip"):
        raise _missing("rip")
    _check_text(text)
    _check_safe_domain(state, text)
    pic_ids = []
    if "pic" in call.files:
        name, content_type, content = call.files["pic"]
        if len(content) > MAX_PIC_BYTES:
            raise WeiboError(20006, "Image size too large.")
        if not (content.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8"))):
            raise WeiboError(20005, "Unsupported image type, only suport JPG, GIF, PNG!")
        pic_id = "006" + hashlib.md5(content).hexdigest()[:29]
        state.data["weibo"]["pics"][pic_id] = {"filename": name, "size": len(content),
                                               "content_type": content_type}
        state.put_blob(f"weibo-{pic_id}", content)
        pic_ids.append(pic_id)
    posts = _hits(state, call.uid or 0, "posts")
    if len(posts) >= state.config["weibo_posts_per_hour"]:
        raise WeiboError(20016, "Update weibo too fast!")
    now = state.now()
    window = state.config["weibo_repeat_window_s"]
    for other in state.data["weibo"]["statuses"].values():
        if (other["uid"] == call.uid and other["original_text"] == text
                and not other.get("deleted") and now - other["created"] < window):
            raise WeiboError(20019, "Repeat content!")
    _check_allowed(state, call, text)
    status_id = _next_id(state)
    status = {"id": status_id, "uid": call.uid, "text": _display_text(state, text),
              "original_text": text, "created": now, "pic_ids": pic_ids, "rip": call.params.get("rip", "")}
    state.data["weibo"]["statuses"][str(status_id)] = status
    posts.append(now)
    state.changed()
    return status_view(state, status)


@api("statuses/user_timeline.json")
def user_timeline(state: EmulatorState, call: Call) -> dict[str, Any]:
    uid = call.int_param("uid", call.uid)
    mine = [s for s in state.data["weibo"]["statuses"].values()
            if s["uid"] == uid and not s.get("deleted")]
    page, total, next_cursor = _paged(call, mine, 20, 100)
    return _listing("statuses", state, [status_view(state, s) for s in page], total,
                    next_cursor)


@api("statuses/show.json")
def show(state: EmulatorState, call: Call) -> dict[str, Any]:
    return status_view(state, _status(state, call.int_param("id", required=True)))


@api("statuses/count.json")
def count(state: EmulatorState, call: Call) -> list[dict[str, Any]]:
    raw = call.text_param("ids")
    result = []
    for part in [p for p in raw.split(",") if p.strip()][:100]:
        try:
            status = state.data["weibo"]["statuses"].get(str(int(part)))
        except ValueError as exc:
            raise _invalid("ids", "int64 list", raw) from exc
        if status is None or status.get("deleted"):
            continue
        view = status_view(state, status, with_user=False)
        result.append({"id": status["id"], "idstr": str(status["id"]),
                       "comments": view["comments_count"], "reposts": view["reposts_count"],
                       "attitudes": view["attitudes_count"]})
    return result


@api("statuses/destroy.json", "POST")
def destroy(state: EmulatorState, call: Call) -> dict[str, Any]:
    status = _status(state, call.int_param("id", required=True))
    if status["uid"] != call.uid:
        raise WeiboError(20102, "Not your own weibo!")
    status["deleted"] = True
    state.changed()
    return status_view(state, status)


def _visible_comments(state: EmulatorState) -> list[dict[str, Any]]:
    return [c for c in state.data["weibo"]["comments"].values() if not c.get("deleted")]


@api("comments/to_me.json")
def comments_to_me(state: EmulatorState, call: Call) -> dict[str, Any]:
    statuses = state.data["weibo"]["statuses"]
    mine = [c for c in _visible_comments(state) if c["uid"] != call.uid
            and statuses.get(str(c["status_id"]), {}).get("uid") == call.uid]
    page, total, next_cursor = _paged(call, mine, 50, 200)
    return _listing("comments", state, [comment_view(state, c) for c in page], total,
                    next_cursor)


@api("comments/by_me.json")
def comments_by_me(state: EmulatorState, call: Call) -> dict[str, Any]:
    mine = [c for c in _visible_comments(state) if c["uid"] == call.uid]
    page, total, next_cursor = _paged(call, mine, 50, 200)
    return _listing("comments", state, [comment_view(state, c) for c in page], total,
                    next_cursor)


@api("comments/show.json")
def comments_show(state: EmulatorState, call: Call) -> dict[str, Any]:
    status = _status(state, call.int_param("id", required=True))
    on_status = [c for c in _visible_comments(state) if c["status_id"] == status["id"]]
    page, total, next_cursor = _paged(call, on_status, 50, 200)
    return _listing("comments", state, [comment_view(state, c) for c in page], total,
                    next_cursor)


def _comment_quota(state: EmulatorState, call: Call) -> list[float]:
    recent = _hits(state, call.uid or 0, "comments")
    if len(recent) >= state.config["weibo_comments_per_hour"]:
        raise WeiboError(10024, f"User requests for ({call.path.removesuffix('.json')}) "
                                "out of rate limit!", 403)
    return recent


def _add_comment(state: EmulatorState, *, status: dict[str, Any], uid: int, text: str,
                 reply_to: dict[str, Any] | None = None) -> dict[str, Any]:
    comment_id = _next_id(state)
    comment = {"id": comment_id, "status_id": status["id"], "uid": uid, "text": text,
               "created": state.now(), "reply_to": reply_to["id"] if reply_to else None,
               "root_id": (reply_to.get("root_id", reply_to["id"]) if reply_to else comment_id)}
    state.data["weibo"]["comments"][str(comment_id)] = comment
    state.changed()
    return comment


@api("comments/create.json", "POST")
def comments_create(state: EmulatorState, call: Call) -> dict[str, Any]:
    text = call.text_param("comment")
    _check_text(text)
    status = _status(state, call.int_param("id", required=True))
    recent = _comment_quota(state, call)
    _check_allowed(state, call, text)
    comment = _add_comment(state, status=status, uid=call.uid or 0, text=text)
    recent.append(state.now())
    return comment_view(state, comment)


@api("comments/reply.json", "POST")
def comments_reply(state: EmulatorState, call: Call) -> dict[str, Any]:
    text = call.text_param("comment")
    cid = call.int_param("cid", required=True)
    status = _status(state, call.int_param("id", required=True))
    _check_text(text)
    parent = state.data["weibo"]["comments"].get(str(cid))
    if parent is None or parent.get("deleted") or parent["status_id"] != status["id"]:
        raise WeiboError(20201, "Target weibo comment does not exist!")
    recent = _comment_quota(state, call)
    _check_allowed(state, call, text)
    name = user_view(state, parent["uid"])["screen_name"]
    comment = _add_comment(state, status=status, uid=call.uid or 0,
                           text=f"回复@{name}:{text}", reply_to=parent)
    recent.append(state.now())
    return comment_view(state, comment)


@api("account/get_uid.json")
def get_uid(state: EmulatorState, call: Call) -> dict[str, Any]:
    return {"uid": call.uid}


@api("users/show.json")
def users_show(state: EmulatorState, call: Call) -> dict[str, Any]:
    uid = call.int_param("uid", call.uid)
    if str(uid) not in state.data["weibo"]["users"]:
        raise WeiboError(20003, "User does not exists!")
    return user_view(state, uid)


@api("account/rate_limit_status.json")
def rate_limit_status(state: EmulatorState, call: Call) -> dict[str, Any]:
    calls = _hits(state, call.uid or 0, "calls")
    limit = state.config["weibo_calls_per_hour"]
    reset_in = int(HOUR - (state.now() - calls[0])) if calls else int(HOUR)
    reset_at = datetime.fromtimestamp(state.now() + reset_in, BEIJING)
    return {"ip_limit": 10000, "limit_time_unit": "HOURS", "remaining_ip_hits": 10000,
            "remaining_user_hits": max(0, limit - len(calls)),
            "reset_time": reset_at.strftime("%Y-%m-%d %H:%M:%S"),
            "reset_time_in_seconds": reset_in, "user_limit": limit}


# rate_limit_status does not count against the limit it reports
UNCOUNTED = {"account/rate_limit_status.json"}


def inject_comment(state: EmulatorState, *, status_id: int | str, uid: int | str,
                   screen_name: str, text: str,
                   reply_to_cid: int | str | None = None) -> dict[str, Any]:
    """A citizen comments on a status (admin API, demo)."""
    if not text or not screen_name:
        raise ValueError("a Weibo comment needs text and screen_name")
    with state.lock:
        try:
            status = _status(state, int(status_id))
        except (WeiboError, ValueError) as exc:
            raise ValueError(f"no Weibo status with id {status_id!r}") from exc
        user = state.ensure_weibo_user(int(uid), screen_name)
        user["screen_name"] = user["name"] = screen_name
        parent = None
        if reply_to_cid is not None:
            parent = state.data["weibo"]["comments"].get(str(reply_to_cid))
            if parent is None or parent["status_id"] != status["id"]:
                raise ValueError(f"no comment {reply_to_cid!r} on status {status_id!r}")
        comment = _add_comment(state, status=status, uid=int(uid), text=text, reply_to=parent)
        view = comment_view(state, comment)
        state.flush()
        return view


# ---- dispatch ------------------------------------------------------------------------

class _Responder:
    def __init__(self, path: str) -> None:
        self.path = path

    def server_error(self, status: int) -> Response:
        if status == 500:
            return error_response(self.path, 10001, "system error!", 500)
        return Response(f"<html><head><title>{status}</title></head><body><h1>{status}</h1>"
                        "</body></html>", status_code=status, media_type="text/html")

    def gateway_timeout(self) -> Response:
        return self.server_error(504)

    def rate_limited(self) -> Response:
        return error_response(self.path, 10023, "User requests out of rate limit!", 403)

    def token_expired(self) -> Response:
        return error_response(self.path, 21327, "expired_token", 400)


async def read_call(request: Request, path: str) -> Call:
    params = dict(request.query_params)
    files: dict[str, tuple[str, str, bytes]] = {}
    content_type = request.headers.get("content-type", "")
    if request.method.upper() == "POST" and (
            content_type.startswith("multipart/form-data")
            or content_type.startswith("application/x-www-form-urlencoded")):
        form = await request.form()
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[name] = (value.filename or "", value.content_type or "",
                               await value.read())
            else:
                params[name] = value
    return Call(path=path, method=request.method.upper(), params=params,
                headers={k.lower(): v for k, v in request.headers.items()}, files=files)


def run_call(state: EmulatorState, call: Call) -> Response:
    route = ROUTES.get(call.path)
    try:
        if route is None:
            raise WeiboError(10020, "Request api not found!")
        method, fn = route
        if method != call.method:
            raise WeiboError(10021, "HTTP method is not suported for this request!")
        with state.lock:
            authenticate(state, call, count=call.path not in UNCOUNTED)
            result = fn(state, call)
    except WeiboError as exc:
        return error_response(call.path, exc.error_code, exc.error, exc.status)
    finally:
        state.flush()
    return json_response(result)


async def dispatch(state: EmulatorState, request: Request, path: str) -> Response:
    state.count_call("weibo", path)
    call = await read_call(request, path)

    async def handle() -> Response:
        return run_call(state, call)

    return await faults.serve(state.faults, "weibo", path, _Responder(path), handle)


def create_router(state: EmulatorState) -> APIRouter:
    router = APIRouter()

    @router.api_route("/2/{path:path}", methods=["GET", "POST"], include_in_schema=False)
    async def weibo_api(path: str, request: Request) -> Response:
        return await dispatch(state, request, path)

    return router
