"""In-memory state of the platform emulator, optionally persisted to a JSON file.

Everything the emulated platforms remember (accounts, tokens, media, drafts, published
articles and statuses, comments, replies, inbound user messages, counters) lives in one
JSON-serialisable dict, ``EmulatorState.data``. Access is serialised by ``state.lock``
(a re-entrant threading lock): the HTTP handlers, the push sender and the demo generator
run on different threads.

When a path is given, the dict is written atomically after every change, so a restarted
emulator still knows what was published (the bot's crash reconciliation depends on it).
Uploaded media bytes go to a sibling folder ``<state file>.media/``.

The emulator has its own clock (``now()``): wall time plus an offset that the admin API
can advance, so token expiry, the 48 h customer-service window and hourly rate limits can
be exercised without waiting.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import secrets
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bot.emulator.faults import FaultRegistry

BEIJING = timezone(timedelta(hours=8))

DEFAULT_CONFIG: dict[str, Any] = {
    # words that make the platforms reject content (WeChat publish_status 4, Weibo 20021)
    "banned_words": ["违禁词示例"],
    # Weibo share.json only accepts statuses that link to the app's registered safe domain
    "weibo_safe_domain": "gov.example.cn",
    # unknown WeChat appids / Weibo tokens are registered on first use
    "auto_register": True,
    "wechat_token_expires_in": 7200,
    # a superseded access_token stays valid this long (WeChat: 5 minutes)
    "wechat_token_grace_s": 300,
    # Daily call limits per account and API (API_Call_Limits.html unless marked); over them: 45009.
    "wechat_quotas": {
        "token": 2000,  # API_Call_Limits: 获取access_token 2000
        "stable_token": 2000,  # unverified: assumed equal to token's
        "draft/add": 1000,  # API_Call_Limits: 草稿箱 - 新建草稿 1000
        "draft/get": 500,  # API_Call_Limits: 草稿箱 - 获取草稿 500
        "draft/delete": 1000,  # API_Call_Limits: 草稿箱 - 删除草稿 1000
        "draft/batchget": 1000,  # API_Call_Limits: 草稿箱 - 获取草稿列表 1000
        "freepublish/submit": 100,  # API_Call_Limits: 发布能力 - 发布接口 100
        "freepublish/get": 100,  # API_Call_Limits: 发布能力 - 发布状态轮询接口 100
        "freepublish/batchget": 100,  # API_Call_Limits: 发布能力 - 获取成功发布列表 100
        "freepublish/getarticle": 100,  # API_Call_Limits: 通过 article_id 获取已发布文章 100
        "freepublish/delete": 10,  # API_Call_Limits: 发布能力 - 删除发布 10
        "comment/list": 10000,  # unverified: community reports, no official table lists 留言 APIs
        "message/custom/send": 500000,  # API_Call_Limits: 发送客服消息 500000
    },
    # Quota window length; 86400 = the Beijing calendar day WeChat counts in (shorter only for tests).
    "wechat_quota_window_s": 86400,
    # unverified (the docs give no figure): a publish job ends this many seconds after its submit,
    # then WeChat pushes PUBLISHJOBFINISH to the account's callback URL (Publish/Callback_on_finish).
    "wechat_publish_delay_s": 2.0,
    "wechat_push_publish_events": True,
    # unverified: community reports say comment/list order changes after a reply; a replied comment
    # moves to the top of the list.
    "wechat_comment_reorder_on_reply": True,
    # Callers' IPs allowed to call the API (IP白名单); empty: all. Others get 40164.
    "wechat_ip_whitelist": [],
    "wechat_custom_window_s": 48 * 3600,
    # Weibo wiki 接口访问频次权限 (per user and app): 150 calls an hour for a test-level app (1,000 for a
    # normal one), 30 posts and 60 comments an hour; over them 10023 / 20016 / 10024.
    "weibo_calls_per_hour": 150,
    "weibo_posts_per_hour": 30,
    "weibo_comments_per_hour": 60,
    "weibo_repeat_window_s": 24 * 3600,
    # statuses/share requires rip (the poster's real IP) per the current wiki; enforcement unverified.
    "weibo_require_rip": True,
    # Weibo rewrites links in status text to t.cn short links, like the real platform
    "weibo_shorten_urls": True,
}

_ALNUM = string.ascii_letters + string.digits
# logs of pushes and customer-service messages keep only the newest entries
LOG_LIMIT = 2000


def random_token(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _empty_data(config: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    if config:
        cfg.update(copy.deepcopy(config))
    return {
        "version": 1,
        "config": cfg,
        "seq": {},
        "wechat": {
            "accounts": {},
            "tokens": {},
            "media": {},
            "drafts": {},
            "publishes": {},
            "articles": {},
            "comments": {},
            "followers": {},
            "inbound": [],
            "custom_messages": [],
            "quota": {},
        },
        "weibo": {
            "users": {},
            "tokens": {},
            "statuses": {},
            "comments": {},
            "pics": {},
            "short_urls": {},
            "hits": {},
        },
        "counters": {"calls": {}},
    }


class EmulatorState:
    """Thread-safe state of both emulated platforms."""

    def __init__(self, state_file: str | os.PathLike[str] | None = None, *,
                 config: dict[str, Any] | None = None) -> None:
        self.lock = threading.RLock()
        self.path = Path(state_file) if state_file else None
        self.faults = FaultRegistry()
        self.clock_offset = 0.0
        self.blobs: dict[str, bytes] = {}
        self._dirty = False
        self.data = _empty_data(config)
        if self.path is not None and self.path.exists():
            self._load()
            if config:
                self.data["config"].update(copy.deepcopy(config))

    # ---- clock -------------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> float:
        with self.lock:
            self.clock_offset += seconds
            return self.now()

    def beijing_date(self, ts: float | None = None) -> str:
        return datetime.fromtimestamp(self.now() if ts is None else ts, BEIJING).date().isoformat()

    # ---- config / ids / counters -------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.data["config"]

    def update_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(changes) - set(DEFAULT_CONFIG))
        if unknown:
            raise ValueError(f"unknown emulator config keys: {', '.join(unknown)}")
        with self.lock:
            for key, value in copy.deepcopy(changes).items():
                # Mappings (e.g. wechat_quotas) are merged, so one limit can change alone.
                if isinstance(value, dict) and isinstance(self.data["config"].get(key), dict):
                    self.data["config"][key].update(value)
                else:
                    self.data["config"][key] = value
            self.changed()
            self.flush()
            return copy.deepcopy(self.data["config"])

    def next_seq(self, name: str, start: int, step: int = 1) -> int:
        with self.lock:
            value = self.data["seq"].get(name, start - step) + step
            self.data["seq"][name] = value
            self.changed()
            return value

    def count_call(self, platform: str, path: str) -> None:
        key = f"{platform} {path}"
        with self.lock:
            calls = self.data["counters"]["calls"]
            calls[key] = calls.get(key, 0) + 1

    def append_log(self, log: list[dict[str, Any]], entry: dict[str, Any]) -> None:
        with self.lock:
            log.append(entry)
            del log[:-LOG_LIMIT]
            self.changed()

    def contains_banned(self, *texts: str | None) -> bool:
        words = [w for w in self.config.get("banned_words", []) if w]
        return any(w in (t or "") for t in texts for w in words)

    # ---- persistence -------------------------------------------------------------------
    def changed(self) -> None:
        self._dirty = True

    def flush(self) -> None:
        """Write the state file if something changed since the last write."""
        with self.lock:
            if not self._dirty:
                return
            self._dirty = False
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self.data, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, self.path)

    @contextmanager
    def mutate(self) -> Iterator[dict[str, Any]]:
        with self.lock:
            yield self.data
            self.changed()
            self.flush()

    def _media_dir(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.name + ".media")

    def put_blob(self, key: str, content: bytes) -> None:
        with self.lock:
            self.blobs[key] = content
            media_dir = self._media_dir()
            if media_dir is not None:
                media_dir.mkdir(parents=True, exist_ok=True)
                (media_dir / key).write_bytes(content)

    def get_blob(self, key: str) -> bytes | None:
        with self.lock:
            if key in self.blobs:
                return self.blobs[key]
            media_dir = self._media_dir()
            if media_dir is not None and (media_dir / key).is_file():
                return (media_dir / key).read_bytes()
            return None

    def _load(self) -> None:
        assert self.path is not None
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"emulator state file {self.path} is unreadable: {exc}") from exc
        fresh = _empty_data()
        for section, default in fresh.items():
            if isinstance(default, dict):
                merged = dict(default)
                merged.update(loaded.get(section, {}))
                loaded[section] = merged
            else:
                loaded.setdefault(section, default)
        config = copy.deepcopy(DEFAULT_CONFIG)
        config.update(loaded["config"])
        loaded["config"] = config
        self.data = loaded

    def reset(self, *, keep_accounts: bool = False) -> None:
        with self.lock:
            old = self.data
            self.data = _empty_data(old["config"])
            if keep_accounts:
                self.data["wechat"]["accounts"] = old["wechat"]["accounts"]
                self.data["weibo"]["users"] = old["weibo"]["users"]
                self.data["weibo"]["tokens"] = old["weibo"]["tokens"]
            self.blobs.clear()
            self.faults.clear()
            self.clock_offset = 0.0
            self.changed()
            self.flush()

    def snapshot(self) -> dict[str, Any]:
        """A deep copy for the admin API, with the current time and armed faults."""
        with self.lock:
            snap = copy.deepcopy(self.data)
            snap["now"] = self.now()
            snap["faults"] = self.faults.list()
            snap["summary"] = self._summary()
            return snap

    def _summary(self) -> dict[str, Any]:
        """Per account: what was published, commented and answered."""
        wechat: dict[str, Any] = {
            appid: {"articles": [], "comments": 0, "replies": 0, "custom_messages": 0,
                    "inbound_messages": 0}
            for appid in self.data["wechat"]["accounts"]}
        by_msg = {}
        for article in self.data["wechat"]["articles"].values():
            entry = wechat.setdefault(article["appid"], {"articles": [], "comments": 0,
                                                         "replies": 0, "custom_messages": 0,
                                                         "inbound_messages": 0})
            entry["articles"].append({"article_id": article["article_id"],
                                      "msg_data_id": article["msg_data_id"],
                                      "titles": [i["title"] for i in article["news_item"]],
                                      "create_time": article["create_time"]})
            by_msg[str(article["msg_data_id"])] = entry
        for key, comments in self.data["wechat"]["comments"].items():
            entry = by_msg.get(key.split(":")[0])
            if entry is not None:
                live = [c for c in comments if not c.get("deleted")]
                entry["comments"] += len(live)
                entry["replies"] += sum(1 for c in live if c.get("reply"))
        for log, field in (("custom_messages", "custom_messages"), ("inbound", "inbound_messages")):
            for item in self.data["wechat"][log]:
                if item["appid"] in wechat:
                    wechat[item["appid"]][field] += 1
        weibo: dict[str, Any] = {
            str(t["uid"]): {"statuses": [], "comments_received": 0, "replies": 0}
            for t in self.data["weibo"]["tokens"].values()}
        owner = {}
        for status in self.data["weibo"]["statuses"].values():
            if status.get("deleted"):
                continue
            entry = weibo.setdefault(str(status["uid"]), {"statuses": [], "comments_received": 0,
                                                          "replies": 0})
            entry["statuses"].append({"id": status["id"], "text": status["original_text"],
                                      "created": status["created"]})
            owner[status["id"]] = str(status["uid"])
        for comment in self.data["weibo"]["comments"].values():
            uid = owner.get(comment["status_id"])
            if uid is None or comment.get("deleted"):
                continue
            key = "replies" if str(comment["uid"]) == uid else "comments_received"
            weibo[uid][key] += 1
        return {"wechat": wechat, "weibo": weibo}

    # ---- accounts ----------------------------------------------------------------------
    def register_wechat_account(self, *, appid: str, secret: str, token: str = "",
                                encoding_aes_key: str | None = None,
                                callback_url: str | None = None, encrypt: bool = False,
                                original_id: str | None = None,
                                auto: bool = False) -> dict[str, Any]:
        if not appid or not secret:
            raise ValueError("a WeChat account needs appid and secret")
        if encrypt and not encoding_aes_key:
            raise ValueError("encrypt=true needs encoding_aes_key (43 characters)")
        if encoding_aes_key is not None and len(encoding_aes_key) != 43:
            raise ValueError("encoding_aes_key must be 43 characters long")
        with self.mutate() as data:
            account = {
                "appid": appid,
                "secret": secret,
                "token": token,
                "encoding_aes_key": encoding_aes_key,
                "callback_url": callback_url,
                "encrypt": bool(encrypt),
                "original_id": original_id or "gh_" + random_token(12, "0123456789abcdef"),
                "auto_registered": auto,
                "created": self.now(),
            }
            previous = data["wechat"]["accounts"].get(appid)
            if previous and not original_id:
                account["original_id"] = previous["original_id"]
            data["wechat"]["accounts"][appid] = account
            return copy.deepcopy(account)

    def register_weibo_account(self, *, access_token: str, uid: int | str | None = None,
                               screen_name: str | None = None,
                               auto: bool = False) -> dict[str, Any]:
        if not access_token:
            raise ValueError("a Weibo account needs access_token")
        with self.mutate() as data:
            if uid is None:
                digest = hashlib.sha1(access_token.encode()).hexdigest()
                uid = 5_000_000_000 + int(digest, 16) % 999_999_999
            uid = int(uid)
            user = self.ensure_weibo_user(uid, screen_name or f"政务微博{str(uid)[-4:]}",
                                          verified=True)
            if screen_name:
                user["screen_name"] = user["name"] = screen_name
            data["weibo"]["tokens"][access_token] = {
                "access_token": access_token,
                "uid": uid,
                "status": "active",
                "auto_registered": auto,
                "created": self.now(),
            }
            return {"access_token": access_token, "uid": uid,
                    "screen_name": user["screen_name"]}

    def ensure_weibo_user(self, uid: int, screen_name: str, *, verified: bool = False) -> dict:
        with self.lock:
            users = self.data["weibo"]["users"]
            key = str(uid)
            if key not in users:
                users[key] = {
                    "id": int(uid),
                    "idstr": key,
                    "screen_name": screen_name,
                    "name": screen_name,
                    "location": "",
                    "description": "",
                    "profile_image_url": f"https://tvax1.sinaimg.cn/crop.0.0.180.180.50/{key}.jpg",
                    "followers_count": (int(uid) * 7919) % 50000,
                    "verified": verified,
                    "verified_type": 1 if verified else -1,
                }
                self.changed()
            return users[key]
