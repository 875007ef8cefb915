"""Tickets: opening with working-day deadlines, warnings and escalations, reassign/close/notes, templates."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from loguru import logger
from sqlmodel import select

import bot.tickets.calendar as calendar_module
from bot.context import Context
from bot.errors import InvalidState, NotFound, PermissionDenied
from bot.models import Account, AuditEvent, Department, Message, Ticket, TicketNote, User
from bot.seed import sync_from_config
from bot.tickets import service
from bot.tickets.service import TicketError, check_deadlines, open_ticket

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*args) -> datetime:
    """A Shanghai wall-clock time as the aware UTC the database stores."""
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)


def end_of_local(y: int, m: int, d: int) -> datetime:
    """The exclusive deadline "by the end of that local day": 00:00 local the next day, in UTC."""
    return local(y, m, d) + timedelta(days=1)


def department(session, name: str) -> Department:
    return session.exec(select(Department).where(Department.name == name)).one()


def user(session, username: str) -> User:
    return session.exec(select(User).where(User.username == username)).one()


def message(session, *, intent: str, received_at: datetime, topic: str | None = None, dept: str | None = "住建局",
            spam: bool = False, kind: str = "wechat_message", key: str | None = None) -> Message:
    account = session.exec(select(Account).where(Account.name == "示例县发布")).one()
    msg = Message(account_id=account.id, kind=kind, dedupe_key=key or f"m{received_at.timestamp()}-{intent}",
                  sender_id="o-citizen", text="小区门口的路灯坏了一个月没人管", received_at=received_at,
                  intent=intent, topic=topic, spam=spam, needs_answer=intent in ("complaint", "question", "suggestion"),
                  department_id=department(session, dept).id if dept else None)
    session.add(msg)
    session.flush()
    return msg


def events(session, action: str, ticket_id: int | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action)
    if ticket_id is not None:
        query = query.where(AuditEvent.subject_id == ticket_id)
    return list(session.exec(query.order_by(AuditEvent.id)))


@pytest.fixture
def calendar_warnings(monkeypatch):
    monkeypatch.setattr(calendar_module, "_warned_years", set())
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING")
    yield messages
    logger.remove(sink)


# -- deadlines through open_ticket ---------------------------------------------------------------

def test_complaint_on_friday_before_spring_festival_2026(ctx):
    with ctx.session() as s:
        msg = message(s, intent="complaint", topic="城乡建设", received_at=local(2026, 2, 13, 16, 30))
        t = open_ticket(session=s, ctx=ctx, message=msg)
        assert t.department_id == department(s, "住建局").id
        assert (t.intent, t.topic, t.priority, t.state) == ("complaint", "城乡建设", 1, "new")
        assert t.created_at == msg.received_at
        assert t.first_response_due == end_of_local(2026, 2, 14)  # the 调休 Saturday is a working day
        assert t.resolution_due == end_of_local(2026, 2, 27)  # 14, 24, 25, 26, 27: the break does not count
        assert msg.received_at < t.warn_at < t.resolution_due
        [opened] = events(s, "ticket.opened", t.id)
        assert opened.detail["department_id"] == t.department_id


def test_message_on_tiaoxiu_saturday(ctx):
    with ctx.session() as s:
        msg = message(s, intent="question", topic="教育文体", dept="教育局", received_at=local(2026, 2, 14, 10, 0))
        t = open_ticket(session=s, ctx=ctx, message=msg)
        assert t.priority == 2
        assert t.first_response_due == end_of_local(2026, 2, 24)  # the next working day after the break
        assert t.resolution_due == end_of_local(2026, 2, 28)  # 24, 25, 26, 27 and the 调休 Saturday 28


def test_priority_comes_from_the_config(make_config, open_ctx):
    ctx = open_ctx(make_config({"tickets": {"priority": {"complaint": 1, "question": 3, "suggestion": 2}}}))
    with ctx.session() as s:
        msg = message(s, intent="question", topic="教育文体", dept="教育局", received_at=local(2026, 3, 2, 10, 0))
        assert open_ticket(session=s, ctx=ctx, message=msg).priority == 3


def test_national_day_2026(ctx):
    with ctx.session() as s:
        before = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="complaint", topic="交通运输", dept="交通运输局", received_at=local(2026, 9, 30, 15, 0)))
        assert before.first_response_due == end_of_local(2026, 10, 8)
        assert before.resolution_due == end_of_local(2026, 10, 13)  # 8, 9, 10 (调休 Saturday), 12, 13
        during = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="complaint", topic="环境保护", dept="生态环境局", received_at=local(2026, 10, 3, 11, 0)))
        assert during.first_response_due == end_of_local(2026, 10, 8)
        assert during.resolution_due == end_of_local(2026, 10, 10)  # topic override: 3 working days
        suggestion = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="suggestion", topic="商贸旅游", dept="商务局", received_at=local(2026, 10, 7, 9, 0)))
        assert suggestion.first_response_due == end_of_local(2026, 10, 9)
        assert suggestion.resolution_due == end_of_local(2026, 10, 20)  # 8, 9, 10, 12-16, 19, 20


def test_deadline_in_2027_does_not_crash_and_warns_once(ctx, calendar_warnings):
    with ctx.session() as s:
        first = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="question", received_at=local(2026, 12, 30, 15, 0)))
        # 12-31 is day 1; New Year's Day 2027 is a holiday (rules/holidays.toml); 01-04 .. 01-07 days 2..5.
        assert first.first_response_due == end_of_local(2026, 12, 31)
        assert first.resolution_due == end_of_local(2027, 1, 7)
        second = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="complaint", received_at=local(2026, 12, 31, 9, 0)))
        assert second.resolution_due == end_of_local(2027, 1, 8)
    year_warnings = [w for w in calendar_warnings if "2027" in w]
    assert len(year_warnings) == 1 and "incomplete" in year_warnings[0]


def test_praise_other_and_spam_make_no_ticket(ctx):
    with ctx.session() as s:
        for intent, spam in (("praise", False), ("other", False), ("complaint", True), (None, False)):
            msg = message(s, intent=intent, received_at=local(2026, 3, 2, 9, 0), spam=spam, key=f"{intent}-{spam}")
            assert open_ticket(session=s, ctx=ctx, message=msg) is None
        assert s.exec(select(Ticket)).all() == []


def test_open_ticket_is_idempotent_and_uses_default_desk(ctx):
    with ctx.session() as s:
        msg = message(s, intent="question", dept=None, received_at=local(2026, 3, 2, 9, 0))
        t1 = open_ticket(session=s, ctx=ctx, message=msg)
        t2 = open_ticket(session=s, ctx=ctx, message=msg)
        assert t1.id == t2.id
        assert t1.department_id == department(s, "政务公开办").id
        assert len(s.exec(select(Ticket)).all()) == 1
        assert len(events(s, "ticket.opened")) == 1


def test_open_ticket_after_automatic_answer_counts_it_as_first_response(ctx):
    with ctx.session() as s:
        msg = message(s, intent="question", received_at=local(2026, 3, 2, 9, 0))
        msg.replied_at = local(2026, 3, 2, 9, 1)
        t = open_ticket(session=s, ctx=ctx, message=msg)
        assert t.first_response_at == msg.replied_at and t.state == "new"


# -- warnings and escalation ---------------------------------------------------------------------

def test_warning_then_escalation_once(ctx):
    with ctx.session() as s:
        t = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="complaint", topic="城乡建设", received_at=local(2026, 3, 2, 9, 0)))
    # Monday 09:00: first response due end of Tuesday, resolution end of Monday 03-09, warn at 75 %.
    assert t.first_response_due == end_of_local(2026, 3, 3)
    assert check_deadlines(ctx, now=t.first_response_due - timedelta(seconds=1)) == service.DeadlineCheck([], [])

    result = check_deadlines(ctx, now=t.first_response_due + timedelta(minutes=1))
    assert result.escalated == [t.id] and result.warned == []
    with ctx.session() as s:
        [esc] = events(s, "ticket.escalated", t.id)
        assert esc.actor == "system"
        assert esc.detail["missed"] == "first_response"
        assert esc.detail["notify"] == ["zhujian"]  # the department lead (departments[].lead)
        ticket = s.get(Ticket, t.id)
        assert ticket.escalated_at is not None and ticket.lease_owner is None

    result = check_deadlines(ctx, now=t.warn_at + timedelta(seconds=1))
    assert result.warned == [t.id] and result.escalated == []
    with ctx.session() as s:
        [warn] = events(s, "ticket.warned", t.id)
        assert warn.detail["notify"] == ["zhujian"]  # the department's responders
        assert warn.detail["department"] == "住建局"

    # Past the resolution deadline: already escalated once, nothing more.
    assert check_deadlines(ctx, now=t.resolution_due + timedelta(days=3)) == service.DeadlineCheck([], [])


def test_resolution_overdue_escalates_and_answered_tickets_do_not(ctx):
    with ctx.session() as s:
        open_t = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="question", received_at=local(2026, 3, 2, 9, 0), key="a"))
        done = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="question", received_at=local(2026, 3, 2, 9, 0), key="b"))
        open_t.first_response_at = done.first_response_at = local(2026, 3, 2, 10, 0)
        done.state, done.answered_at = "answered", local(2026, 3, 2, 10, 0)
        nolead = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="question", dept="教育局", received_at=local(2026, 3, 2, 9, 0), key="c"))
        nolead.first_response_at = local(2026, 3, 2, 10, 0)
    result = check_deadlines(ctx, now=open_t.resolution_due + timedelta(hours=1))
    assert sorted(result.escalated) == sorted([open_t.id, nolead.id])
    assert sorted(result.warned) == sorted([open_t.id, nolead.id])
    with ctx.session() as s:
        assert events(s, "ticket.escalated", open_t.id)[0].detail["missed"] == "resolution"
        assert events(s, "ticket.escalated", nolead.id)[0].detail["notify"] == []  # 教育局 has no lead
        assert events(s, "ticket.escalated", done.id) == []
        assert events(s, "ticket.warned", done.id) == []


def test_a_ticket_leased_by_another_worker_is_left_alone(ctx):
    with ctx.session() as s:
        t = open_ticket(session=s, ctx=ctx, message=message(s, intent="question", received_at=local(2026, 3, 2, 9, 0)))
        now = t.resolution_due + timedelta(hours=1)
        t.lease_owner, t.lease_until = "other-host:1", now + timedelta(minutes=1)
    assert check_deadlines(ctx, now=now) == service.DeadlineCheck([], [])
    assert check_deadlines(ctx, now=now + timedelta(minutes=2)).escalated == [t.id]


def test_many_tickets_in_several_batches(make_config, open_ctx):
    ctx = open_ctx(make_config({"scheduler": {"batch_size": 2}}))
    with ctx.session() as s:
        ids = [open_ticket(session=s, ctx=ctx, message=message(
            s, intent="question", received_at=local(2026, 3, 2, 9, 0), key=f"k{i}")).id for i in range(5)]
    result = check_deadlines(ctx, now=local(2026, 3, 20))
    assert sorted(result.escalated) == ids and sorted(result.warned) == ids


# -- handling ------------------------------------------------------------------------------------

@pytest.fixture
def ticket_id(ctx) -> int:
    with ctx.session() as s:
        return open_ticket(session=s, ctx=ctx, message=message(
            s, intent="complaint", topic="城乡建设", received_at=local(2026, 3, 2, 9, 0))).id


def test_acknowledge(ctx, ticket_id):
    with ctx.session() as s:
        with pytest.raises(PermissionDenied, match="住建局"):
            service.acknowledge(session=s, ticket_id=ticket_id, user=user(s, "gongkai"))
        t = service.acknowledge(session=s, ticket_id=ticket_id, user=user(s, "zhujian"))
        assert t.state == "acknowledged" and t.assignee_id == user(s, "zhujian").id
        assert events(s, "ticket.acknowledged", ticket_id)[0].actor == "zhujian"
        with pytest.raises(InvalidState, match="already acknowledged"):
            service.acknowledge(session=s, ticket_id=ticket_id, user=user(s, "zhujian"))


def test_reassign_with_reason_is_audited_and_noted(ctx, ticket_id):
    with ctx.session() as s:
        zhujian = user(s, "zhujian")
        service.acknowledge(session=s, ticket_id=ticket_id, user=zhujian)
        with pytest.raises(TicketError, match="reason"):
            service.reassign(session=s, ticket_id=ticket_id, department="生态环境局", reason=" ", user=zhujian)
        with pytest.raises(NotFound, match="没有这个局"):
            service.reassign(session=s, ticket_id=ticket_id, department="没有这个局", reason="x", user=zhujian)
        with pytest.raises(InvalidState, match="already belongs"):
            service.reassign(session=s, ticket_id=ticket_id, department="住建局", reason="x", user=zhujian)
        t = service.reassign(session=s, ticket_id=ticket_id, department="生态环境局", reason="属于噪声污染", user=zhujian)
        assert t.department_id == department(s, "生态环境局").id
        assert (t.state, t.assignee_id) == ("new", None)
        [ev] = events(s, "ticket.reassigned", ticket_id)
        assert ev.actor == "zhujian"
        assert ev.detail == {"from_department": "住建局", "to_department": "生态环境局", "reason": "属于噪声污染"}
        [note] = service.notes(session=s, ticket_id=ticket_id)
        assert "住建局 → 生态环境局" in note.text and "属于噪声污染" in note.text and note.author_id is None
        # The old department no longer handles it.
        with pytest.raises(PermissionDenied):
            service.add_note(session=s, ticket_id=ticket_id, user=zhujian, text="还在吗")


def test_reassigned_ticket_warns_and_escalates_in_the_new_department(ctx, ticket_id):
    with ctx.session() as s:
        t = s.get(Ticket, ticket_id)
    check_deadlines(ctx, now=t.resolution_due + timedelta(hours=1))
    with ctx.session() as s:
        service.reassign(session=s, ticket_id=ticket_id, department="政务公开办", reason="综合受理", user=user(s, "admin"))
    assert check_deadlines(ctx, now=t.resolution_due + timedelta(hours=2)).escalated == [ticket_id]
    with ctx.session() as s:
        assert [e.detail["notify"] for e in events(s, "ticket.escalated", ticket_id)] == [["zhujian"], ["gongkai"]]


def test_notes(ctx, ticket_id):
    with ctx.session() as s:
        with pytest.raises(TicketError, match="text"):
            service.add_note(session=s, ticket_id=ticket_id, user=user(s, "zhujian"), text="  ")
        note = service.add_note(session=s, ticket_id=ticket_id, user=user(s, "zhujian"), text="已电话联系物业")
        assert note.author_id == user(s, "zhujian").id
        [ev] = events(s, "ticket.note_added", ticket_id)
        assert ev.detail == {"note_id": note.id} and ev.actor == "zhujian"


@pytest.mark.parametrize("reason", ["spam", "duplicate", "no_answer_needed", "resolved"])
def test_close_with_reason(ctx, ticket_id, reason):
    with ctx.session() as s:
        t = service.close(session=s, ticket_id=ticket_id, reason=reason, user=user(s, "zhujian"), note="见12号工单")
        assert (t.state, t.close_reason) == ("closed", reason) and t.closed_at is not None
        [ev] = events(s, "ticket.closed", ticket_id)
        assert ev.detail == {"reason": reason, "note": "见12号工单"}
        assert service.notes(session=s, ticket_id=ticket_id)[0].text == "见12号工单"
        assert s.get(Message, t.message_id).spam == (reason == "spam")
        with pytest.raises(InvalidState, match="closed"):
            service.close(session=s, ticket_id=ticket_id, reason="resolved", user=user(s, "zhujian"))
        with pytest.raises(InvalidState, match="closed"):
            service.reassign(session=s, ticket_id=ticket_id, department="教育局", reason="x", user=user(s, "admin"))


def test_close_with_unknown_reason(ctx, ticket_id):
    with ctx.session() as s, pytest.raises(TicketError, match="no_answer_needed"):
        service.close(session=s, ticket_id=ticket_id, reason="boring", user=user(s, "zhujian"))


def test_closed_ticket_is_never_escalated(ctx, ticket_id):
    with ctx.session() as s:
        t = service.close(session=s, ticket_id=ticket_id, reason="duplicate", user=user(s, "zhujian"))
    assert check_deadlines(ctx, now=t.resolution_due + timedelta(days=1)) == service.DeadlineCheck([], [])


def test_list_tickets_in_deadline_order(ctx):
    with ctx.session() as s:
        late = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="question", received_at=local(2026, 3, 2, 9, 0), key="late"))
        soon = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="suggestion", received_at=local(2026, 3, 4, 9, 0), key="soon"))
        later = open_ticket(session=s, ctx=ctx, message=message(
            s, intent="question", received_at=local(2026, 3, 5, 9, 0), key="later"))
        # First response given: the ticket now works towards its resolution deadline.
        late.first_response_at = local(2026, 3, 2, 10, 0)
        s.flush()
        now = local(2026, 3, 5, 12, 0)
        dept = department(s, "住建局").id
        order = [t.id for t in service.list_tickets(session=s, department_id=dept, now=now)]
        assert order == [soon.id, later.id, late.id]
        assert [t.id for t in service.list_tickets(session=s, overdue=True, now=now)] == []
        now = local(2026, 3, 10, 12, 0)
        assert [t.id for t in service.list_tickets(session=s, overdue=True, now=now)] == [soon.id, later.id, late.id]
        assert service.list_tickets(session=s, department_id=department(s, "教育局").id, now=now) == []
        with pytest.raises(TicketError, match="unknown ticket state"):
            service.list_tickets(session=s, states=("open",))


# -- templates -----------------------------------------------------------------------------------

def test_reply_templates_per_department(ctx):
    with ctx.session() as s:
        zhujian, gongkai = user(s, "zhujian"), user(s, "gongkai")
        dept = department(s, "住建局").id
        tpl = service.create_template(session=s, department_id=dept, name="已转物业", text="您好，已转交物业处理。",
                                      user=zhujian)
        with pytest.raises(InvalidState, match="already has"):
            service.create_template(session=s, department_id=dept, name="已转物业", text="x", user=zhujian)
        with pytest.raises(PermissionDenied):
            service.create_template(session=s, department_id=dept, name="x", text="y", user=gongkai)
        with pytest.raises(TicketError, match="text"):
            service.create_template(session=s, department_id=dept, name="空", text=" ", user=zhujian)
        service.update_template(session=s, template_id=tpl.id, text="您好，已转交物业，三日内答复。", user=zhujian)
        assert [t.text for t in service.list_templates(session=s, department_id=dept)] == ["您好，已转交物业，三日内答复。"]
        with pytest.raises(PermissionDenied):
            service.delete_template(session=s, template_id=tpl.id, user=gongkai)
        service.delete_template(session=s, template_id=tpl.id, user=zhujian)
        assert service.list_templates(session=s, department_id=dept) == []
        assert [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.subject_type == "reply_template")
                                         .order_by(AuditEvent.id))] == [
            "template.created", "template.updated", "template.deleted"]
        with pytest.raises(NotFound):
            service.get_template(session=s, template_id=tpl.id)


def test_inactive_user_cannot_handle(ctx, ticket_id):
    with ctx.session() as s:
        zhujian = user(s, "zhujian")
        zhujian.active = False
        with pytest.raises(PermissionDenied):
            service.add_note(session=s, ticket_id=ticket_id, user=zhujian, text="x")
        assert s.exec(select(TicketNote)).all() == []


# -- several workers on one database -------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """None for the test's own SQLite file, or a fresh migrated PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_database")


