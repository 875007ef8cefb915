"""Administration in the console: users and roles, departments, own password, account connection
test, rules edited with validation and tried before saving; the report page and its Word record."""

from __future__ import annotations

import io
import re
import shutil
import time

from docx import Document
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.config import REPO_ROOT
from bot.context import Context
from bot.models import Account, Department, DigestRun, User
from bot.web.app import create_app
from tests.test_console import csrf_of, login, post_form


def test_admin_adds_a_user_who_then_logs_in(ctx: Context) -> None:
    admin = login(TestClient(create_app(ctx)), "admin")
    with ctx.session() as s:
        dept = s.exec(select(Department).where(Department.name == "住建局")).one()
    token = csrf_of(admin.get("/admin/users").text)
    r = admin.post("/admin/users", data={"csrf_token": token, "username": "xiaowang", "display_name": "小王",
                                         "department": str(dept.id), "password": "short", "roles": ["responder"]})
    assert r.status_code == 422 and 'value="xiaowang"' in r.text  # too short: refused, the form kept
    r = admin.post("/admin/users", data={"csrf_token": token, "username": "xiaowang", "display_name": "小王",
                                         "department": str(dept.id), "password": "Renmin-2026",
                                         "roles": ["responder", "editor"]})
    assert "已添加用户 xiaowang" in r.text and "答复人" in r.text
    newbie = login(TestClient(create_app(ctx)), "xiaowang", "Renmin-2026")
    assert 'href="/tickets"' in newbie.get("/").text
    assert newbie.get("/admin/users").status_code == 403


def test_admin_edits_roles_and_disables_a_user(ctx: Context) -> None:
    admin = login(TestClient(create_app(ctx)), "admin")
    with ctx.session() as s:
        target = s.exec(select(User).where(User.username == "gongkai")).one()
    r = post_form(admin, f"/admin/users/{target.id}", {"display_name": "公开办", "roles": ["responder"], "email": ""},
                  page=f"/admin/users/{target.id}")
    assert "用户已保存" in r.text
    with ctx.session() as s:
        assert s.get(User, target.id).active is False
    fresh = TestClient(create_app(ctx))
    token = csrf_of(fresh.get("/login").text)
    assert fresh.post("/login", data={"username": "gongkai", "password": "demo", "csrf_token": token}).status_code == 401


def test_departments_are_added_and_renamed(ctx: Context) -> None:
    admin = login(TestClient(create_app(ctx)), "admin")
    r = post_form(admin, "/admin/departments", {"name": "城管局", "email": "cg@example.cn"})
    assert "城管局" in r.text
    r = post_form(admin, "/admin/departments", {"name": "城管局"})
    assert "已有名为“城管局”的部门" in r.text


def test_everyone_changes_their_own_password(ctx: Context) -> None:
    client = login(TestClient(create_app(ctx)), "zhujian")
    elsewhere = login(TestClient(create_app(ctx)), "zhujian")
    r = post_form(client, "/account/password", {"current": "wrong", "password": "Xinmima-2026", "again": "Xinmima-2026"})
    assert r.status_code == 422 and "当前密码不正确" in r.text
    r = post_form(client, "/account/password", {"current": "demo", "password": "Xinmima-2026", "again": "Xinmima-2026"})
    # The person who changed it stays logged in (under a new session); their other logins have ended.
    assert "密码已修改" in r.text and client.get("/", follow_redirects=False).status_code == 200
    assert elsewhere.get("/", follow_redirects=False).headers["location"].startswith("/login")
    login(TestClient(create_app(ctx)), "zhujian", "Xinmima-2026")


def test_connection_test_against_the_emulator(ectx: Context) -> None:
    admin = login(TestClient(create_app(ectx)), "admin")
    with ectx.session() as s:
        accounts = list(s.exec(select(Account).order_by(Account.id)))
        broken = accounts[0]
        broken.credentials = {**broken.credentials, "secret": "wrong-secret"}
        s.add(broken)
    for account in accounts[1:]:
        r = post_form(admin, f"/accounts/{account.id}/test", page="/accounts")
        assert f"{account.name}：连接正常" in r.text, r.text
    r = post_form(admin, f"/accounts/{broken.id}/test", page="/accounts")
    assert f"{broken.name}：" in r.text and "连接正常" not in r.text.split(f"{broken.name}：")[1][:40]


