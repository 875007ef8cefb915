"""Delivering the digest: e-mail (SMTP) and the WeCom group robot (企业微信群机器人).

Both are written against the standard library and httpx rather than `apprise`: apprise's WeCom bot
(`wecombot://KEY`) always posts to qyapi.weixin.qq.com, sends `text` rather than `markdown`, and
judges success by the HTTP status although the robot reports errors as HTTP 200 with an `errcode`;
its e-mail plugin would add a dependency for what smtplib does in a few lines. So the configured
webhook URL and SMTP host are used as given, which also lets tests run real servers on loopback.

Every attempt returns a record for DigestRun.deliveries; nothing raises past `deliver`, so a failure
is always written down and the digest job retries it with a growing pause.
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from bot.config import Config, SmtpConfig, WecomConfig
from bot.errors import GovbotError

if TYPE_CHECKING:
    from bot.oversight.digest import Digest

# The robot refuses a markdown content over 4096 bytes (UTF-8).
WECOM_MAX_BYTES = 4096
RETRY_FIRST = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=1)


class DeliveryError(GovbotError):
    """A channel did not take the digest; says which channel and why."""


class PartialDelivery(DeliveryError):
    """Some recipients took the message; the others are retried."""

    def __init__(self, code: str, delivered: list[str], **params: str):
        super().__init__(code, **params)
        self.delivered = delivered


def send_email(*, smtp: SmtpConfig, recipients: list[str], subject: str, text: str, html: str) -> list[str]:
    """Send one multipart/alternative message (plain text + HTML); returns the recipients that took it."""
    if not smtp.host:
        raise DeliveryError("delivery.smtp_unset")
    if not recipients:
        raise DeliveryError("delivery.no_recipients")
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = smtp.from_addr
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=smtp.from_addr.rpartition("@")[2] or None)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    where = f"{smtp.host}:{smtp.port}"
    try:
        if smtp.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        with client:
            if smtp.starttls and not smtp.ssl:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password)
            refused = client.send_message(msg, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as e:
        raise DeliveryError("delivery.all_refused", where=where, refusals=_refusals(e.recipients)) from e
    except (smtplib.SMTPException, OSError) as e:
        raise DeliveryError("delivery.email_failed", where=where, reason=f"{type(e).__name__}: {e}") from e
    if refused:
        delivered = [r for r in recipients if r not in refused]
        raise PartialDelivery("delivery.partial", delivered, where=where, refusals=_refusals(refused))
    return list(recipients)


def _refusals(refused: dict[str, Any]) -> str:
    return "; ".join(f"{addr} ({code} {reason.decode(errors='replace') if isinstance(reason, bytes) else reason})"
                     for addr, (code, reason) in refused.items())


def fit_wecom_markdown(markdown: str, *, link: str, limit: int = WECOM_MAX_BYTES) -> str:
    """Pure: the markdown cut at a line boundary to fit `limit` UTF-8 bytes, ending with a "…" line
    that says where the full digest is. Unchanged when it already fits."""
    if len(markdown.encode()) <= limit:
        return markdown
    tail = f"\n…\n> 内容过长，已截断。完整清单请在控制台查看：[{link}]({link})"
    budget = limit - len(tail.encode())
    if budget <= 0:
        raise ValueError(f"the link is too long for a {limit}-byte message")
    kept: list[str] = []
    used = 0
    for line in markdown.rstrip("\n").split("\n"):
        size = len(line.encode()) + (1 if kept else 0)
        if used + size > budget:
            if not kept:
                # One line longer than the budget: cut it by characters, never inside a character.
                cut = line.encode()[:budget].decode(errors="ignore")
                kept.append(cut)
            break
        kept.append(line)
        used += size
    return "\n".join(kept) + tail


def send_wecom(*, wecom: WecomConfig, content: str) -> dict[str, Any]:
    """POST a markdown message to the group robot; the robot says errcode 0 when it took it."""
    if not wecom.webhook_url:
        raise DeliveryError("delivery.wecom_unset")
    body = {"msgtype": "markdown", "markdown": {"content": content}}
    try:
        response = httpx.post(wecom.webhook_url, json=body, timeout=wecom.timeout_s)
    except httpx.HTTPError as e:
        raise DeliveryError("delivery.wecom_failed", reason=f"{type(e).__name__}: {e}") from e
    if response.status_code != 200:
        raise DeliveryError("delivery.wecom_failed", reason=f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        answer = response.json()
    except ValueError as e:
        raise DeliveryError("delivery.wecom_failed", reason=f"not a JSON answer: {response.text[:200]!r}") from e
    if not isinstance(answer, dict) or answer.get("errcode") != 0:
        errcode = answer.get("errcode") if isinstance(answer, dict) else None
        errmsg = answer.get("errmsg", "") if isinstance(answer, dict) else answer
        raise DeliveryError("delivery.wecom_refused", errcode=errcode, errmsg=errmsg)
    return answer


def console_link(config: Config, digest: Digest) -> str:
    base = (config.web.public_url or f"http://{config.web.host}:{config.web.port}").rstrip("/")
    return f"{base}/digest?day={digest.day.isoformat()}&org={quote(digest.organisation)}"


def retry_after(attempts: int) -> timedelta:
    """Pause before the next attempt: 5 minutes, doubling, at most an hour."""
    return min(RETRY_FIRST * (2 ** max(0, attempts - 1)), RETRY_MAX)


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
