"""Delivering the digest over the channels of bot.outbox.channels.

Every attempt returns a record for DigestRun.deliveries; nothing raises past `deliver`, so a failure
is always written down and the digest job retries it with a growing pause (retry_after).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bot.config import Config
from bot.outbox.channels import (
    DeliveryError,
    PartialDelivery,
    fit_wecom_markdown,
    retry_after,
    send_email,
    send_wecom,
)

if TYPE_CHECKING:
    from bot.oversight.digest import Digest


def console_link(config: Config, digest: Digest) -> str:
    base = (config.web.public_url or f"http://{config.web.host}:{config.web.port}").rstrip("/")
    return f"{base}/digest?day={digest.day.isoformat()}&org={quote(digest.organisation)}"


def deliver(
    config: Config,
    *,
    channel: str,
    digest: Digest,
    markdown: str,
    html: str,
    recipients: tuple[str, ...] | list[str],
    previous: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """One attempt on one channel; returns the record to keep in DigestRun.deliveries[channel]."""
    from bot.oversight.digest import subject

    attempts = int(previous.get("attempts", 0)) + 1
    record: dict[str, Any] = {"attempts": attempts, "at": now.isoformat()}
    try:
        if channel == "email":
            done = list(previous.get("delivered_to", []))
            pending = [r for r in recipients if r not in done]
            try:
                done += send_email(smtp=config.delivery.smtp, recipients=pending, subject=subject(digest),
                                   text=markdown, html=html)
            except PartialDelivery as e:
                record["delivered_to"] = done + e.delivered
                raise
            record["delivered_to"] = done
        elif channel == "wecom":
            content = fit_wecom_markdown(markdown, link=console_link(config, digest))
            send_wecom(wecom=config.delivery.wecom, content=content)
            record["bytes"] = len(content.encode())
            record["truncated"] = content != markdown
        else:
            raise DeliveryError("delivery.unknown_channel", channel=channel)
    except DeliveryError as e:
        record.update(state="failed", error=e.message_zh, next_attempt_at=(now + retry_after(attempts)).isoformat())
        return record
    record.update(state="sent", error=None, next_attempt_at=None)
    return record
