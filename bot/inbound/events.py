"""System events (系统事件): what WeChat reports on the callback URL that no citizen wrote.

PUBLISHJOBFINISH (a freepublish job ended), MASSSENDJOBFINISH and TEMPLATESENDJOBFINISH (a send
job ended), LOCATION (a follower's position, reported automatically) and the card events arrive
on the same URL as citizen messages. They are handled by what they report and stored in their own
table (SystemEvent), never as messages: no triage, no ticket, no count in any report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from bot.models import SystemEvent
from bot.publishing.outcome import JobOutcome, settle_publish_job

PUBLISH_JOB_FINISH = "publishjobfinish"
# Event names, lower case (Message_Management/Receiving_event_pushes, Publish/Callback_on_finish,
# Batch_Sends_and_Originality_Checks, Template_Message_Interface, Cards_and_Offer/Coupons-Card_event_push).
SYSTEM_EVENTS = frozenset({
    PUBLISH_JOB_FINISH, "masssendjobfinish", "templatesendjobfinish", "location",
    "card_pass_check", "card_not_pass_check", "user_get_card", "user_gifting_card", "user_del_card",
    "user_consume_card", "user_pay_from_pay_cell", "user_view_card", "user_enter_session_from_card",
    "update_member_card", "card_sku_remind", "card_pay_order", "submit_membercard_user_info",
    "qualification_verify_success", "qualification_verify_fail", "naming_verify_success", "naming_verify_fail",
    "annual_renew", "verify_expired",
})


def is_system_event(msg_type: str, event: str | None) -> bool:
    """Whether a push is a system event (not a citizen's message or action)."""
    return (msg_type or "").lower() == "event" and (event or "").lower() in SYSTEM_EVENTS


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    return value.strip() if isinstance(value, str) else ""


def _list(value: Any) -> list:
    return value if isinstance(value, list) else [] if value in (None, "") else [value]


def publish_outcome(doc: dict[str, Any]) -> JobOutcome:
    """The job outcome a PUBLISHJOBFINISH push reports (PublishEventInfo)."""
    info = doc.get("PublishEventInfo") if isinstance(doc.get("PublishEventInfo"), dict) else {}
    detail = info.get("article_detail") if isinstance(info.get("article_detail"), dict) else {}
    items = [i for i in _list(detail.get("item")) if isinstance(i, dict)]
    url = _text(items[0], "article_url") if items else ""
    status = _text(info, "publish_status")
    fail_idx = tuple(int(i) for i in _list(info.get("fail_idx")) if isinstance(i, str) and i.strip().isdigit())
    return JobOutcome(publish_id=_text(info, "publish_id"), status=int(status) if status.lstrip("-").isdigit() else -1,
                      article_id=_text(info, "article_id"), url=url or None, fail_idx=fail_idx)


def job_id(event: str, doc: dict[str, Any]) -> str:
    """The job a job-finished event reports ("" for other events): jobs finishing in one second stay apart."""
    if event == PUBLISH_JOB_FINISH:
        info = doc.get("PublishEventInfo")
        return _text(info, "publish_id") if isinstance(info, dict) else ""
    if event in ("masssendjobfinish", "templatesendjobfinish"):
        return _text(doc, "MsgID")
    return ""


def _describe(event: str, doc: dict[str, Any]) -> tuple[str, str]:
    """(subject, outcome) of an event handled by recording it."""
    if event in ("masssendjobfinish", "templatesendjobfinish"):
        status = _text(doc, "Status")
        sent = f", sent {_text(doc, 'SentCount')} of {_text(doc, 'TotalCount')}" if doc.get("TotalCount") else ""
        return _text(doc, "MsgID"), f"send job ended: {status}{sent}"
    if event == "location":
        return "", "location reported by the follower's client (not a message)"
    return _text(doc, "CardId") or _text(doc, "UserCardCode"), f"{event} recorded"


def handle_system_event(session: Session, *, account_id: int, doc: dict[str, Any], raw: str) -> SystemEvent:
    """Store a system event once and act on it; a redelivery finds the stored one and does nothing again."""
    event = _text(doc, "Event").lower()
    create_time = _text(doc, "CreateTime")
    received_at = datetime.fromtimestamp(int(create_time), UTC) if create_time.isdigit() else datetime.now(UTC)
    outcome = publish_outcome(doc) if event == PUBLISH_JOB_FINISH else None
    subject = outcome.publish_id if outcome else ""
    # WeChat deduplicates events by FromUserName + CreateTime; the subject keeps two jobs of one second apart.
    key = f"{event}:{_text(doc, 'FromUserName')}:{create_time}:{subject}"[:200]
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[session.get_bind().dialect.name]
    new_id = session.execute(insert(SystemEvent).values(
        account_id=account_id, event=event[:50], dedupe_key=key, subject=subject[:200], outcome="", raw=raw,
        received_at=received_at, stored_at=datetime.now(UTC),
    ).on_conflict_do_nothing(index_elements=["account_id", "dedupe_key"]).returning(SystemEvent.id)).scalar_one_or_none()
    if new_id is None:
        return session.execute(select(SystemEvent).where(SystemEvent.account_id == account_id,
                                                         SystemEvent.dedupe_key == key)).scalar_one()
    row = session.get(SystemEvent, new_id)
    if outcome is not None:
        row.outcome = settle_publish_job(session, account_id=account_id, outcome=outcome, at=received_at)
    else:
        subject, row.outcome = _describe(event, doc)
        row.subject = subject[:200]
    session.add(row)
    return row
