"""The connector of an account: built once per process and reused, closed at shutdown.

Connectors keep HTTP connection pools (and, for WeChat, per-thread wechatpy clients), so they are
cached per account; a change of credentials or API address builds a fresh one.
"""

from __future__ import annotations

import atexit
import json
import threading

from bot.connectors.base import Connector
from bot.connectors.quota import Ledger, limits_for, window_length
from bot.context import Context
from bot.errors import GovbotError
from bot.models import Account

_lock = threading.Lock()
_connectors: dict[tuple, Connector] = {}


def _key(ctx: Context, account: Account) -> tuple:
    cfg = ctx.config
    base = cfg.wechat_api_base if account.platform == "wechat" else cfg.weibo_api_base
    return (id(ctx.engine), cfg.database_url, account.id, account.platform, base,
            json.dumps(account.credentials, sort_keys=True),
            json.dumps([limits_for(cfg, account.platform, account.name), window_length(cfg, account.platform)],
                       sort_keys=True))


def ledger_for(ctx: Context, account: Account) -> Ledger:
    """The account's quota ledger with its budgets from the config (bot.connectors.quota)."""
    return Ledger(ctx.engine, account_id=account.id, platform=account.platform,
                  limits=limits_for(ctx.config, account.platform, account.name),
                  window_s=window_length(ctx.config, account.platform))


def _build(ctx: Context, account: Account) -> Connector:
    # Imported here: wechatpy and its crypto stack cost a CLI command that never calls a platform.
    from bot.connectors.wechat import WeChatConnector
    from bot.connectors.weibo import WeiboConnector

    cfg, creds = ctx.config, account.credentials
    if account.platform == "wechat":
        return WeChatConnector(appid=creds.get("appid") or account.remote_id, secret=creds.get("secret", ""),
                               engine=ctx.engine, api_base=cfg.wechat_api_base,
                               timeout=cfg.platforms.wechat.timeout_s, ledger=ledger_for(ctx, account),
                               token_api=cfg.platforms.wechat.token_api)
    if account.platform == "weibo":
        return WeiboConnector(uid=creds.get("uid") or account.remote_id, access_token=creds.get("access_token", ""),
                              api_base=cfg.weibo_api_base, timeout=cfg.platforms.weibo.timeout_s,
                              ledger=ledger_for(ctx, account), rip=cfg.platforms.weibo.rip)
    raise GovbotError("platform.unknown", account=account.name, platform=account.platform)


def connector_for(ctx: Context, account: Account) -> Connector:
    key = _key(ctx, account)
    with _lock:
        connector = _connectors.get(key)
    if connector is not None:
        return connector
    # Built outside the lock: other accounts' threads need not wait for it.
    built = _build(ctx, account)
    with _lock:
        connector = _connectors.get(key)
        if connector is None:
            # Credentials or API address changed: the old connector of this account goes.
            to_close = [_connectors.pop(k) for k in list(_connectors) if k[:4] == key[:4]]
            connector = _connectors[key] = built
        else:
            to_close = [built]  # another thread built it first
    for old in to_close:
        old.close()
    return connector


def close_all(ctx: Context | None = None) -> None:
    """Close the cached connectors of `ctx` (all of them without one): service shutdown."""
    with _lock:
        keys = [k for k in _connectors if ctx is None or k[0] == id(ctx.engine)]
        connectors = [_connectors.pop(k) for k in keys]
    for connector in connectors:
        connector.close()


atexit.register(close_all)
