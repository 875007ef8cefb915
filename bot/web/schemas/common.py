"""What every part of the API shares: the one error shape, pages of a list, and the base of the models."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Out(BaseModel):
    """A response: the fields listed are documented; views may carry more (they are passed through)."""

    model_config = ConfigDict(extra="allow")


class ErrorOut(BaseModel):
    """Every API error: a stable catalogue code (bot/errors.py), its Chinese text, and details for programs."""

    code: str = Field(examples=["post.self_review"])
    message: str = Field(examples=["xuanchuan 撰写或修改过稿件 1，不能审核自己的稿件"])
    detail: Any = None


class Page(BaseModel, Generic[T]):
    """One page of a list: `next` is the URL of the following page, null on the last one."""

    items: list[T]
    total: int
    next: str | None = None


# The errors any API route may answer with, documented once for every router.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in ((400, "Bad input"), (401, "No or invalid token"), (403, "Not allowed"), (404, "Not found"),
                         (409, "State does not allow it"), (422, "Invalid request or failed checks"))
}


def other_formats(*types: str) -> dict[int | str, dict[str, Any]]:
    """The other formats a route answers with (`format=`), besides its JSON model."""
    return {200: {"content": {t: {"schema": {"type": "string"}} for t in types}}}


class PageParams:
    """limit/offset of a list (`?limit=50&offset=100`)."""

    def __init__(self, limit: int = Query(50, ge=1, le=1000, description="Items per page"),
                 offset: int = Query(0, ge=0, description="Items to skip")):
        self.limit, self.offset = limit, offset


def page(request: Request, params: PageParams, items: list[Any], total: int | None = None) -> dict[str, Any]:
    """A page of `items` (the whole list, or this page's items when `total` is given)."""
    if total is None:
        total = len(items)
        items = items[params.offset:params.offset + params.limit]
    end = params.offset + len(items)
    following = str(request.url.include_query_params(offset=end, limit=params.limit)) if end < total else None
    return {"items": items, "total": total, "next": following}
