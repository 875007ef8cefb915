"""Every route of the app × every role × inside/outside the department × not logged in.

Routes are enumerated from the app itself, so a new route is covered (and must be in the access
table, bot.web.access.ROUTE_ACTIONS) without touching this test. Logged-in calls use the console's
session cookie, with the CSRF header on state changes, as a browser would.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.clock import utcnow
from bot.models import Account, Department, Message, Post, Reply, ReplyTemplate, User
from bot.permissions import ANYONE, RULES, allowed, may_act
from bot.tickets.service import open_ticket
from bot.users import hash_password
from bot.web.access import PLATFORM, ROUTE_ACTIONS
from bot.web.app import create_app

INSIDE, OUTSIDE = "政务公开办", "住建局"
PASSWORD = "matrix-password-1"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
# (username, roles, department, lead): every role inside and outside the objects' department.
PRINCIPALS = [("m_admin", ["admin"], None, False)]
for _role in ("editor", "reviewer", "approver", "responder"):
    PRINCIPALS += [(f"m_{_role}_in", [_role], INSIDE, False), (f"m_{_role}_out", [_role], OUTSIDE, False)]
PRINCIPALS += [("m_lead_in", ["reviewer"], INSIDE, True), ("m_lead_out", ["reviewer"], OUTSIDE, True),
               ("m_responder_nodept", ["responder"], None, False)]


def _objects(ctx) -> dict[str, str]:
    """One object of each kind a path can name, all in the INSIDE department."""
    with ctx.session() as s:
        depts = {d.name: d.id for d in s.exec(select(Department))}
        for name, roles, dept, lead in PRINCIPALS:
            s.add(User(username=name, display_name=name, roles=",".join(roles), department_id=depts.get(dept),
                       department_lead=lead, password_hash=hash_password(PASSWORD)))
        account = s.exec(select(Account).where(Account.name == "示例县发布")).one()
        author = s.exec(select(User).where(User.username == "xuanchuan")).one()
        bianji = s.exec(select(User).where(User.username == "bianji")).one()
        msg = Message(account_id=account.id, kind="wechat_message", dedupe_key="matrix", sender_id="o-matrix",
                      text="楼道灯不亮，没人管", received_at=utcnow() - timedelta(hours=1), intent="complaint",
                      needs_answer=True, department_id=depts[INSIDE])
        s.add(msg)
        s.flush()
        ticket = open_ticket(session=s, ctx=ctx, message=msg)
        reply = Reply(ticket_id=ticket.id, message_id=msg.id, account_id=account.id, sender_id="o-matrix",
                      channel="wechat_custom", text="已转交", state="failed",
                      automatic=False, author_id=author.id)
        template = ReplyTemplate(department_id=depts[INSIDE], name="matrix", text="您好")
        post = Post(title="t", body="b", author_id=author.id, content_hash="x")
        s.add_all([reply, template, post])
        s.flush()
        return {"ticket_id": str(ticket.id), "reply_id": str(reply.id), "template_id": str(template.id),
                "post_id": str(post.id), "publication_id": "1", "message_id": str(msg.id), "name": "console.css",
                "username": "bianji", "appid": account.remote_id, "inside": str(depts[INSIDE]),
                "fmt": "docx", "rectification_id": "1", "user_id": str(bianji.id), "account_id": str(account.id),
                "notice_id": "1", "media_id": "1", "package": "quill"}


def _cases(app) -> list[tuple[str, str]]:
    out = []
    for rc in iter_route_contexts(app.routes):
        for method in sorted(rc.methods or ()):
            if method != "HEAD":
                out.append((method, rc.path))
    return out


def _order(case: tuple[str, str]) -> tuple[int, str, str]:
    # Reads first, then changes; log-in and log-out last (they change who is calling, and failed
    # log-ins count towards the address's lock-out).
    method, path = case
    rank = 3 if path in ("/login", "/logout") else {"GET": 0, "DELETE": 2}.get(method, 1)
    return (rank, path, method)


def _login(app, username: str) -> tuple[TestClient, str]:
    client = TestClient(app, raise_server_exceptions=False)
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    csrf = CSRF_META.search(client.get("/").text).group(1)
    return client, csrf


def test_every_route_every_role_inside_outside_and_anonymous(ctx, capsys) -> None:
    app = create_app(ctx)
    objs = _objects(ctx)
    cases = sorted(_cases(app), key=_order)
    missing = [f"{m} {p}" for m, p in cases if (m, p) not in ROUTE_ACTIONS]
    assert not missing, f"routes missing from bot.web.access.ROUTE_ACTIONS: {missing}"

    with ctx.session() as s:
        users = {u.username: u for u in s.exec(select(User).where(User.username.in_([p[0] for p in PRINCIPALS])))}
        for u in users.values():
            s.expunge(u)
    clients = {name: _login(app, name) for name in users}
    anonymous = TestClient(app, raise_server_exceptions=False)
    inside = int(objs["inside"])
    checked = 0
    failures = []
    for method, template in cases:
        action = ROUTE_ACTIONS[(method, template)]
        path = re.sub(r"\{(\w+)\}", lambda m: objs[m.group(1)], template)
        api = path.startswith("/api/")
        scoped = any(f"{{{p}}}" in template for p in ("ticket_id", "reply_id", "template_id", "message_id"))
        body = {"json": {}} if api and method != "GET" else {}

        r = anonymous.request(method, path, follow_redirects=False, **body)
        checked += 1
        if action in (ANYONE, PLATFORM):
            # Open, though a form posted without the session's CSRF token is still refused as forged.
            if r.status_code == 401 and template != "/login" or r.headers.get("location", "").startswith("/login") \
                    or r.status_code == 403 and "CSRF" not in r.text:
                failures.append(f"anonymous {method} {template}: {r.status_code}, expected open")
        elif api and r.status_code != 401 or not api and not (
                r.status_code == 303 and r.headers["location"].startswith("/login")):
            failures.append(f"anonymous {method} {template}: {r.status_code}, expected refusal")
        if action == PLATFORM:
            continue

        def expected(name: str, action: str = action, scoped: bool = scoped) -> bool:
            # Routes naming an object: its department decides; lists: the role (the list is then filtered).
            return allowed(users[name], action, inside) if scoped else may_act(users[name], action)

        # Refusals first: an allowed call may change or delete the object the others ask for.
        for name in sorted(clients, key=expected):
            client, csrf, expect = *clients[name], expected(name)
            headers = {"X-CSRF-Token": csrf} if method not in ("GET", "HEAD") else {}
            r = client.request(method, path, headers=headers, follow_redirects=False, **body)
            checked += 1
            refused = r.status_code == 403 and f"无权{RULES[action].zh}" in r.text
            if r.status_code == 500 or refused == expect or r.status_code == 401 and template != "/login":
                failures.append(f"{name} {method} {template}: {r.status_code} {r.text[:120]!r}, "
                                f"expected {'allowed' if expect else 'refused'}")
    with capsys.disabled():  # the count of cases belongs in the test output
        print(f"\nroute matrix: {len(cases)} routes x {len(clients) + 1} principals: {checked} cases checked")
    assert not failures, "\n".join(failures)


@pytest.fixture
def client_for(ctx):
    app = create_app(ctx)
    objs = _objects(ctx)
    return app, objs


def test_lists_show_only_the_own_department(ctx, client_for) -> None:
    """The known holes: /messages?department=, ticket lists and failed replies for editors, templates."""
    app, objs = client_for
    with ctx.session() as s:
        other = s.exec(select(Department).where(Department.name == OUTSIDE)).one().id
    responder_out, _ = _login(app, "m_responder_out")
    page = responder_out.get("/messages")
    assert page.status_code == 200 and "楼道灯不亮" not in page.text
    assert responder_out.get(f"/messages?department={objs['inside']}").status_code == 403
    assert responder_out.get(f"/messages?department={other}").status_code == 200
    responder_in, _ = _login(app, "m_responder_in")
    assert "楼道灯不亮" in responder_in.get("/messages").text
    editor, _ = _login(app, "m_editor_in")
    for url in ("/api/tickets", "/api/tickets/replies/failed", "/tickets", "/tickets/templates",
                "/api/tickets/templates"):
        assert editor.get(url).status_code == 403, url
    assert responder_out.get(f"/api/tickets/templates?department_id={objs['inside']}").status_code == 403
    own = responder_in.get("/api/tickets/templates").json()
    assert [t["name"] for t in own["items"]] == ["matrix"] and own["total"] == 1
    assert responder_out.get("/api/tickets/templates").json()["items"] == []
    failed = responder_out.get("/api/tickets/replies/failed").json()
    assert failed["items"] == [] and failed["total"] == 0
    assert len(responder_in.get("/api/tickets/replies/failed").json()["items"]) == 1


def test_post_target_accounts_are_department_scoped(ctx) -> None:
    """An editor publishes on the accounts of the own department only; the CLI (--as) refuses the same."""
    from bot.errors import PermissionDenied
    from bot.publishing.service import submit_post
    from tests.test_signoff import act, new_post, schedule, sign_as

    with ctx.session() as s:
        zhujian = s.exec(select(Department).where(Department.name == OUTSIDE)).one()
        s.add(User(username="m_editor_zj", roles="editor", department_id=zhujian.id))
    # Signed for accounts of two departments (only an admin may submit for both), so that what is
    # refused below is the department, not an account the signers never approved.
    post_id = new_post(ctx)
    act(ctx, submit_post, post_id, "admin", config=ctx.config, accounts=["示例县发布", "示例县住建"])
    for name in ("bianji", "fenguan", "zhuyao"):
        sign_as(ctx, post_id, name)
    with pytest.raises(PermissionDenied, match="示例县发布"):
        schedule(ctx, post_id, username="m_editor_zj", accounts=("示例县发布",))
    assert schedule(ctx, post_id, username="m_editor_zj", accounts=("示例县住建",))
    with pytest.raises(PermissionDenied, match="示例县住建"):
        schedule(ctx, post_id, username="xuanchuan", accounts=("示例县住建",))
    assert len(schedule(ctx, post_id, username="admin", accounts=("示例县发布", "示例县住建"))) == 2
