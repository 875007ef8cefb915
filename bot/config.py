"""Configuration: one TOML file, validated into frozen models.

`load_config(path)` refuses a wrong file with `ConfigError(file, key, reason)`. With no file at all
the embedded default applies: SQLite under ./data and the built-in platform emulator, so the service
runs end to end with no credentials and no network. Any string value may be written `env:NAME` to
take it from the environment (for secrets).
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.errors import ConfigError
from bot.resources import CHECKOUT_ROOT as REPO_ROOT  # noqa: F401  (tests and benches import it from here)
from bot.resources import rule_file

DEFAULT_CONFIG_NAME = "config.toml"
WECHAT_API = "https://api.weixin.qq.com/cgi-bin/"
WEIBO_API = "https://api.weibo.com/2/"
# Values that mean "nobody filled this in": refused when a real platform is switched on.
PLACEHOLDER = re.compile(r"^(|change[-_ ]?me.*|x+|your[-_ ].*|placeholder|secret|todo|test|dummy|emulator.*)$", re.I)
INTENTS = ("complaint", "question", "suggestion", "praise", "other")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    # SQLite file (embedded default) or postgresql+psycopg://user:pass@host/db
    url: str = "sqlite:///data/govbot.db"
    # true: `alembic upgrade head` at start; false: refuse to start on an outdated database.
    auto_migrate: bool = True


class WebConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8600, ge=1, le=65535)
    # Keys the console's session tokens. Empty: a random key generated into <data_dir>/secret_key.
    # Known (dev, change-me ...) or short (< 32 characters) keys are refused in every mode.
    secret_key: str = ""
    # The address WeChat reaches the callback at (shown to admins; used for the emulator's push).
    # https://...: session cookies are marked Secure and HSTS is sent.
    public_url: str = ""
    max_body_bytes: int = Field(65536, ge=1024)
    # Behind a reverse proxy: trust its X-Forwarded-For / X-Forwarded-Proto (client address, HTTPS).
    trust_proxy_headers: bool = False
    # A console login ends after this long without a request, and in any case after session_max_hours.
    session_idle_minutes: int = Field(120, ge=1)
    session_max_hours: int = Field(12, ge=1)
    # After login_max_failures wrong passwords for one user name (four times as many from one address),
    # log-ins are refused for a time that doubles with each further failure, up to login_lockout_max_minutes.
    login_max_failures: int = Field(5, ge=1)
    login_lockout_max_minutes: int = Field(15, ge=1)
    # Web processes (uvicorn workers) of `govbot serve`; more than one when one core is not enough.
    workers: int = Field(1, ge=1, le=64)


class CallbackConfig(_Section):
    """The WeChat callback's replay, time and storage checks."""

    # A signed request whose timestamp is further than this from our clock is refused (replay window).
    timestamp_window_s: int = Field(300, ge=1)
    # A message CreateTime older or newer than this (against arrival) is replaced by the arrival time.
    create_time_past_s: int = Field(86400, ge=1)
    create_time_future_s: int = Field(300, ge=1)
    # The database gets this long to store a delivery before it goes to the spool instead.
    store_timeout_s: float = Field(1.0, gt=0, le=4)
    # Deliveries kept while the database cannot be written (fsync'd files); replayed by the worker.
    spool_dir: str = "data/spool"
    # How often the worker turns stored deliveries into triaged messages and tickets.
    process_interval_s: float = Field(1.0, gt=0)


class EmulatorConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8601, ge=1, le=65535)
    state_file: str = "data/emulator.json"
    # Generate live comments and messages so the console shows a live inbox.
    demo: bool = True
    demo_interval_s: float = Field(20.0, gt=0)


