"""Corrections of intent and topic: stored with who made it, applied to the message, refused when not allowed."""

import pytest
from sqlmodel import select

from bot.errors import GovbotError, PermissionDenied
from bot.models import AuditEvent, Correction, Message, User
from bot.triage.corrections import list_corrections, record_correction


def create_user(*, session, username, roles, department_id):
    user = User(username=username, roles=",".join(roles), department_id=department_id)
    session.add(user)
    session.flush()
    return user


@pytest.fixture
def message(ctx):
    from bot.clock import utcnow
    from bot.models import Account, Department

    with ctx.session() as s:
        dept = s.exec(select(Department)).first()
        acc = s.exec(select(Account)).first()
        m = Message(account_id=acc.id, kind="wechat_message", dedupe_key="c-1", text="路灯坏了三个月",
                    received_at=utcnow(), intent="question", topic="城乡建设", department_id=dept.id)
        s.add(m)
        s.commit()
        return m.id, dept.id


def test_a_responder_corrects_intent_and_the_row_keeps_both(ctx, message):
    message_id, dept_id = message
    with ctx.session() as s:
        user = create_user(session=s, username="r1", roles=["responder"], department_id=dept_id)
        row = record_correction(session=s, message_id=message_id, user=user, intent="complaint")
        s.commit()
        assert (row.old_intent, row.intent, row.old_topic, row.topic) == ("question", "complaint", "城乡建设", "城乡建设")
        assert s.get(Message, message_id).intent == "complaint"
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "message.corrected")).one().subject_id == message_id
        assert [c.intent for c, _m in list_corrections(session=s)] == ["complaint"]


def test_other_departments_and_bad_values_are_refused(ctx, message):
    message_id, dept_id = message
    with ctx.session() as s:
        outsider = create_user(session=s, username="r2", roles=["responder"], department_id=None)
        insider = create_user(session=s, username="r3", roles=["responder"], department_id=dept_id)
        with pytest.raises(PermissionDenied):
            record_correction(session=s, message_id=message_id, user=outsider, intent="complaint")
        with pytest.raises(GovbotError):
            record_correction(session=s, message_id=message_id, user=insider, intent="anger")
        with pytest.raises(GovbotError):
            record_correction(session=s, message_id=message_id, user=insider, topic="火星")
        with pytest.raises(GovbotError):
            record_correction(session=s, message_id=message_id, user=insider, intent="question")
        assert s.exec(select(Correction)).all() == []
