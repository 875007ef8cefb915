"""Corrections of a message's intent or topic by the people who read it (纠正分类).

The message takes the corrected values at once; each correction is also kept as a row (who, when,
from what to what) so that `govbot rules learn` can learn from them and the rules page can show
where the rules and the responders disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, select

from bot import audit
from bot.errors import GovbotError, NotFound, PermissionDenied
from bot.models import Correction, Message, User
from bot.permissions import allowed
from bot.triage.learn import Labelled
from bot.triage.rules import INTENTS, TOPICS


def can_correct(user: User, message: Message) -> bool:
    """Admins correct any message; responders and leads the messages of their own department (bot.permissions)."""
    return allowed(user, "messages.correct", message.department_id)


def record_correction(*, session: Session, message_id: int, user: User, intent: str | None = None,
                      topic: str | None = None) -> Correction:
    """Set the message's intent and/or topic as `user` says and keep the correction; None keeps a value."""
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound("message.not_found", message_id=message_id)
    if not can_correct(user, message):
        raise PermissionDenied("correction.denied", user=user.username, message_id=message_id)
    if intent is not None and intent not in INTENTS:
        raise GovbotError("correction.unknown_intent", intent=intent, known=", ".join(INTENTS))
    if topic is not None and topic not in TOPICS:
        raise GovbotError("correction.unknown_topic", topic=topic, known=", ".join(TOPICS))
    new_intent = message.intent if intent is None else intent
    new_topic = message.topic if topic is None else topic
    if (new_intent, new_topic) == (message.intent, message.topic):
        raise GovbotError("correction.no_change")
    row = Correction(message_id=message.id, user_id=user.id, old_intent=message.intent, old_topic=message.topic,
                     intent=new_intent, topic=new_topic)
    session.add(row)
    message.intent, message.topic = new_intent, new_topic
    session.add(message)
    audit.record(session=session, actor=user.username, action="message.corrected", subject_type="message",
                 subject_id=message.id, old_intent=row.old_intent, old_topic=row.old_topic, intent=new_intent,
                 topic=new_topic)
    session.flush()
    return row


def list_corrections(*, session: Session, since: datetime | None = None) -> Sequence[tuple[Correction, Message]]:
    """Every correction (oldest first) with its message: the input of `govbot rules learn`."""
    q = select(Correction, Message).join(Message, Message.id == Correction.message_id).order_by(Correction.id)
    if since is not None:
        q = q.where(Correction.created_at >= since)
    return list(session.exec(q))


def corrected_messages(*, session: Session, since: datetime | None = None) -> list[Labelled]:
    """Each corrected message once, labelled with what the responders changed (the latest change of
    intent, of topic): labelled data for learning. A value nobody changed is not taken as confirmed."""
    labels: dict[int, dict] = {}
    for correction, message in list_corrections(session=session, since=since):
        entry = labels.setdefault(message.id, {"text": message.text or ""})
        if correction.intent != correction.old_intent:
            entry["intent"] = correction.intent
        if correction.topic != correction.old_topic:
            entry["topic"] = correction.topic
    return [Labelled(e["text"], e.get("intent"), e.get("topic")) for e in labels.values()]
