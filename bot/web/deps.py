"""FastAPI dependencies shared by the JSON API and the console: the context, sessions, the acting user."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from bot.context import Context
from bot.models import User
from bot.web.access import identify, refuse_anonymous


def get_ctx(request: Request) -> Context:
    return request.app.state.ctx


def get_session(ctx: Context = Depends(get_ctx)) -> Iterator[Session]:
    with ctx.session() as session:
        yield session


# The API's security scheme in OpenAPI (Swagger's Authorize button takes a `govbot user token`); the token
# itself is checked by the access check (bot.web.access) with the session cookie, in one place.
bearer = HTTPBearer(auto_error=False, scheme_name="token", description="An API token from `govbot user token USER`.")


def current_user(request: Request, ctx: Context = Depends(get_ctx),
                 _credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> User:
    """The user behind `Authorization: Bearer <token>` (API) or the console's session cookie, as found by
    the access check (bot.web.access) that already ran for this request."""
    with ctx.session() as s:
        user = identify(request, s)
    if user is None:
        raise refuse_anonymous("request.unauthenticated", request)
    return user
