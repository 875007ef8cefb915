"""Property-based fuzz of the JSON API (every operation of /api/openapi.json) and the WeChat callback:
whatever arrives, the answer is never a 500. Fixed seed (derandomize) and a bounded number of examples,
so the run is repeatable and takes seconds."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from bot.inbound.callback import sign
from bot.models import User
from bot.users import issue_api_token
from bot.web.app import create_app

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=300,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# About 20 s for the API and 10 s for the callback on one loaded core.

# Text as attackers send it: ordinary, Chinese, control characters and lone surrogates.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30) | st.sampled_from(
    ["", "0", "-1", "2026-11", "0001-01", "9999-12-31", "0001-01-01", "\ud800", "'; DROP TABLE post; --", "住建局",
     "示例县发布", "admin", "%00", "../../etc/passwd"])
NUMBER = st.integers() | st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**20])
SCALAR = TEXT | NUMBER | st.booleans() | st.none() | st.floats(allow_nan=False)
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=8)


def operations(app) -> list[tuple[str, str, dict]]:
    ops = []
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            ops.append((method.upper(), path, op))
    return ops


def body_for(op: dict, schemas: dict, draw) -> dict:
    """A JSON body shaped like the operation's schema about half the time (so validation is passed and
    the services see odd values), anything at all otherwise."""
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return {}
    ref = content["application/json"].get("schema", {}).get("$ref", "")
    props = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
    if props and draw(st.booleans()):
        value = {name: draw(JSON) for name in props if draw(st.booleans())}
    else:
        value = draw(JSON)
    raw = json.dumps(value, ensure_ascii=draw(st.booleans()))
    return {"content": raw.encode("utf-8", "surrogatepass"), "headers": {"Content-Type": "application/json"}}


def test_fuzz_json_api_never_answers_500(ctx, capsys) -> None:
    app = create_app(ctx)
    with ctx.session() as s:
        token = issue_api_token(session=s, user=s.exec(select(User).where(User.username == "admin")).one())
    client = TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {token}"})
    spec = app.openapi()
    schemas = spec.get("components", {}).get("schemas", {})
    ops = [op for op in operations(app) if op[1].startswith("/api/")]
    seen: dict[str, int] = {}
    started = time.monotonic()

    @settings(FUZZ, max_examples=1500)
    @given(st.data())
    def run(data) -> None:
        method, path, op = data.draw(st.sampled_from(ops))
        url = path
        params = {}
        for p in op.get("parameters", []):
            value = data.draw(NUMBER if p["in"] == "path" and "integer" in json.dumps(p["schema"]) and
                              data.draw(st.booleans()) else TEXT | NUMBER)
            if p["in"] == "path":
                text = quote(str(value).encode("utf-8", "surrogatepass"), safe="") or "0"
                url = url.replace("{" + p["name"] + "}", text)
            elif data.draw(st.booleans()):
                params[p["name"]] = str(value).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        r = client.request(method, url, params=params, **body_for(op, schemas, data.draw))
        seen[str(r.status_code)] = seen.get(str(r.status_code), 0) + 1
        assert r.status_code != 500, f"{method} {url} {params}: {r.text[:300]}"
        if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
            body = r.json()
            assert isinstance(body, dict) and ("code" in body or "error" in body or "detail" in body)

    run()
    with capsys.disabled():
        print(f"\nfuzz JSON API: {sum(seen.values())} calls over {len(ops)} operations in "
              f"{time.monotonic() - started:.1f} s, statuses {dict(sorted(seen.items()))}")


XML_FIELD = st.sampled_from(["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Event",
                             "Encrypt", "PicUrl", "MediaId", "EventKey"])
XML_VALUE = TEXT | NUMBER.map(str) | st.sampled_from(["text", "event", "image", "subscribe", "]]>", "<!ENTITY x>",
                                                      "99999999999999999999", "oAbCdEfGhIjKlMnOpQrStUvWxYz1"])


def test_fuzz_wechat_callback_never_answers_500(ctx, capsys) -> None:
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    account = next(a for a in ctx.config.accounts if a.platform == "wechat" and a.message_mode == "plain")
    seen: dict[str, int] = {}

    @settings(FUZZ, max_examples=800)
    @given(fields=st.lists(st.tuples(XML_FIELD, XML_VALUE), max_size=8), signed=st.booleans(),
           raw=st.none() | st.binary(max_size=200), method=st.sampled_from(["POST", "POST", "GET"]),
           appid=st.sampled_from([account.appid] * 6 + ["wx-unknown", "%ED%A0%80", "x" * 300]))
    def run(fields, signed, raw, method, appid) -> None:
        ts, nonce = str(int(time.time())), "424242"
        body = raw if raw is not None else ("<xml>" + "".join(
            f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields) + "</xml>").encode("utf-8", "surrogatepass")
        params = {"timestamp": ts, "nonce": nonce, "signature": sign(account.token, ts, nonce) if signed else "x",
                  "echostr": "hello"}
        url = "/wechat/callback/" + appid
        r = client.request(method, url, params=params, content=body, headers={"Content-Type": "text/xml"})
        seen[str(r.status_code)] = seen.get(str(r.status_code), 0) + 1
        assert r.status_code != 500, f"{method} {body[:200]!r}: {r.text[:200]}"

    run()
    with capsys.disabled():
        print(f"\nfuzz WeChat callback: {sum(seen.values())} deliveries, statuses {dict(sorted(seen.items()))}")