class SchedulerConfig(_Section):
    tick_seconds: float = Field(0.5, gt=0, le=60)
    lease_seconds: int = Field(120, ge=5)
    max_attempts: int = Field(8, ge=1)
    backoff_base_s: float = Field(2.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    # Posts whose time passed while the service was down go out at start within this window, else are flagged.
    missed_grace_minutes: int = Field(30, ge=0)
    batch_size: int = Field(20, ge=1)
    # How long WeChat may take to finish an asynchronous publish before the attempt counts as failed.
    publish_poll_timeout_s: float = Field(120.0, gt=0)
    # A submitted WeChat article is settled by the PUBLISHJOBFINISH push; freepublish/get (100 calls a
    # day) is asked only this long after the submit, then again after each next delay (the last repeats).
    publish_status_checks_s: list[float] = Field(default_factory=lambda: [60.0, 300.0, 1800.0, 3600.0],
                                                 min_length=1)


class SignoffStage(_Section):
    name: str = Field(min_length=1)
    role: Literal["editor", "reviewer", "approver", "admin"]


def _default_stages() -> list[SignoffStage]:
    return [
        SignoffStage(name="初审", role="editor"),
        SignoffStage(name="复审", role="reviewer"),
        SignoffStage(name="终审", role="approver"),
    ]


class SignoffConfig(_Section):
    stages: list[SignoffStage] = Field(default_factory=_default_stages, min_length=1)


class PostsConfig(_Section):
    # Editors post only on their own department's accounts; these usernames may choose any account (跨部门发布).
    any_account_editors: list[str] = Field(default_factory=list)


class GapConfig(_Section):
    # 更新间隔: warn at warn_days without a post; inspections fail an account at limit_days.
    warn_days: int = Field(10, ge=1)
    limit_days: int = Field(14, ge=1)

    @model_validator(mode="after")
    def _order(self) -> GapConfig:
        if self.warn_days >= self.limit_days:
            raise ValueError("warn_days must be smaller than limit_days")
        return self


class InspectionConfig(_Section):
    # 迎检: the checklist (rules/inspection.toml) is evaluated every day over the last window_days.
    window_days: int = Field(30, ge=14, le=366)
    # 关停整合: an account is suggested for closing or merging when, over the report's period, it posts fewer
    # than merge_min_posts per 30 days AND receives fewer than merge_min_messages messages per 30 days.
    merge_min_posts: float = Field(2.0, ge=0)
    merge_min_messages: float = Field(3.0, ge=0)


class WechatPlatform(_Section):
    # Empty: the real API, or the emulator when [emulator] is enabled.
    api_base: str = ""
    timeout_s: float = Field(10.0, gt=0)
    # draft/add takes titles of at most 32 characters (Draft_Box/Add_draft.html).
    title_max_chars: int = Field(32, ge=1)
    # stable_token leaves the tokens other tools hold for the same AppID valid; token (the old
    # /cgi-bin/token) invalidates them.
    token_api: Literal["stable_token", "token"] = "stable_token"


class WeiboPlatform(_Section):
    api_base: str = ""
    timeout_s: float = Field(10.0, gt=0)
    # 安全域名: Weibo requires every status shared through the app to link to it.
    safe_domain: str = "gov.example.cn"
    max_chars: int = Field(140, ge=1)
    long_post_max_chars: int = Field(2000, ge=1)
    # Post long texts (up to long_post_max_chars) instead of refusing them.
    allow_long_posts: bool = False
    # statuses/share.json `rip`: the real IP of the user posting (the office's public address).
    # Empty: this machine's own address.
    rip: str = ""
    # The app's level on open.weibo.com sets its hourly call budget per user: test apps 150, normal 1,000.
    app_level: Literal["test", "normal"] = "test"


class PlatformsConfig(_Section):
    wechat: WechatPlatform = WechatPlatform()
    weibo: WeiboPlatform = WeiboPlatform()


class OrganisationConfig(_Section):
    name: str = Field(min_length=1)
    # Local time the daily digest of unanswered messages is written and delivered.
    digest_time: time = time(8, 30)
    # Delivery channels for the digest: "email", "wecom".
    digest_channels: list[Literal["email", "wecom"]] = Field(default_factory=list)
    digest_to: list[str] = Field(default_factory=list)  # e-mail recipients


class DepartmentConfig(_Section):
    name: str = Field(min_length=1)
    organisation: str = ""
    email: str = ""
    lead: str = ""  # username of the department lead (escalations)


class AccountConfig(_Section):
    name: str = Field(min_length=1)
    platform: Literal["wechat", "weibo"]
    department: str = ""
    enabled: bool = True
    auto_reply: bool = True
    # WeChat
    appid: str = ""
    secret: str = ""
    token: str = ""  # callback token (服务器配置 Token)
    encoding_aes_key: str = ""  # 43 chars, for 安全模式
    message_mode: Literal["plain", "aes"] = "plain"
    # Weibo
    uid: str = ""
    access_token: str = ""
    # Budget overrides for this account: API -> calls per window (see [quotas]).
    quotas: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _platform_fields(self) -> AccountConfig:
        if self.platform == "wechat":
            if not self.appid:
                raise ValueError("a wechat account needs appid")
            if self.message_mode == "aes" and len(self.encoding_aes_key) != 43:
                raise ValueError("encoding_aes_key must be 43 characters for message_mode = 'aes'")
        if self.platform == "weibo" and not self.uid:
            raise ValueError("a weibo account needs uid")
        return self


class UserConfig(_Section):
    username: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    display_name: str = ""
    roles: list[Literal["editor", "reviewer", "approver", "responder", "admin"]] = Field(min_length=1)
    department: str = ""
    email: str = ""
    # Initial console password; may be env:NAME. Users change it with `govbot user passwd`.
    password: str = ""


class TriageConfig(_Section):
    # The site's own rules: a file there replaces the shipped one of that name. Empty: shipped rules only.
    rules_dir: str = ""
    # Topic (the seven of the dev data) -> responsible department.
    topic_departments: dict[str, str] = Field(
        default_factory=lambda: {
            "城乡建设": "住建局",
            "环境保护": "生态环境局",
            "交通运输": "交通运输局",
            "教育文体": "教育局",
            "劳动和社会保障": "人社局",
            "商贸旅游": "商务局",
            "卫生计生": "卫健委",
        }
    )
    # Messages with no clear topic go here (综合受理).
    default_department: str = "政务公开办"

    def department_for(self, topic: str | None) -> str:
        """Where a message of `topic` is routed: its topic's department, else the default desk."""
        return self.topic_departments.get(topic, self.default_department) if topic else self.default_department


class AutoReplyConfig(_Section):
    enabled: bool = True
    # At most one automatic answer per user per FAQ rule in this many hours.
    per_user_period_hours: float = Field(24.0, gt=0)
    min_confidence: float = Field(0.6, ge=0, le=1)
    # Welcome text sent when a user follows a WeChat account (subscribe event).
    welcome: str = "感谢关注！您可以直接留言咨询，我们将在规定时限内答复。"


class PollingConfig(_Section):
    interval_s: float = Field(60.0, gt=0)
    # Poll comments of articles/statuses published within this many days.
    lookback_days: int = Field(30, ge=1)
    # Refresh reads, likes, shares and comment counts of recent posts this often (for the reports).
    stats_interval_s: float = Field(3600.0, gt=0)
    # WeChat articles: a new or busy article is polled this often; older ones less (see inbound.schedule).
    fresh_interval_s: float = Field(300.0, gt=0)
    # Share of an account's daily comment/list budget that polling may spend (the rest: replies, figures).
    comment_budget_share: float = Field(0.5, gt=0, le=1)
    # Every article's whole comment list is read again this often: comment order is not append-only.
    full_rescan_s: float = Field(21600.0, gt=0)


class PolicyEntry(_Section):
    first_response_days: int = Field(ge=0)
    resolution_days: int = Field(ge=0)


class PolicyOverride(_Section):
    intent: str
    topic: str
    first_response_days: int | None = Field(None, ge=0)
    resolution_days: int | None = Field(None, ge=0)


def _default_policy() -> dict[str, PolicyEntry]:
    return {
        "complaint": PolicyEntry(first_response_days=1, resolution_days=5),
        "question": PolicyEntry(first_response_days=1, resolution_days=5),
        "suggestion": PolicyEntry(first_response_days=2, resolution_days=10),
    }


class TicketsConfig(_Section):
    # Warn when this share of the time to the resolution deadline has passed.
    warn_at_share: float = Field(0.75, gt=0, lt=1)
    # Deadlines per intent in Chinese working days (工作日); praise and other make no ticket.
    policy: dict[str, PolicyEntry] = Field(default_factory=_default_policy)
    policy_overrides: list[PolicyOverride] = Field(default_factory=list)
    # Ticket priority per intent: 1 high, 2 normal, 3 low (inboxes sort by deadline, then priority).
    priority: dict[str, int] = Field(default_factory=lambda: {"complaint": 1, "question": 2, "suggestion": 2})
    check_interval_s: float = Field(60.0, gt=0)
    # Empty: holidays.toml of the rules (the site's triage.rules_dir, else the shipped one).
    holidays_file: str = ""

    @field_validator("priority")
    @classmethod
    def _priorities(cls, v: dict[str, int]) -> dict[str, int]:
        for intent, level in v.items():
            if intent not in INTENTS:
                raise ValueError(f"unknown intent {intent!r}; expected one of {', '.join(INTENTS)}")
            if level not in (1, 2, 3):
                raise ValueError(f"priority of {intent} must be 1 (high), 2 (normal) or 3 (low), not {level}")
        return v

    @field_validator("policy")
    @classmethod
    def _intents(cls, v: dict[str, PolicyEntry]) -> dict[str, PolicyEntry]:
        for intent in v:
            if intent not in INTENTS:
                raise ValueError(f"unknown intent {intent!r}; expected one of {', '.join(INTENTS)}")
        return v


class SmtpConfig(_Section):
    host: str = ""
    port: int = Field(25, ge=1, le=65535)
    username: str = ""
    password: str = ""
    from_addr: str = "govbot@localhost"
    starttls: bool = False
    ssl: bool = False
    timeout_s: float = Field(10.0, gt=0)


class WecomConfig(_Section):
    # 企业微信群机器人 webhook: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...
    webhook_url: str = ""
    timeout_s: float = Field(10.0, gt=0)


class DeliveryConfig(_Section):
    smtp: SmtpConfig = SmtpConfig()
    wecom: WecomConfig = WecomConfig()


class QuotasConfig(_Section):
    # Budget overrides for every account of a platform: API -> calls per window. Defaults come from
    # the platforms' documents (bot/connectors/quota.py); an account's own `quotas` wins over these.
    wechat: dict[str, int] = Field(default_factory=dict)
    weibo: dict[str, int] = Field(default_factory=dict)
    # Window lengths: WeChat counts per day (reset at midnight Beijing time), Weibo per hour.
    wechat_window_s: int = Field(86400, ge=1)
    weibo_window_s: int = Field(3600, ge=1)


class Config(_Section):
    # Where this config came from ("<defaults>" for the embedded default); set by load_config.
    source: str = "<defaults>"
    timezone: str = "Asia/Shanghai"
    data_dir: str = "data"
    database: DatabaseConfig = DatabaseConfig()
    web: WebConfig = WebConfig()
    callback: CallbackConfig = CallbackConfig()
    emulator: EmulatorConfig = EmulatorConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    signoff: SignoffConfig = SignoffConfig()
    gap: GapConfig = GapConfig()
    inspection: InspectionConfig = InspectionConfig()
    posts: PostsConfig = PostsConfig()
    platforms: PlatformsConfig = PlatformsConfig()
    triage: TriageConfig = TriageConfig()
    autoreply: AutoReplyConfig = AutoReplyConfig()
    polling: PollingConfig = PollingConfig()
    tickets: TicketsConfig = TicketsConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    quotas: QuotasConfig = QuotasConfig()
    organisations: list[OrganisationConfig] = Field(default_factory=list)
    departments: list[DepartmentConfig] = Field(default_factory=list)
    accounts: list[AccountConfig] = Field(default_factory=list)
    users: list[UserConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v

    # Paths in the file are relative to the file's folder (the working directory for the embedded default).
    @property
    def base_dir(self) -> Path:
        return Path.cwd() if self.source == "<defaults>" else Path(self.source).resolve().parent

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p

    @property
    def rules_dir(self) -> Path | None:
        """The site's own rules directory, or None for the shipped rules only."""
        return self.path(self.triage.rules_dir) if self.triage.rules_dir else None

    @property
    def holidays_path(self) -> Path:
        if self.tickets.holidays_file:
            return self.path(self.tickets.holidays_file)
        return rule_file(self.rules_dir, "holidays.toml")

    @property
    def database_url(self) -> str:
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
            return prefix + str(self.path(url[len(prefix):]))
        return url

    @property
    def emulator_url(self) -> str:
        return f"http://{self.emulator.host}:{self.emulator.port}"

    @property
    def wechat_api_base(self) -> str:
        if self.platforms.wechat.api_base:
            return self.platforms.wechat.api_base
        return f"{self.emulator_url}/wechat/cgi-bin/" if self.emulator.enabled else WECHAT_API

    @property
    def weibo_api_base(self) -> str:
        if self.platforms.weibo.api_base:
            return self.platforms.weibo.api_base
        return f"{self.emulator_url}/weibo/2/" if self.emulator.enabled else WEIBO_API

    @property
    def uses_real_platforms(self) -> bool:
        return not self.emulator.enabled

    def account(self, name: str) -> AccountConfig:
        for a in self.accounts:
            if a.name == name:
                return a
        raise KeyError(name)


def _resolve_env(value: Any, key: str, file: str) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_env(v, f"{key}.{k}" if key else k, file) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{key}[{i}]", file) for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError(file, key, f"environment variable {name} is not set")
        return os.environ[name]
    return value


def _loc(loc: tuple, raw: dict) -> str:
    """Pydantic's error location as the TOML key a person would look for, e.g. accounts[1].appid."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_config(data: dict[str, Any], *, file: str = "<defaults>") -> Config:
    data = _resolve_env(data, "", file)
    try:
        cfg = Config.model_validate({**data, "source": file})
    except ValidationError as e:
        raise ConfigError.of([ConfigError(file, _loc(err["loc"], data), err["msg"].removeprefix("Value error, "))
                              for err in e.errors()]) from None
    problems: list[ConfigError] = []
    _check_references(cfg, file, problems)
    _check_secret_key(cfg, file, problems)
    if cfg.uses_real_platforms:
        _refuse_placeholders(cfg, file, problems)
    if problems:
        raise ConfigError.of(problems)
    return cfg


def _check_references(cfg: Config, file: str, problems: list[ConfigError]) -> None:
    def dupes(items: list, attr: str, key: str) -> None:
        seen: set[str] = set()
        for i, it in enumerate(items):
            v = getattr(it, attr)
            if v in seen:
                problems.append(ConfigError(file, f"{key}[{i}].{attr}", f"duplicate {attr} {v!r}"))
            seen.add(v)

    dupes(cfg.organisations, "name", "organisations")
    dupes(cfg.departments, "name", "departments")
    dupes(cfg.accounts, "name", "accounts")
    dupes(cfg.users, "username", "users")
    orgs = {o.name for o in cfg.organisations}
    depts = {d.name for d in cfg.departments}
    users = {u.username for u in cfg.users}
    for i, d in enumerate(cfg.departments):
        if d.organisation and d.organisation not in orgs:
            problems.append(ConfigError(file, f"departments[{i}].organisation", f"no organisation named {d.organisation!r}"))
        if d.lead and d.lead not in users:
            problems.append(ConfigError(file, f"departments[{i}].lead", f"no user named {d.lead!r}"))
    for i, a in enumerate(cfg.accounts):
        if a.department and a.department not in depts:
            problems.append(ConfigError(file, f"accounts[{i}].department", f"no department named {a.department!r}"))
    for i, u in enumerate(cfg.users):
        if u.department and u.department not in depts:
            problems.append(ConfigError(file, f"users[{i}].department", f"no department named {u.department!r}"))
    if depts:
        for topic, dept in cfg.triage.topic_departments.items():
            if dept not in depts:
                problems.append(ConfigError(file, f"triage.topic_departments.{topic}", f"no department named {dept!r}"))
        if cfg.triage.default_department not in depts:
            problems.append(ConfigError(file, "triage.default_department", f"no department named {cfg.triage.default_department!r}"))
    for i, o in enumerate(cfg.organisations):
        if "email" in o.digest_channels and not (o.digest_to and cfg.delivery.smtp.host):
            problems.append(ConfigError(file, f"organisations[{i}].digest_channels", "email needs digest_to and delivery.smtp.host"))
        if "wecom" in o.digest_channels and not cfg.delivery.wecom.webhook_url:
            problems.append(ConfigError(file, f"organisations[{i}].digest_channels", "wecom needs delivery.wecom.webhook_url"))


# Secret keys published somewhere (examples, tutorials): refused like placeholders, in every mode.
KNOWN_SECRET_KEYS = {"dev", "development", "change-me", "changeme", "secret", "secret-key", "secret_key",
                     "please-change-me", "insecure", "s3cr3t"}
MIN_SECRET_KEY_LENGTH = 32


def _check_secret_key(cfg: Config, file: str, problems: list[ConfigError]) -> None:
    key = cfg.web.secret_key
    if not key:
        return  # generated into the data directory (bot.web.secret_key)
    if key.lower() in KNOWN_SECRET_KEYS or PLACEHOLDER.match(key):
        problems.append(ConfigError(file, "web.secret_key", "a published or placeholder key is refused; leave it "
                                                            "unset (a random one is generated) or set a random one"))
    elif len(key) < MIN_SECRET_KEY_LENGTH:
        problems.append(ConfigError(file, "web.secret_key", f"too short: at least {MIN_SECRET_KEY_LENGTH} random "
                                                            "characters (or leave it unset and a random one is generated)"))


def _refuse_placeholders(cfg: Config, file: str, problems: list[ConfigError]) -> None:
    for i, a in enumerate(cfg.accounts):
        if not a.enabled:
            continue
        needed = ("secret", "token") if a.platform == "wechat" else ("access_token",)
        for name in needed:
            if PLACEHOLDER.match(getattr(a, name)):
                problems.append(ConfigError(file, f"accounts[{i}].{name}", "placeholder or empty secret refused for a real platform account"))


def load_config(path: str | Path | None = None) -> Config:
    """Load the file named, or $GOVBOT_CONFIG, or ./config.toml; with none of them, the embedded default."""
    if path is None:
        path = os.environ.get("GOVBOT_CONFIG") or (DEFAULT_CONFIG_NAME if Path(DEFAULT_CONFIG_NAME).exists() else None)
    if path is None:
        return parse_config({})
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(str(p), "(file)", f"cannot read: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(p), "(file)", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(p), "(syntax)", str(e)) from None
    return parse_config(data, file=str(p.resolve()))
