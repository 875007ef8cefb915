"""The responders' inbox: search in Chinese, filters, bulk actions, near-duplicates answered at once,
the citizen's history, the classification in words and its correction."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.clock import utcnow
from bot.context import Context
from bot.emulator.testing import EmulatorAdmin
from bot.inbound.store import Incoming, ingest
from bot.models import Account, Correction, Message, Reply, Ticket, User
from bot.tickets.inbox import duplicate_groups
from bot.web.app import create_app
from tests.test_console import login, post_form


def incoming(ctx: Context, text: str, key: str, *, sender: str = "oCitizen0001", hours_ago: float = 1,
             account: str = "示例县住建") -> Ticket | None:
    """A message stored exactly as the callback stores it (Core insert, real triage)."""
    with ctx.session() as s:
        acc = s.exec(select(Account).where(Account.name == account)).one()
        result = ingest(session=s, ctx=ctx, incoming=Incoming(
            account_id=acc.id, kind="wechat_message", dedupe_key=key, sender_id=sender, text=text,
            received_at=utcnow() - timedelta(hours=hours_ago)))
        return result.ticket


def test_search_finds_chinese_words_and_filters_narrow(ctx: Context) -> None:
    lamp = incoming(ctx, "我们小区的路灯坏了一个月了，晚上出行很不安全，投诉物业没人管", "k1")
    lift = incoming(ctx, "小区电梯停运十多天没人维修，老人上下楼很困难，强烈投诉", "k2", hours_ago=2)
    assert lamp is not None and lift is not None
    with ctx.session() as s:
        stored = s.get(Message, lamp.message_id)
        assert "路灯" in stored.search_text.split()
    client = login(TestClient(create_app(ctx)), "admin")
    html = client.get("/tickets", params={"q": "路灯"}).text
    assert "路灯坏了" in html and "电梯停运" not in html and "共 <b>1</b> 件" in html
    html = client.get("/tickets", params={"q": "电梯 维修"}).text
    assert "电梯停运" in html and "路灯坏了" not in html
    assert "共 <b>0</b> 件" in client.get("/tickets", params={"q": "路灯 电梯"}).text
    html = client.get("/tickets", params={"intent": "praise"}).text
    assert "路灯坏了" not in html and "电梯停运" not in html
    html = client.get("/tickets", params={"sort": "newest", "assignee": "none", "due": "3d"}).text
    assert html.index("路灯坏了") < html.index("电梯停运")
    # Messages page: the same search.
    assert "电梯停运" not in client.get("/messages", params={"q": "路灯"}).text


def test_search_on_postgres_uses_the_same_words(pg_database: str) -> None:
    from sqlalchemy import create_engine
    from sqlmodel import Session

    from bot.search import matches, search_text

    engine = create_engine(pg_database)
    with Session(engine) as s:
        s.add(Account(id=1, name="a", platform="wechat"))
        s.flush()
        for i, text in enumerate(("路灯坏了一个月", "电梯停运没人修")):
            s.add(Message(account_id=1, kind="wechat_message", dedupe_key=str(i), text=text,
                          search_text=search_text(text), received_at=utcnow()))
        s.commit()
        found = s.exec(select(Message.text).where(matches("postgresql", "路灯"))).all()
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")  # a two-row table would be scanned otherwise
        stmt = select(Message.id).where(matches("postgresql", "路灯 坏"))
        sql = stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
    engine.dispose()
    assert found == ["路灯坏了一个月"]
    assert "ix_message_search_terms" in plan


def test_bulk_assign_and_close_each_ticket_on_its_own(ctx: Context) -> None:
    ids = [incoming(ctx, f"小区第{i}栋楼下垃圾堆放多日无人清运，投诉", f"b{i}", sender=f"o{i}").id for i in range(3)]
    client = login(TestClient(create_app(ctx)), "zhujian")
    with ctx.session() as s:
        zhujian = s.exec(select(User).where(User.username == "zhujian")).one()
        dept = s.get(Ticket, ids[0]).department_id
    if zhujian.department_id != dept:  # route the test tickets to zhujian's department
        with ctx.session() as s:
            for tid in ids:
                s.get(Ticket, tid).department_id = zhujian.department_id
    page = client.get("/tickets").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/tickets/bulk", data={"csrf_token": token, "action": "assign", "assignee": str(zhujian.id),
                                            "ids": [str(i) for i in ids]})
    assert "已指派 3 件工单" in r.text
    r = client.post("/tickets/bulk", data={"csrf_token": token, "action": "close", "close_reason": "duplicate",
                                            "ids": [str(ids[0]), str(ids[1])]})
    assert "已关闭 2 件工单" in r.text
    r = client.post("/tickets/bulk", data={"csrf_token": token, "action": "close", "close_reason": "duplicate",
                                            "ids": [str(ids[0]), str(ids[2])]})
    assert "已关闭 1 件工单" in r.text and f"工单 #{ids[0]} 未处理" in r.text
    with ctx.session() as s:
        assert [s.get(Ticket, i).state for i in ids] == ["closed"] * 3
        assert all(s.get(Ticket, i).assignee_id == zhujian.id for i in ids)


def test_near_duplicates_are_grouped_by_account_text_and_time() -> None:
    now = utcnow()

    def m(i, text, account=1, hours=0):
        return Message(id=i, account_id=account, kind="weibo_comment", dedupe_key=str(i), text=text,
                       received_at=now + timedelta(hours=hours))

    groups = duplicate_groups([
        m(1, "幸福路的路灯坏了好几天了，晚上一片漆黑"), m(2, "幸福路的路灯坏了好几天了，晚上漆黑一片", hours=2),
        m(3, "幸福路路灯坏了好几天了，晚上一片漆黑！！", hours=5),
        m(4, "幸福路的路灯坏了好几天了，晚上一片漆黑", account=2),  # another account
        m(5, "幸福路的路灯坏了好几天了，晚上一片漆黑", hours=24 * 5),  # much later
        m(6, "学校门口早上堵车严重"),
    ])
    assert [[x.id for x in g] for g in groups] == [[1, 2, 3]]


def weibo_comments(ctx: Context, emulator: str, texts: list[str]) -> list[int]:
    status = httpx.post(f"{emulator}/weibo/2/statuses/share.json",
                        data={"access_token": "demo-weibo-token-0001",
                              "status": "路灯维修公告 http://gov.example.cn/n/2", "rip": "203.0.113.7"}).json()
    ids = []
    with EmulatorAdmin(emulator) as admin, ctx.session() as s:
        account = s.exec(select(Account).where(Account.name == "示例县发布微博")).one()
        zhujian = s.exec(select(User).where(User.username == "zhujian")).one()
        for i, text in enumerate(texts):
            c = admin.weibo_comment(status_id=status["id"], uid=6000000100 + i, screen_name=f"网友{i}", text=text)
            result = ingest(session=s, ctx=ctx, incoming=Incoming(
                account_id=account.id, kind="weibo_comment", dedupe_key=str(c["id"]), sender_id=str(6000000100 + i),
                sender_name=f"网友{i}", text=text, remote_ref=str(status["id"]),
                raw=json.dumps({"reply_target": {"cid": str(c["id"]), "id": str(status["id"])}}),
                received_at=utcnow() - timedelta(minutes=30 - i)))
            result.ticket.department_id = zhujian.department_id
            ids.append(result.ticket.id)
    return ids


def test_one_answer_goes_to_every_near_duplicate_through_its_own_channel(ectx: Context, emulator: str) -> None:
    ids = weibo_comments(ectx, emulator, ["幸福路的路灯坏了好几天了，晚上一片漆黑，什么时候修？"] * 2
                         + ["幸福路路灯坏了好几天了，晚上一片漆黑，什么时候修啊"])
    client = login(TestClient(create_app(ectx)), "zhujian")
    page = client.get(f"/tickets/{ids[0]}").text
    assert "相似留言" in page and all(f'name="also" value="{i}"' in page for i in ids[1:])
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post(f"/tickets/{ids[0]}/answer", data={"csrf_token": token, "text": "您好，路灯已安排本周内修复。",
                                                       "also": [str(i) for i in ids[1:]]})
    assert "答复已发送给群众" in r.text and "也已发给 2 条相似留言" in r.text
    with ectx.session() as s:
        assert [s.get(Ticket, i).state for i in ids] == ["answered"] * 3
        replies = s.exec(select(Reply).where(Reply.ticket_id.in_(ids))).all()
        assert sorted(r.ticket_id for r in replies) == sorted(ids)
        assert {r.channel for r in replies} == {"weibo_comment"} and {r.state for r in replies} == {"sent"}
    with EmulatorAdmin(emulator) as admin:
        comments = admin.state()["weibo"]["comments"].values()
        assert sum(1 for c in comments if "本周内修复" in json.dumps(c, ensure_ascii=False)) == 3


def test_ticket_page_explains_in_words_and_a_correction_is_recorded(ctx: Context) -> None:
    first = incoming(ctx, "上次反映的垃圾问题还没解决，再次投诉", "h1", hours_ago=30)
    ticket = incoming(ctx, "小区门口的垃圾好几天没人清运，臭气熏天，强烈投诉", "h2")
    client = login(TestClient(create_app(ctx)), "admin")
    page = client.get(f"/tickets/{ticket.id}").text
    assert "诉求判为“投诉”" in page and "置信度" not in page
    assert "oCitizen0001" not in page and re.search(r"网友 \d{5}", page)
    assert "此前的留言" in page and "上次反映的垃圾问题" in page and f"/tickets/{first.id}" in page
    r = post_form(client, f"/tickets/{ticket.id}/correct", {"intent": "suggestion", "topic": "环境保护"},
                  page=f"/tickets/{ticket.id}")
    assert "分类已更正" in r.text
    with ctx.session() as s:
        row = s.exec(select(Correction).where(Correction.message_id == ticket.message_id)).one()
        admin = s.exec(select(User).where(User.username == "admin")).one()
        assert (row.user_id, row.old_intent, row.intent, row.topic) == (admin.id, "complaint", "suggestion", "环境保护")
        assert s.get(Ticket, ticket.id).intent == "suggestion"


def test_links_on_messages_lead_only_to_tickets_the_user_may_open(ctx: Context) -> None:
    ticket = incoming(ctx, "小区门口的垃圾好几天没人清运，臭气熏天，强烈投诉", "l1")
    with ctx.session() as s:
        zhujian = s.exec(select(User).where(User.username == "zhujian")).one()
        t = s.get(Ticket, ticket.id)
        other = next(u for u in s.exec(select(User)) if u.department_id not in (None, zhujian.department_id)
                     and u.has_role("responder"))
        # Triaged to the other's department (whose responders see its messages), the ticket then moved
        # (转办) to 住建局: the message stays in the other's list, its ticket is no longer theirs to open.
        s.get(Message, t.message_id).department_id = other.department_id
        t.department_id = zhujian.department_id
    client = login(TestClient(create_app(ctx)), other.username)
    html = client.get("/messages").text
    assert "垃圾好几天没人清运" in html and f'href="/tickets/{ticket.id}"' not in html
    assert f"工单 {ticket.id}（" in html
    client = login(TestClient(create_app(ctx)), "zhujian")
    assert f'href="/tickets/{ticket.id}"' in client.get("/messages").text


def test_classification_in_words_shows_words_not_ids_scores_or_punctuation() -> None:
    from bot.web.console.explain import explain

    lines = explain(intent="question", topic="城乡建设", confidence=0.62,
                    rules="question.when:什么时候|？;topic.construction.city:路灯|路灯")
    assert lines == ["诉求判为“咨询”，因为留言中有“什么时候”等词。", "主题判为“城乡建设”，依据“路灯”等词。",
                     "判断有一定把握，建议核对。"]
    assert explain(intent="other", topic=None, confidence=None, rules="", spam=True)[0] == "判为垃圾信息。"


def test_a_complaint_read_as_praise_is_corrected_from_the_message_list_and_gets_its_ticket(ctx: Context) -> None:
    assert incoming(ctx, "感谢你们", "p1") is None  # praise: no ticket
    client = login(TestClient(create_app(ctx)), "admin")
    with ctx.session() as s:
        message = s.exec(select(Message).where(Message.dedupe_key == "p1")).one()
    page = client.get("/messages").text
    assert f'action="/messages/{message.id}/correct"' in page
    r = post_form(client, f"/messages/{message.id}/correct", {"intent": "complaint", "topic": "城乡建设"},
                  page="/messages")
    assert "分类已更正" in r.text and "已生成工单" in r.text
    with ctx.session() as s:
        ticket = s.exec(select(Ticket).where(Ticket.message_id == message.id)).one()
        assert (ticket.intent, ticket.topic, ticket.state) == ("complaint", "城乡建设", "new")
        assert s.exec(select(Correction).where(Correction.message_id == message.id)).one().old_intent == "praise"
    r = post_form(client, f"/messages/{message.id}/correct", {"intent": "complaint", "topic": "城乡建设"},
                  page="/messages")
    assert "无需更正" in r.text
