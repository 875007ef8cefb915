"""Input no route can use, refused before any route runs (400/404), so it never reaches the database:
numbers beyond the database's integer range in the path, query or JSON body, and text that is not valid Unicode
(bytes that are not UTF-8, or JSON escapes of lone surrogates such as "\\ud800")."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi import HTTPException, Request

MAX_INT = 2**63 - 1
_INTEGER = re.compile(r"[+-]?\d+")


def _out_of_range(value: str) -> bool:
    return bool(_INTEGER.fullmatch(value.strip())) and abs(int(value)) > MAX_INT


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bad_values(value: Any) -> bool:
    """Does the parsed JSON hold a lone surrogate or an integer beyond the database's range?"""
    if isinstance(value, str):
        return _has_surrogate(value)
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) > MAX_INT
    if isinstance(value, float):
        return not math.isfinite(value)  # NaN, Infinity: not JSON, and no column takes them
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _bad_values(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_bad_values(v) for v in value)
    return False


async def refuse_bad_input(request: Request) -> None:
    for name, value in request.path_params.items():
        if isinstance(value, str) and (_out_of_range(value) or _has_surrogate(value)):
            raise HTTPException(404, f"{name} 超出范围，对象不存在")
    for name, value in request.query_params.multi_items():
        if _out_of_range(value) or _has_surrogate(value) or _has_surrogate(name):
            raise HTTPException(400, f"参数 {name[:50]!r} 超出范围或不是有效文字")
    if request.method in ("GET", "HEAD", "OPTIONS") or not request.headers.get("content-type", "").startswith(
            "application/json"):
        return
    body = await request.body()
    try:
        data = json.loads(body.decode("utf-8")) if body else None
    except UnicodeDecodeError:
        raise HTTPException(400, "请求内容不是有效的 UTF-8 文字") from None
    except ValueError:
        return  # not JSON: the route's own validation says what is wrong (422)
    if _bad_values(data):
        raise HTTPException(400, "请求内容含有无效的 Unicode 字符（孤立的代理项）、超出范围的数字或 NaN/Infinity")
