"""Audit trail: every action on a post, ticket or reply is an event (who, what, when, which version)."""

from typing import Any

from sqlmodel import Session

from bot.models import AuditEvent


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: int | None,
    version: int | None = None,
    content_hash: str | None = None,
    **detail: Any,
) -> AuditEvent:
    """Add an audit event to the session; it commits with the action it records."""
    event = AuditEvent(
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        version=version,
        content_hash=content_hash,
        detail=detail,
    )
    session.add(event)
    return event
