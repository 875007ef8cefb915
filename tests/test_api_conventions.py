"""JSON API conventions: a schema for every response in OpenAPI, one error shape with the catalogue's
codes and Chinese text for every kind of error, pages with total and next link, a bearer scheme."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from bot.error_texts import CATALOGUE
from bot.web.app import create_app
from tests.test_tickets_api import api, make_ticket

CJK = re.compile(r"[\u4e00-\u9fff]")


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "detail"} and body["code"] == code, body
    assert body["code"] in CATALOGUE and CJK.search(body["message"]), body
    return body


def test_openapi_has_a_schema_for_every_response_and_the_bearer_scheme(ctx):
    doc = TestClient(create_app(ctx)).get("/api/openapi.json").json()
    assert doc["components"]["securitySchemes"]["token"] == {
        "type": "http", "scheme": "bearer", "description": "An API token from `govbot user token USER`."}
    missing = []
    assert len([p for p in doc["paths"] if p.startswith("/api/")]) >= 20
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            if {"token": []} not in op.get("security", []):
                missing.append(f"{where}: no bearer security")
            for status, response in op["responses"].items():
                content = response.get("content")
                if status == "204":
                    continue
                if not content:
                    missing.append(f"{where} {status}: no content")
                    continue
                for media, spec in content.items():
                    schema = spec.get("schema", {})
                    if media == "application/json" and "$ref" not in schema:
                        missing.append(f"{where} {status}: JSON without a model ({schema})")
                    elif not schema:
                        missing.append(f"{where} {status} {media}: no schema")
                if status.startswith(("4", "5")) and content["application/json"]["schema"] != {
                        "$ref": "#/components/schemas/ErrorOut"}:
                    missing.append(f"{where} {status}: not the one error shape")
    assert not missing, "\n".join(missing)


def test_every_kind_of_error_has_the_one_shape(ctx):
    anonymous = TestClient(create_app(ctx))
    error_of(anonymous.get("/api/tickets"), 401, "request.unauthenticated")
    bad_token = TestClient(create_app(ctx), headers={"Authorization": "Bearer nope"})
    error_of(bad_token.get("/api/tickets"), 401, "request.unauthenticated")
    admin = api(ctx, "admin")
    error_of(admin.get("/api/nothing-here"), 404, "request.not_found")
    error_of(admin.delete("/api/posts"), 405, "request.method")
    body = error_of(admin.get("/api/posts/999"), 404, "post.not_found")
    assert body["message"] == "稿件 999 不存在" and body["detail"]["post_id"] == 999
    body = error_of(admin.post("/api/posts", json={"title": 5}), 422, "request.invalid")
    assert {e["field"] for e in body["detail"]} >= {"title"}
    error_of(admin.get("/api/tickets/abc"), 422, "request.invalid")
    error_of(admin.get("/api/reports?month=2026-13"), 400, "report.bad_month")
    body = error_of(api(ctx, "fenguan").post("/api/posts", json={"title": "t", "body": "<p>b</p>"}), 403,
                    "permission.refused")
    assert body["message"] == "fenguan 无权撰写和修改稿件（需要“编辑”角色）"


def test_lists_come_in_pages_with_total_and_next(ctx):
    ids = [make_ticket(ctx, key=f"k{i}", days_ago=10 - i) for i in range(3)]
    gongkai = api(ctx, "gongkai")
    first = gongkai.get("/api/tickets?limit=2").json()
    assert first["total"] == 3 and [t["id"] for t in first["items"]] == ids[:2]
    assert first["next"] == "http://testserver/api/tickets?offset=2&limit=2"
    second = gongkai.get(first["next"]).json()
    assert [t["id"] for t in second["items"]] == ids[2:] and second["next"] is None
    error_of(gongkai.get("/api/tickets?limit=0"), 422, "request.invalid")
    late = gongkai.get("/api/tickets?overdue=true").json()
    assert late["total"] == len(late["items"]) and all(t["overdue"] for t in late["items"]) and late["total"] >= 1


def test_errors_outside_the_api_are_chinese_pages(ctx):
    from tests.test_console import login

    client = TestClient(create_app(ctx))
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and "页面不存在" in missing.text and "Not Found" not in missing.text
    login(client, "gongkai")
    bad = client.get("/tickets/abc")
    assert bad.status_code == 422 and "地址或表单内容有误" in bad.text and "int_parsing" not in bad.text
    assert client.get("/", follow_redirects=False).status_code == 200
