"""Connection test of an account (连接测试): one cheap authenticated call, the outcome in Chinese."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from bot.connectors.base import PermanentError, PlatformError, TransientError
from bot.context import Context
from bot.models import Account


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str


def check_connection(ctx: Context, account: Account) -> ConnectionCheck:
    """WeChat: count the drafts (draft/count: needs a valid token, not among the calls limited to 100 a
    day); Weibo: read one page of comments to the account with its token."""
    from bot.connectors.registry import connector_for

    try:
        connector = connector_for(ctx, account)
        if account.platform == "wechat":
            connector._call("draft/count", lambda client: client.get("draft/count"))
        else:
            connector.list_comments(target="to_me", cursor="")
    except TransientError as exc:
        return ConnectionCheck(False, f"平台暂时不可用或调用过于频繁，请稍后再试（错误码 {exc.code or '无'}）。")
    except PermanentError as exc:
        return ConnectionCheck(False, f"平台拒绝了请求，请核对账号的凭据、IP 白名单和接口权限（错误码 {exc.code or '无'}）。")
    except PlatformError as exc:
        return ConnectionCheck(False, f"平台返回错误（错误码 {exc.code or '无'}）。")
    except (httpx.HTTPError, OSError):
        return ConnectionCheck(False, "无法连接到平台服务器，请检查网络或代理设置。")
    return ConnectionCheck(True, "连接正常：平台接受了本账号的凭据。")