def test_rules_are_checked_tried_and_saved(ctx: Context, make_config, open_ctx, tmp_path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(REPO_ROOT / "rules", rules)
    ctx = open_ctx(make_config({"triage": {"rules_dir": str(rules)}}))
    admin = login(TestClient(create_app(ctx)), "admin")
    page = admin.get("/rules?file=topics.toml").text
    original = (rules / "topics.toml").read_text(encoding="utf-8")
    token = csrf_of(page)
    broken = original + "\n[[rule]]\nid = \"topic.broken\"\n"
    r = admin.post("/rules/edit", data={"csrf_token": token, "file": "topics.toml", "content": broken, "action": "save"})
    assert r.status_code == 422 and "规则文件有错误，未保存" in r.text and "topics.toml" in r.text
    assert (rules / "topics.toml").read_text(encoding="utf-8") == original
    message = "蓝莓果园的采摘路线太乱"
    added = original + ('\n[[rule]]\nid = "topic.trade.orchard"\ntopic = "商贸旅游"\n'
                        'words = ["蓝莓果园"]\nweight = 5\n')
    r = admin.post("/rules/edit", data={"csrf_token": token, "file": "topics.toml", "content": added,
                                        "text": message, "action": "try"})
    assert r.status_code == 200, r.text
    assert "按修改后的规则" in r.text and "主题判为“商贸旅游”" in r.text.split("按修改后的规则")[1]
    assert (rules / "topics.toml").read_text(encoding="utf-8") == original
    time.sleep(0.01)  # a new mtime, so the store sees the change
    r = admin.post("/rules/edit", data={"csrf_token": token, "file": "topics.toml", "content": added, "action": "save"},
                   follow_redirects=True)
    assert "规则已保存并重新加载" in r.text
    assert "蓝莓果园" in (rules / "topics.toml").read_text(encoding="utf-8")
    assert ctx.rules.current().classify(message).topic == "商贸旅游"
    responder = login(TestClient(create_app(ctx)), "zhujian")
    r = post_form(responder, "/rules/edit", {"file": "topics.toml", "content": original, "action": "save"},
                  page="/rules")
    assert r.status_code == 403 and "蓝莓果园" in (rules / "topics.toml").read_text(encoding="utf-8")


def test_digest_generated_time_moves_on_regeneration(ctx: Context) -> None:
    admin = login(TestClient(create_app(ctx)), "admin")
    post_form(admin, "/digest/send", {"org": "示例县人民政府"}, page="/digest")
    with ctx.session() as s:
        first = s.exec(select(DigestRun)).one().created_at
    time.sleep(0.05)
    post_form(admin, "/digest/send", {"org": "示例县人民政府"}, page="/digest")
    with ctx.session() as s:
        assert s.exec(select(DigestRun)).one().created_at > first


def test_report_page_has_charts_and_the_word_record(ctx: Context) -> None:
    client = login(TestClient(create_app(ctx)), "gongkai")
    html = client.get("/reports").text
    assert html.count('src="data:image/png;base64,') >= 1 and "下载检查记录表（Word）" in html
    query = re.search(r'href="/reports/docx\?([^"]+)"', html).group(1).replace("&amp;", "&")
    r = client.get(f"/reports/docx?{query}")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    doc = Document(io.BytesIO(r.content))
    text = "\n".join(p.text for p in doc.paragraphs)
    assert "月度检查记录表" in text and "检查结论" in text and "检查人（签字）" in text
    names = [row.cells[0].text for row in doc.tables[1].rows[1:]]
    assert "示例县发布" in names
    assert client.get("/reports/docx?month=2026-13").status_code == 422


def test_charts_pick_the_simplified_chinese_face() -> None:
    from bot.oversight.charts import cjk_font

    assert cjk_font() == "Noto Sans CJK SC"
