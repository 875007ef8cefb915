"""Response models of /api/users."""

from __future__ import annotations

from pydantic import Field

from bot.web.schemas.common import Out


class SessionsEndedOut(Out):
    username: str
    ended: int = Field(description="How many console sessions were ended")
