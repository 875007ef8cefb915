"""The channels that tell people things: e-mail (SMTP) and the WeCom group robot (企业微信群机器人).

Used by the daily digest (bot.oversight.delivery) and the notification outbox (bot.outbox.sending:
ticket warnings and escalations, publishing notices).

Both are written against the standard library and httpx rather than `apprise`: apprise's WeCom bot
(`wecombot://KEY`) always posts to qyapi.weixin.qq.com, sends `text` rather than `markdown`, and
judges success by the HTTP status although the robot reports errors as HTTP 200 with an `errcode`;
its e-mail plugin would add a dependency for what smtplib does in a few lines. So the configured
webhook URL and SMTP host are used as given, which also lets tests run real servers on loopback.

A failed attempt raises DeliveryError with the reason in Chinese; the callers write it down and try
again after retry_after.
"""

from __future__ import annotations

import html as html_escape
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import httpx

from bot.config import Config, SmtpConfig, WecomConfig
from bot.errors import GovbotError
from bot.retry import backoff

# The robot refuses a markdown content over 4096 bytes (UTF-8).
WECOM_MAX_BYTES = 4096
RETRY_FIRST = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=1)


class DeliveryError(GovbotError):
    """A channel did not take the message; says which channel and why."""


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


def retry_after(attempts: int) -> timedelta:
    """Pause before the next attempt: 5 minutes, doubling, at most an hour (bot.retry.backoff)."""
    return timedelta(seconds=backoff(attempts, base=RETRY_FIRST.total_seconds(), cap=RETRY_MAX.total_seconds()))


@dataclass(frozen=True)
class Text:
    """One thing to tell, in each channel's form."""

    subject: str
    body: str  # plain text (e-mail)
    markdown: str  # WeCom group message


def channels(config: Config) -> tuple[str, ...]:
    """The configured channels: e-mail needs delivery.smtp.host, WeCom delivery.wecom.webhook_url."""
    out = []
    if config.delivery.smtp.host:
        out.append("email")
    if config.delivery.wecom.webhook_url:
        out.append("wecom")
    return tuple(out)


_MD_SAFE = str.maketrans({"[": "［", "]": "］", "<": "＜", ">": "＞", "*": "＊", "`": "｀", "_": "＿", "#": "＃"})


def md_text(text: str) -> str:
    """Text shown as itself in the robot's markdown (its markup characters in full-width forms)."""
    return text.translate(_MD_SAFE)


def email_html(text: str) -> str:
    """The plain text as a small HTML part; the console link stays clickable."""
    lines = []
    for line in text.split("\n"):
        escaped = html_escape.escape(line)
        if "：http" in line:
            label, _, url = line.partition("：")
            escaped = f'{html_escape.escape(label)}：<a href="{html_escape.escape(url)}">{html_escape.escape(url)}</a>'
        lines.append(f"<p>{escaped}</p>" if line else "")
    return "<html><body>" + "\n".join(lines) + "</body></html>"