def shared_config(make_config, open_ctx, database_url: str | None, overrides: dict | None = None,
                  emulator_url: str | None = None):
    """A seeded database that several worker contexts can open (SQLite file or PostgreSQL)."""
    overrides = {**(overrides or {}), **({"database": {"url": database_url}} if database_url else {})}
    config = make_config(overrides, emulator_url=emulator_url)
    if database_url is None:
        open_ctx(config)
    else:
        ctx = Context.open(config)
        with ctx.session() as s:
            sync_from_config(session=s, config=config)
        ctx.close()
    return config


def test_workers_sharing_a_database_warn_and_escalate_each_ticket_once(make_config, open_ctx, database_url):
    config = shared_config(make_config, open_ctx, database_url, {"scheduler": {"batch_size": 3}})
    workers = [Context.open(config, check_schema=False) for _ in range(3)]
    for i, w in enumerate(workers):
        w.worker_id = f"worker-{i}"
    try:
        with workers[0].session() as s:
            ids = [open_ticket(session=s, ctx=workers[0], message=message(
                s, intent="question", received_at=local(2026, 3, 2, 9, 0), key=f"w{i}")).id for i in range(12)]
        results: list[service.DeadlineCheck] = []
        start = threading.Barrier(len(workers))

        def run(w):
            start.wait()
            results.append(check_deadlines(w, now=local(2026, 3, 20)))

        threads = [threading.Thread(target=run, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(i for r in results for i in r.escalated) == ids
        assert sorted(i for r in results for i in r.warned) == ids
        with workers[0].session() as s:
            assert len(events(s, "ticket.escalated")) == len(events(s, "ticket.warned")) == 12
    finally:
        for w in workers:
            w.close()
