"""WeChat Official Account connector (公众号) through wechatpy 1.8.

Publishing: the cover as permanent material (`material/add_material` -> thumb_media_id; a cover the
account already holds is reused, bot.connectors.covers), the body's
images through `media/uploadimg` (their src rewritten to WeChat's URLs: external images are
filtered out by WeChat), `draft/add` (-> media_id), then `freepublish/submit` (-> publish_id). The
outcome comes with the PUBLISHJOBFINISH push (bot.inbound.events); `freepublish/get`, limited to
100 calls a day, is only a sparse fallback asked by the scheduler. Each id goes to `progress` as soon
as it arrives, so a crashed attempt resumes where it stopped instead of publishing twice.

Every call is first spent from the account's budget (bot.connectors.quota); 45009 closes the
window instead of failing. wechatpy runs with `auto_retry=False`: a refused access token is
refreshed once here, through the token shared by all processes (bot.connectors.tokens), fetched
with `stable_token` by default so other tools on the same AppID keep theirs.
"""

from __future__ import annotations

import functools
import html
import io
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import requests
from loguru import logger
from sqlalchemy.engine import Engine
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from bot.connectors.base import (
    AwaitingOutcome,
    CommentPage,
    ConfigurationError,
    Cover,
    OutgoingPost,
    PermanentError,
    ProgressFn,
    PublishResult,
    RemoteComment,
    ReplyRefused,
    Stats,
    TransientError,
)
from bot.connectors.covers import CoverLibrary
from bot.connectors.quota import Ledger
from bot.connectors.tokens import DbSessionStorage, SharedToken

PLATFORM = "wechat"
BEIJING = timezone(timedelta(hours=8))
# invalid credential / invalid access_token / access_token expired: fetch a new token and retry once.
TOKEN_ERRORS = {40001, 40014, 42001}
# -1 system busy; 45011 per-minute API frequency limit; 45033 too many concurrent calls.
TRANSIENT_CODES = {-1, 45011, 45033}
QUOTA_EXHAUSTED = 45009
REPLY_EXISTS = 88005
WINDOW_CLOSED = 45015
DRAFT_UNKNOWN = 40007  # invalid media_id: an unknown draft, or (on draft/add) an unknown thumb_media_id
DATE_NOT_READY = 61501  # data cube: date range error (figures exist up to yesterday only)
API_UNAUTHORIZED = 48001  # api unauthorized: the account lacks the API's rights
NO_DATA_RIGHTS = 61007  # data cube: api is unauthorized (unverified accounts)
# freepublish/get publish_status values other than 0 (success) and 1 (publishing).
PUBLISH_FAILURES = {
    2: "原创声明失败 (original-content declaration failed)",
    3: "常规失败 (publishing failed)",
    4: "平台审核不通过 (rejected by the platform's content audit)",
    5: "成功后用户删除所有文章 (all articles deleted after publishing)",
    6: "成功后系统封禁所有文章 (all articles blocked by the platform after publishing)",
}


def job_failure(publish_id: str, status: int, fail_idx: list) -> str:
    """Why a publish job failed, with the articles it names (1-based fail_idx), as officers read it."""
    meaning = PUBLISH_FAILURES.get(status, "unknown status")
    return f"publish job {publish_id} failed: publish_status {status}, {meaning}" + (
        f", articles {fail_idx}" if fail_idx else "")
# Set-up errors no retry can mend, with what the admin must fix (官方全局返回码).
CONFIGURATION_ERRORS = {
    40013: "AppID 无效：请核对配置中的 appid 与公众平台「设置与开发 → 基本配置」一致",
    40125: "AppSecret 错误：请在公众平台「设置与开发 → 基本配置」重置或核对 AppSecret，并更新配置",
    40164: "本服务器的出口 IP 不在 IP 白名单中：请在公众平台「设置与开发 → 基本配置 → IP白名单」加入它",
    41004: "缺少 AppSecret：请在配置中填写该账号的 secret",
    48001: "接口未授权：该公众号没有此接口权限（需认证或开通相应能力）",
}
# 40001 from the token endpoint itself means the AppSecret is wrong (elsewhere: a stale token).
WRONG_SECRET = 40001
BATCH = 20  # freepublish/batchget allows 1..20
SCAN_LIMIT = 40  # published articles looked at when reconciling without a publish_id (batchget: 100 a day)
COMMENT_PAGE = 49  # comment/list allows count < 50
# comment/list pages by offset; re-reading a few already seen ones tolerates deleted comments.
COMMENT_OVERLAP = 10
IMG_SRC = re.compile(r"""(<img\b[^>]*?\bsrc\s*=\s*)(["'])(.*?)\2""", re.I | re.S)
_TAGS = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def comparable_article(title: str, body_html: str) -> tuple[str, str]:
    """Title and visible text, HTML removed and whitespace folded: WeChat rewrites an article's HTML,
    so a published article is recognised by what readers see, never by its markup."""
    text = html.unescape(_TAGS.sub(" ", body_html or "")).replace("\xa0", " ")
    return _SPACE.sub(" ", (title or "")).strip(), _SPACE.sub("", text)

