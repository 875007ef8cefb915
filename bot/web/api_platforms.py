"""JSON API of the platforms' limits: each account's call budgets (调用额度) and Weibo's length counter.

`GET /api/accounts/budgets` is what the console's account page shows; `POST /api/weibo/length` is
the live counter of the post editor (Weibo counts ASCII as half a character and a link as 10).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlmodel import select

from bot.connectors.quota import budget_overview
from bot.context import Context
from bot.errors import NotFound
from bot.models import Account, User
from bot.publishing.weibo_length import hashtags, weibo_length
from bot.web.deps import current_user, get_ctx
from bot.web.schemas.common import ERROR_RESPONSES, Page, PageParams, page
from bot.web.schemas.platforms import AccountBudgetsOut, WeiboLengthOut

router = APIRouter(prefix="/api", tags=["platforms"], responses=ERROR_RESPONSES)


def _account_budgets(ctx: Context, account: Account) -> dict[str, Any]:
    with ctx.session() as session:
        budgets = budget_overview(session, account.id, config=ctx.config)
    return {"account": account.name, "platform": account.platform, "budgets": [b.as_dict() for b in budgets]}


@router.get("/accounts/budgets", response_model=Page[AccountBudgetsOut])
def all_budgets(request: Request, params: PageParams = Depends(), ctx: Context = Depends(get_ctx),
                user: User = Depends(current_user)) -> dict[str, Any]:
    """Every account's budgets in the current window: limit, used, remaining, closed, publications waiting."""
    with ctx.session() as session:
        accounts = list(session.exec(select(Account).order_by(Account.name)))
    chosen = accounts[params.offset:params.offset + params.limit]
    return page(request, params, [_account_budgets(ctx, a) for a in chosen], total=len(accounts))


@router.get("/accounts/{name}/budgets", response_model=AccountBudgetsOut)
def account_budgets(name: str, ctx: Context = Depends(get_ctx), user: User = Depends(current_user)) -> dict[str, Any]:
    with ctx.session() as session:
        account = session.exec(select(Account).where(Account.name == name)).first()
    if account is None:
        raise NotFound("account.name_not_found", name=name)
    return _account_budgets(ctx, account)


class WeiboText(BaseModel):
    text: str = Field(max_length=20000)


@router.post("/weibo/length", response_model=WeiboLengthOut)
def weibo_text_length(body: WeiboText, ctx: Context = Depends(get_ctx),
                      user: User = Depends(current_user)) -> dict[str, Any]:
    """The text's length as Weibo counts it, the limit in force, and any #话题# (refused by the checks)."""
    weibo = ctx.config.platforms.weibo
    limit = weibo.long_post_max_chars if weibo.allow_long_posts else weibo.max_chars
    length = weibo_length(body.text)
    return {"length": length, "limit": limit, "remaining": limit - length,
            "hashtags": [m.group(0) for m in hashtags(body.text)]}
