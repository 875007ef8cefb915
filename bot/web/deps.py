"""FastAPI dependencies shared by the JSON API and the console: the context, sessions, the acting user."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from bot.context import Context
from bot.models import User
from bot.users import user_for_token


def get_ctx(request: Request) -> Context:
    return request.app.state.ctx


def get_session(ctx: Context = Depends(get_ctx)) -> Iterator[Session]:
    with ctx.session() as session:
        yield session


# The API's security scheme in OpenAPI (Swagger's Authorize button takes a `govbot user token`).
bearer = HTTPBearer(auto_error=False, scheme_name="token", description="An API token from `govbot user token USER`.")


def current_user(request: Request, session: Session = Depends(get_session),
                 credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> User:
    """The user behind `Authorization: Bearer <token>` (API) or the console's session cookie."""
    if credentials is not None:
        user = user_for_token(session=session, token=credentials.credentials.strip())
        if user is None:
            raise HTTPException(401, "invalid API token")
        return user
    user_id = request.session.get("user_id") if "session" in request.scope else None
    if user_id is not None:
        user = session.get(User, user_id)
        if user is not None and user.active:
            return user
    raise HTTPException(401, "login required")