T = TypeVar("T")


@functools.cache
def _environment_settings(api_base: str) -> dict[str, Any]:
    return requests.Session().merge_environment_settings(api_base, {}, None, None, None)


class _DirectSession(requests.Session):
    """The requests session wechatpy calls through, minus the per-request work no WeChat API call needs:
    Session.request merges the session's and the call's settings (seven merge_setting calls, each with
    typing.Protocol isinstance checks in requests 2.3x), cookies, hooks, netrc and redirects (the API
    never redirects), about a fifth of a call's CPU. The request is prepared and handed straight to the
    connection pool's adapter, with the session's headers, proxies and CA settings."""

    def request(self, method: str, url: Any, params: Any = None, data: Any = None, headers: Any = None,
                files: Any = None, json: Any = None, timeout: Any = None, **_ignored: Any) -> requests.Response:
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method.upper(), url=url, headers={**self.headers, **(headers or {})}, files=files,
                         data=data or {}, params=params or {}, json=json)
        return self.get_adapter(prepared.url).send(prepared, stream=False, timeout=timeout, verify=self.verify,
                                                   cert=self.cert, proxies=self.proxies)


class _Client(WeChatClient):
    """wechatpy's client aimed at `api_base`, reading its access token from the shared store."""

    def __init__(self, appid: str, secret: str, *, api_base: str, storage: DbSessionStorage,
                 token: SharedToken, timeout: float):
        super().__init__(appid, secret, session=storage, timeout=timeout, auto_retry=False)
        self._http.close()
        self._http = _DirectSession()
        # requests reads proxies and CA bundle from the environment at every request (a walk over
        # os.environ, a tenth of a publication's CPU): read once per process and API address.
        env = _environment_settings(api_base)
        self._http.proxies.update(env["proxies"])
        self._http.verify = env["verify"]
        self._http.trust_env = False
        self._shared_token = token
        self.API_BASE_URL = api_base
        root = api_base[: -len("cgi-bin/")] if api_base.endswith("cgi-bin/") else api_base
        self.datacube.API_BASE_URL = f"{root}datacube/"

    @property
    def access_token(self) -> str:
        return self._shared_token.current()

    def fetch_access_token(self) -> dict[str, Any]:
        # Never wechatpy's own fetch: it has the real URL hard-coded and no time-out.
        return {"access_token": self._shared_token.current()}


