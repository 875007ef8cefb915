"""Telling people about posts (通知): the next signer, the author on 退回 and 已发布, the editors and
the department lead when a publication fails.

Each notice is written in the transaction of the event, into the same outbox as ticket warnings
(Notification): one console row per person (shown in the console's 通知 list, written as sent), one
e-mail per person with an address when SMTP is configured, one WeCom group message when the robot
is. The `notifications.send` job delivers e-mail and WeCom rows (bot/tickets/notifications.py).
Composing the texts (`compose`) is pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from bot.clock import utcnow
from bot.config import Config
from bot.models import Account, Notification, Post, Publication, User
from bot.outbox.channels import Text, channels, md_text

KINDS = ("post_waiting", "post_rejected", "post_published", "post_failed")


@dataclass(frozen=True)
class PostFacts:
    post_id: int
    title: str
    link: str
    stage: str = ""  # the stage waiting to be signed
    reason: str = ""  # why it was sent back, or what the platform said
    accounts: tuple[str, ...] = ()  # where it went out, or where it failed


def compose(kind: str, f: PostFacts) -> Text:
    """Pure: subject, e-mail text and WeCom markdown of one post notice."""
    where = "、".join(f.accounts)
    if kind == "post_waiting":
        subject = f"【待审签】《{f.title}》等待{f.stage}"
        lines = [f"稿件《{f.title}》等待您{f.stage}，请核对内容、发布账号和时间后签署或退回。"]
    elif kind == "post_rejected":
        subject = f"【已退回】《{f.title}》"
        lines = [f"您的稿件《{f.title}》被退回修改。", f"退回理由：{f.reason}"]
    elif kind == "post_published":
        subject = f"【已发布】《{f.title}》"
        lines = [f"稿件《{f.title}》已发布到：{where}。"]
    elif kind == "post_failed":
        subject = f"【发布失败】《{f.title}》"
        lines = [f"稿件《{f.title}》在以下账号发布失败：{where}。", f"原因：{f.reason}",
                 "可在控制台“重新发布”（无需重新审签），或改期发布。"]
    else:
        raise ValueError(f"unknown post notice {kind!r}; one of {', '.join(KINDS)}")
    body = "\n".join([*lines, "", f"在控制台查看：{f.link}", "", "（本邮件由政务新媒体平台自动发送，请勿直接回复。）"])
    markdown = "\n".join([f"**{subject}**", *[f"> {md_text(line)}" for line in lines[1:]],
                          f"[在控制台查看]({f.link})"])
    return Text(subject=subject[:200], body=body, markdown=markdown)


def post_link(config: Config, post_id: int) -> str:
    base = (config.web.public_url or f"http://{config.web.host}:{config.web.port}").rstrip("/")
    return f"{base}/posts/{post_id}"


def notify(*, session: Session, config: Config, kind: str, post: Post, people: Iterable[User], stage: str = "",
           reason: str = "", accounts: Iterable[str] = (), now: datetime | None = None) -> list[Notification]:
    """Write the notice's rows: console and e-mail per person, one WeCom group message."""
    now = now or utcnow()
    people = [u for u in {u.id: u for u in people}.values() if u.active]
    if not people:
        return []
    text = compose(kind, PostFacts(post_id=post.id, title=post.title, link=post_link(config, post.id), stage=stage,
                                   reason=reason, accounts=tuple(accounts)))
    rows = [Notification(post_id=post.id, kind=kind, channel="console", recipient=u.username,
                         subject=text.subject, body=text.body, state="sent", sent_at=now, created_at=now,
                         next_attempt_at=now) for u in people]
    configured = channels(config)
    if "email" in configured:
        rows += [Notification(post_id=post.id, kind=kind, channel="email", recipient=u.username,
                              address=u.email.strip(), subject=text.subject, body=text.body, created_at=now,
                              next_attempt_at=now) for u in people if (u.email or "").strip()]
    if "wecom" in configured:
        rows.append(Notification(post_id=post.id, kind=kind, channel="wecom", subject=text.subject,
                                 body=text.markdown, created_at=now, next_attempt_at=now))
    session.add_all(rows)
    return rows


# -- who is told ---------------------------------------------------------------------------------


def next_signers(*, session: Session, role: str, exclude: set[int]) -> list[User]:
    """Everyone who may sign the waiting stage: the role, active, not the author nor an earlier signer."""
    users = session.exec(select(User).where(User.active)).all()
    return [u for u in users if u.has_role(role) and u.id not in exclude]


def waiting(*, session: Session, config: Config, post: Post, stage: str, role: str, exclude: set[str]) -> None:
    """The post waits for `stage`: tell everyone who may sign it (not the authors, not earlier signers)."""
    people = [u for u in next_signers(session=session, role=role, exclude=set()) if u.username not in exclude]
    notify(session=session, config=config, kind="post_waiting", post=post, people=people, stage=stage)


def failure_people(*, session: Session, post: Post, account_ids: Iterable[int]) -> list[User]:
    """The author, the editors and the lead of each failed account's department (部门负责人)."""
    departments = {a.department_id for a in session.exec(select(Account).where(col(Account.id).in_(list(account_ids))))}
    people = [u for u in session.exec(select(User).where(User.active)).all()
              if u.department_id in departments and (u.has_role("editor") or u.department_lead)]
    author = session.get(User, post.author_id)
    return ([author] if author else []) + people


def settled(*, session: Session, config: Config, post: Post, status: str,
            publications: list[Publication] | None = None, account_names: dict[int, str] | None = None) -> None:
    """A post's publications all ended: tell the author where it went out, and who must act where it failed.

    `publications` (the post's, cancelled ones aside) and `account_names` when the caller has them
    already (settling many posts at once)."""
    pubs = publications if publications is not None else session.exec(
        select(Publication).where(Publication.post_id == post.id, Publication.state != "cancelled")).all()
    names = account_names if account_names is not None else {a.id: a.name for a in session.exec(select(Account))}
    done = [names.get(p.account_id, "") for p in pubs if p.state == "published"]
    failed = [p for p in pubs if p.state in ("failed", "missed")]
    if done:
        author = session.get(User, post.author_id)
        notify(session=session, config=config, kind="post_published", post=post, people=[author] if author else [],
               accounts=done)
    if failed:
        from bot.publishing.reasons import explain

        reason = explain(failed[0].last_error or "").text
        notify(session=session, config=config, kind="post_failed", post=post,
               people=failure_people(session=session, post=post, account_ids=[p.account_id for p in failed]),
               reason=reason, accounts=[names.get(p.account_id, "") for p in failed])


# -- the console list ----------------------------------------------------------------------------


def unread_count(*, session: Session, username: str) -> int:
    return session.exec(select(func.count()).select_from(Notification).where(
        Notification.channel == "console", Notification.recipient == username,
        col(Notification.read_at).is_(None))).one()


def console_notices(*, session: Session, username: str, limit: int = 100) -> list[Notification]:
    return list(session.exec(select(Notification).where(Notification.channel == "console",
                                                        Notification.recipient == username)
                             .order_by(col(Notification.created_at).desc(), col(Notification.id).desc()).limit(limit)))


def mark_read(*, session: Session, username: str, notice_id: int | None = None) -> int:
    """Mark one notice (or all) of this user read; returns how many."""
    conditions = [Notification.channel == "console", Notification.recipient == username,
                  col(Notification.read_at).is_(None)]
    if notice_id is not None:
        conditions.append(Notification.id == notice_id)
    return session.execute(update(Notification).where(*conditions).values(read_at=utcnow())
                           .execution_options(synchronize_session=False)).rowcount
