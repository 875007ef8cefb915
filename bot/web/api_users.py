"""JSON API for users' console sessions under /api/users (admins): end every login of a user."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from bot.context import Context
from bot.models import User
from bot.users import end_sessions, get_user
from bot.web.deps import current_user, get_ctx
from bot.web.schemas.common import ERROR_RESPONSES
from bot.web.schemas.users import SessionsEndedOut

router = APIRouter(prefix="/api/users", tags=["users"], responses=ERROR_RESPONSES)


@router.delete("/{username}/sessions", response_model=SessionsEndedOut)
def end_user_sessions(username: str, ctx: Context = Depends(get_ctx),
                      user: User = Depends(current_user)) -> dict[str, Any]:
    """Log the user out everywhere (a lost phone, a person leaving); their API token is not touched."""
    with ctx.session() as s:
        return {"username": username, "ended": end_sessions(session=s, user=get_user(session=s, username=username))}