class WeChatConnector:
    platform = PLATFORM

    def __init__(self, *, appid: str, secret: str, engine: Engine, api_base: str, timeout: float,
                 ledger: Ledger, token_api: str = "stable_token"):
        self.appid, self._secret = appid, secret
        self.api_base = api_base if api_base.endswith("/") else api_base + "/"
        self.timeout = timeout
        self.ledger, self.token_api = ledger, token_api
        self.storage = DbSessionStorage(engine)
        self.token = SharedToken(self.storage, f"{appid}_access_token", self._fetch_token)
        self.covers = CoverLibrary(engine, ledger.account_id)
        self._clients: list[_Client] = []  # every client made (closed at shutdown)
        self._idle: list[_Client] = []  # those no call is using
        self._clients_lock = threading.Lock()
        self._closed = threading.Event()

    # ---- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _client(self) -> Iterator[_Client]:
        """A wechatpy client for one call, used by one thread at a time (requests.Session is not meant to
        be shared by threads) and kept for the next: an account has as many as it had calls at once, not
        one per thread (making one costs about a millisecond of CPU)."""
        with self._clients_lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = _Client(self.appid, self._secret, api_base=self.api_base, storage=self.storage,
                             token=self.token, timeout=self.timeout)
            with self._clients_lock:
                self._clients.append(client)
        try:
            yield client
        finally:
            with self._clients_lock:
                self._idle.append(client)

    def _fetch_token(self) -> tuple[str, int]:
        self.ledger.spend(self.token_api)
        try:
            if self.token_api == "stable_token":
                res = requests.post(f"{self.api_base}stable_token", timeout=self.timeout, json={
                    "grant_type": "client_credential", "appid": self.appid, "secret": self._secret,
                    "force_refresh": False})
            else:
                res = requests.get(f"{self.api_base}token", timeout=self.timeout, params={
                    "grant_type": "client_credential", "appid": self.appid, "secret": self._secret})
        except requests.RequestException as e:
            raise TransientError(PLATFORM, None, f"token: {type(e).__name__}: {e}") from e
        if res.status_code >= 500:
            raise TransientError(PLATFORM, None, f"token: HTTP {res.status_code}")
        try:
            body = res.json()
        except ValueError:
            raise TransientError(PLATFORM, None, f"token: HTTP {res.status_code}, not JSON") from None
        code = int(body.get("errcode", 0) or 0)
        if code == WRONG_SECRET:
            raise ConfigurationError(PLATFORM, code, f"{self.token_api}: {body.get('errmsg', '')}",
                                     CONFIGURATION_ERRORS[40125])
        if code:
            raise self._mapped(self.token_api, code, body.get("errmsg", ""), None)
        if not body.get("access_token"):
            raise TransientError(PLATFORM, None, "token: answer without access_token")
        return body["access_token"], int(body.get("expires_in", 7200))

    def _mapped(self, what: str, code: int | None, message: str, http_status: int | None):
        if code is None:
            text = f"{what}: HTTP {http_status}" if http_status else f"{what}: no answer"
            if http_status is None or http_status >= 500 or http_status == 429:
                return TransientError(PLATFORM, None, text)
            return PermanentError(PLATFORM, None, text)
        text = f"{what}: {message}"
        if code == QUOTA_EXHAUSTED:
            return self.ledger.closed_error(what, code, message)
        if code in CONFIGURATION_ERRORS:
            return ConfigurationError(PLATFORM, code, text, CONFIGURATION_ERRORS[code])
        if code in TRANSIENT_CODES or code in TOKEN_ERRORS:
            return TransientError(PLATFORM, code, text)
        return PermanentError(PLATFORM, code, text)

    def _call(self, what: str, fn: Callable[[_Client], T], *, share: float = 1.0) -> T:
        """One API call, spent from the budget first, errors classified; a refused token is refreshed
        once, then the call retried (the retry is spent too: the platform counts it)."""
        refreshed = False
        while True:
            self.ledger.spend(what, share=share)
            token = self.token.current()
            try:
                with self._client() as client:
                    return fn(client)
            except WeChatClientException as e:
                if e.errcode is not None and int(e.errcode) in TOKEN_ERRORS and not refreshed:
                    logger.info("wechat {}: {} on {}, refreshing the access token", self.appid, e.errcode, what)
                    self.token.refresh(stale=token)
                    refreshed = True
                    continue
                status = e.response.status_code if e.response is not None else None
                raise self._mapped(what, None if e.errcode is None else int(e.errcode), str(e.errmsg or ""),
                                   status) from e
            except requests.RequestException as e:
                raise TransientError(PLATFORM, None, f"{what}: {type(e).__name__}: {e}") from e

    def _post(self, endpoint: str, data: dict[str, Any], *, need: str | None = None) -> dict[str, Any]:
        result = self._call(endpoint, lambda c: c.post(endpoint, data=data))
        if not isinstance(result, dict) or (need and need not in result):
            raise TransientError(PLATFORM, None, f"{endpoint}: unexpected answer {str(result)[:200]}")
        return result

    # ---- publishing ---------------------------------------------------------------------

    def prepare(self, post: OutgoingPost, *, progress: ProgressFn, resume: dict[str, str]) -> None:
        """Upload the cover and create the draft (草稿): nothing is public until the submit."""
        if not (resume.get("publish_id") or resume.get("draft_id")):
            self._draft(post, progress, resume)

    def discard(self, *, resume: dict[str, str]) -> bool:
        """Delete the draft of a publication that ends before its submit (cancelled, failed)."""
        if not resume.get("draft_id") or resume.get("publish_id"):
            return False
        self._post("draft/delete", {"media_id": resume["draft_id"]})
        return True

    def _draft(self, post: OutgoingPost, progress: ProgressFn, resume: dict[str, str]) -> str:
        thumb, uploaded = resume.get("media_id"), False
        if not thumb:
            thumb, uploaded = self._cover_material(post.cover)
            progress("draft", {"media_id": thumb})
        try:
            draft_id = self._add_draft(post, thumb)
        except PermanentError as e:
            if e.code != DRAFT_UNKNOWN or uploaded or post.cover is None:
                raise
            # The material is gone from the library (an officer deleted it, or WeChat did): upload it again, once.
            logger.info("wechat {}: cover material {} refused ({}); uploading the cover again", self.appid, thumb, e)
            thumb, _ = self._cover_material(post.cover, refused=thumb)
            progress("draft", {"media_id": thumb})
            draft_id = self._add_draft(post, thumb)
        progress("submit", {"draft_id": draft_id})
        return draft_id

    def _cover_material(self, cover: Cover | None, *, refused: str = "") -> tuple[str, bool]:
        """The cover's permanent media_id: the one the account already holds for the same image, or a new
        upload, remembered for the next articles (True when uploaded now). `refused`: a media_id WeChat
        has just refused (40007): forgotten, and the cover uploaded again."""
        if cover is None:
            raise PermanentError(PLATFORM, None, "a WeChat article needs a cover image")
        digest = cover.digest()
        if refused:
            self.covers.forget(digest, refused)
        else:
            known = self.covers.media_id(digest)
            if known:
                return known, False
        media_id = self._upload_cover(cover)
        self.covers.remember(digest, media_id)
        return media_id, True

    def publish(self, post: OutgoingPost, *, progress: ProgressFn, resume: dict[str, str]) -> PublishResult:
        """Submit the draft; the outcome comes later (PublishResult.pending), with the push or a status check.

        With a publish_id stored (a resumed attempt), the job's status is asked once instead."""
        if resume.get("publish_id"):
            return self.job_outcome(resume["publish_id"], resume.get("msg_data_id"))
        draft_id = resume.get("draft_id") or self._draft(post, progress, resume)
        try:
            res = self._post("freepublish/submit", {"media_id": draft_id}, need="publish_id")
        except PermanentError as e:
            if e.code == DRAFT_UNKNOWN and resume.get("draft_id"):
                # The stored draft is gone: an earlier submit was accepted. Never re-create it here.
                raise AwaitingOutcome(PLATFORM, e.code, f"draft {draft_id} is no longer in the draft box: it "
                                      "was submitted earlier; waiting to find the published article") from e
            raise
        # The article's publication time (its create_time) is the moment the submit was accepted.
        accepted_at = datetime.now(UTC)
        publish_id = str(res["publish_id"])
        msg_data_id = str(res["msg_data_id"]) if res.get("msg_data_id") is not None else None
        progress("awaiting_push", {"publish_id": publish_id, **({"msg_data_id": msg_data_id} if msg_data_id else {})})
        return PublishResult(remote_id="", msg_data_id=msg_data_id, published_at=accepted_at, pending=True)

    def _upload_cover(self, cover: Cover) -> str:
        """The cover as permanent material (永久素材): draft/add takes no temporary media id."""
        res = self._call("material/add_material", lambda c: c.material.add(
            "image", (cover.filename, io.BytesIO(cover.data), cover.mime)))
        if not isinstance(res, dict) or "media_id" not in res:
            raise TransientError(PLATFORM, None, f"material/add_material: unexpected answer {str(res)[:200]}")
        return str(res["media_id"])

    def _body_with_uploaded_images(self, post: OutgoingPost) -> str:
        """The body with each of its images uploaded by media/uploadimg and its src rewritten to WeChat's URL."""
        urls: dict[str, str] = {}
        for src, image in post.images.items():
            res = self._call("media/uploadimg", lambda c, i=image: c.post(
                "media/uploadimg", files={"media": (i.filename, io.BytesIO(i.data), i.mime)}))
            if not isinstance(res, dict) or not res.get("url"):
                raise TransientError(PLATFORM, None, f"media/uploadimg: unexpected answer {str(res)[:200]}")
            urls[src] = str(res["url"])
        return IMG_SRC.sub(lambda m: f"{m.group(1)}{m.group(2)}{urls.get(html.unescape(m.group(3)), m.group(3))}"
                           f"{m.group(2)}", post.body)

    def _add_draft(self, post: OutgoingPost, thumb_media_id: str) -> str:
        article = {"title": post.title, "author": post.author, "digest": post.digest,
                   "content": self._body_with_uploaded_images(post), "content_source_url": "",
                   "thumb_media_id": thumb_media_id, "need_open_comment": int(post.open_comment),
                   "only_fans_can_comment": 0}
        return str(self._post("draft/add", {"articles": [article]}, need="media_id")["media_id"])

    def _job(self, publish_id: str) -> dict[str, Any]:
        return self._post("freepublish/get", {"publish_id": publish_id}, need="publish_status")

    def job_outcome(self, publish_id: str, msg_data_id: str | None) -> PublishResult:
        """One freepublish/get: the article when the job succeeded; AwaitingOutcome while it runs."""
        job = self._job(publish_id)
        status = int(job["publish_status"])
        if status == 0:
            return self._job_result(job, msg_data_id)
        if status == 1:
            raise AwaitingOutcome(PLATFORM, None, f"publish job {publish_id} is still publishing")
        raise PermanentError(PLATFORM, None, job_failure(publish_id, status, job.get("fail_idx") or []))

    @staticmethod
    def _job_result(job: dict[str, Any], msg_data_id: str | None) -> PublishResult:
        items = (job.get("article_detail") or {}).get("item") or []
        return PublishResult(remote_id=str(job["article_id"]), url=items[0].get("article_url") if items else None,
                             msg_data_id=msg_data_id)

    def find_published(self, post: OutgoingPost, *, since: datetime, resume: dict[str, str]) -> PublishResult | None:
        """The article if WeChat has it; None when publishing (again, or resuming the stored ids) is safe.

        Reconciles by publish_id first (the job's outcome), then, when the stored draft is gone (a
        submit whose answer was lost took it), by title and visible text among the published articles.
        Raises AwaitingOutcome while a job may still be running: never "safe to publish" then.
        """
        publish_id = resume.get("publish_id")
        if publish_id:
            return self.job_outcome(publish_id, resume.get("msg_data_id"))
        draft_id = resume.get("draft_id")
        if not draft_id:
            return self._search_published(post, since)
        if self._draft_exists(draft_id):
            return None
        found = self._search_published(post, since)
        if found is None:
            raise AwaitingOutcome(PLATFORM, None, f"draft {draft_id} was submitted earlier but no published article "
                                  "matches it yet; not publishing it again")
        return found

    def _draft_exists(self, draft_id: str) -> bool:
        try:
            self._post("draft/get", {"media_id": draft_id})
        except PermanentError as e:
            if e.code == DRAFT_UNKNOWN:
                return False
            raise
        return True

    def _search_published(self, post: OutgoingPost, since: datetime) -> PublishResult | None:
        since_ts = since.timestamp()
        wanted = comparable_article(post.title, post.body)
        for offset in range(0, SCAN_LIMIT, BATCH):
            page = self._post("freepublish/batchget", {"offset": offset, "count": BATCH, "no_content": 0})
            items = page.get("item") or []
            for item in items:
                content = item.get("content") or {}
                created = float(content.get("create_time") or item.get("update_time") or 0)
                news = content.get("news_item") or []
                if created < since_ts or not news:
                    continue
                first = news[0]
                if comparable_article(first.get("title", ""), first.get("content", "")) == wanted:
                    return PublishResult(remote_id=str(item["article_id"]), url=first.get("url"),
                                         published_at=datetime.fromtimestamp(created, UTC))
            # Newest first by update time: once a page ends before `since`, older pages cannot match.
            if len(items) < BATCH or min(float(i.get("update_time") or 0) for i in items) < since_ts:
                return None
        return None

    # ---- comments, messages, figures ----------------------------------------------------

    def list_comments(self, *, target: str, cursor: str, full: bool = False, share: float = 1.0) -> CommentPage:
        """Comments (留言) under article `target` = "msg_data_id/index" (0-based index).

        cursor = "<comments consumed>/<highest user_comment_id seen>" ("" at first). comment/list is
        not documented as append-only, so `full` reads the whole list again from offset 0 and returns
        every comment (the store keeps each user_comment_id once); otherwise only the tail is read.
        """
        msg_data_id, _, index = target.partition("/")
        seen, _, last = cursor.partition("/")
        seen_n, last_id = int(seen or 0), int(last or 0)
        begin = 0 if full else max(0, seen_n - COMMENT_OVERLAP)
        found: list[RemoteComment] = []
        while True:
            page = self._call("comment/list", lambda c, b=begin: c.material.list_comment(
                int(msg_data_id), index=int(index or 0), begin=b, count=COMMENT_PAGE, type=0), share=share)
            comments = page.get("comment") or []
            for raw in comments:
                if full or int(raw["user_comment_id"]) > last_id:
                    found.append(self._comment(msg_data_id, int(index or 0), raw))
            begin += len(comments)
            if len(comments) < COMMENT_PAGE or begin >= int(page.get("total", 0)):
                break
        newest = max([last_id, *(int(c.reply_target["user_comment_id"]) for c in found)])
        return CommentPage(comments=found, cursor=f"{begin}/{newest}")

    @staticmethod
    def _comment(msg_data_id: str, index: int, raw: dict[str, Any]) -> RemoteComment:
        cid = str(raw["user_comment_id"])
        return RemoteComment(
            dedupe_key=f"{msg_data_id}/{index}/{cid}", ref=f"{msg_data_id}/{index}", sender_id=str(raw.get("openid", "")),
            sender_name="", text=str(raw.get("content", "")),
            created_at=datetime.fromtimestamp(int(raw.get("create_time", 0)), UTC),
            replied=bool(raw.get("reply")),
            reply_target={"msg_data_id": msg_data_id, "index": str(index), "user_comment_id": cid}, raw=dict(raw))

    def reply_comment(self, comment: RemoteComment | dict[str, str], text: str) -> str:
        target = comment.reply_target if isinstance(comment, RemoteComment) else comment
        try:
            self._call("comment/reply/add", lambda c: c.material.add_reply_comment(
                int(target["msg_data_id"]), int(target.get("index", 0)), int(target["user_comment_id"]), text))
        except PermanentError as e:
            if e.code == REPLY_EXISTS:
                raise ReplyRefused(PLATFORM, e.code, "this comment already has a reply") from e
            raise
        return ""

    def send_message(self, user_id: str, text: str) -> None:
        try:
            self._call("message/custom/send", lambda c: c.message.send_text(user_id, text))
        except PermanentError as e:
            if e.code == WINDOW_CLOSED:
                raise ReplyRefused(PLATFORM, e.code, "48-hour window closed") from e
            raise

    def fetch_stats(self, result: PublishResult) -> Stats:
        """Reads and shares from datacube/getarticletotaldetail (发表内容 data: the one data-cube API that
        covers freepublish articles; getarticletotal covers mass-sent ones only and is no longer
        maintained), comments from the comment list. The data cube serves a day once it is over:
        until then reads stay None. An account without data-cube rights gets `unavailable` instead."""
        reads = shares = comments = None
        unavailable = None
        if result.published_at is not None and result.msg_data_id:
            day = result.published_at.astimezone(BEIJING).date()
            try:
                rows = self._call("datacube/getarticletotaldetail", lambda c: c.datacube._post(
                    "getarticletotaldetail", data={"begin_date": day.isoformat(), "end_date": day.isoformat()},
                    result_processor=lambda r: r.get("list", [])))
            except PermanentError as e:
                if e.code == DATE_NOT_READY:
                    rows = []
                elif e.code in (API_UNAUTHORIZED, NO_DATA_RIGHTS):
                    rows, unavailable = [], f"微信未提供该文章的阅读和分享数据（{e.message}）"
                else:
                    raise
            mine = [r for r in rows or [] if str(r.get("msgid", "")).startswith(f"{result.msg_data_id}_")]
            details = (mine[0].get("detail_list") or []) if mine else []
            if details:
                reads = sum(int(d.get("read_user", 0) or 0) for d in details)
                shares = sum(int(d.get("share_user", 0) or 0) for d in details)
        if result.msg_data_id:
            page = self._call("comment/list", lambda c: c.material.list_comment(
                int(result.msg_data_id), index=0, begin=0, count=1, type=0))
            comments = int(page.get("total", 0))
        return Stats(reads=reads, shares=shares, comments=comments, unavailable=unavailable)

    def warm_up(self) -> None:
        """The access token read (or fetched, once for all processes) and one client made."""
        self.token.current()
        with self._client():
            pass

    def close(self) -> None:
        self._closed.set()
        with self._clients_lock:
            for client in self._clients:
                client._http.close()
            self._clients.clear()
            self._idle.clear()
