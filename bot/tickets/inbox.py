"""The responders' inbox (工单收件箱): tickets found by words, filtered, sorted and paged, and
near-duplicates grouped so that one answer can go to all of them.

Pure query building and grouping; the console turns a form into `InboxQuery` and shows the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from bot.models import Message, Ticket
from bot.search import matches, query_words, search_text
from bot.tickets.service import OPEN_STATES, next_due

STATE_FILTERS = {"open": OPEN_STATES, "new": ("new",), "acknowledged": ("acknowledged",),
                 "answered": ("answered",), "closed": ("closed",), "all": None}
DUE_FILTERS = ("overdue", "24h", "3d")
SORTS = ("due", "newest", "oldest", "priority")
PER_PAGE = 30
# Near-duplicates (相似留言): same account, at least this share of words in common, within this time.
DUPLICATE_SIMILARITY = 0.6
DUPLICATE_WINDOW = timedelta(days=3)


@dataclass(frozen=True)
class InboxQuery:
    department_id: int | None = None  # None: every department (admins only; the caller decides)
    q: str = ""
    account_id: int | None = None
    intent: str = ""
    topic: str = ""
    state: str = "open"
    due: str = ""
    assignee_id: int | None = None  # 0: nobody yet
    sort: str = "due"
    page: int = 1


@dataclass
class InboxPage:
    rows: list[tuple[Ticket, Message]]
    total: int
    page: int
    pages: int
    words: list[str] = field(default_factory=list)


def _conditions(session: Session, query: InboxQuery, now: datetime) -> list:
    cond = []
    if query.department_id is not None:
        cond.append(Ticket.department_id == query.department_id)
    states = STATE_FILTERS.get(query.state, OPEN_STATES)
    if states is not None:
        cond.append(Ticket.state.in_(states))
    if query.account_id:
        cond.append(Message.account_id == query.account_id)
    if query.intent:
        cond.append(Ticket.intent == query.intent)
    if query.topic:
        cond.append(Ticket.topic == query.topic)
    if query.assignee_id is not None:
        cond.append(Ticket.assignee_id.is_(None) if query.assignee_id == 0 else Ticket.assignee_id == query.assignee_id)
    if query.due in DUE_FILTERS:
        horizon = {"overdue": now, "24h": now + timedelta(hours=24), "3d": now + timedelta(days=3)}[query.due]
        cond += [Ticket.state.in_(OPEN_STATES), next_due() <= horizon]
    words = matches(session.get_bind().dialect.name, query.q)
    if words is not None:
        cond.append(words)
    return cond


def search(*, session: Session, query: InboxQuery, now: datetime) -> InboxPage:
    cond = _conditions(session, query, now)
    base = select(Ticket, Message).join(Message, Message.id == Ticket.message_id).where(*cond)
    total = session.exec(select(func.count()).select_from(Ticket).join(Message, Message.id == Ticket.message_id)
                         .where(*cond)).one()
    order = {"due": (next_due(), Ticket.priority, Ticket.id), "newest": (Message.received_at.desc(), Ticket.id.desc()),
             "oldest": (Message.received_at, Ticket.id), "priority": (Ticket.priority, next_due(), Ticket.id)}
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(1, query.page), pages)
    rows = list(session.exec(base.order_by(*order.get(query.sort, order["due"]))
                             .offset((page - 1) * PER_PAGE).limit(PER_PAGE)).all())
    return InboxPage(rows=[(t, m) for t, m in rows], total=total, page=page, pages=pages,
                     words=query_words(query.q))


# -- near-duplicates (相似留言) --------------------------------------------------------------------


def similarity(a: set[str], b: set[str]) -> float:
    """Share of words in common (Jaccard) of two messages' word sets."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def words_of(message: Message) -> set[str]:
    return set((message.search_text or search_text(message.text)).split())


def duplicate_groups(messages: list[Message], *, threshold: float = DUPLICATE_SIMILARITY,
                     window: timedelta = DUPLICATE_WINDOW) -> list[list[Message]]:
    """Messages grouped as near-duplicates: same account, similar words, received close together.

    Linked greedily (a message joins the group of any earlier similar one), oldest first; groups of
    one are left out.
    """
    ordered = sorted(messages, key=lambda m: (m.received_at, m.id))
    words = {m.id: words_of(m) for m in ordered}
    group_of: dict[int, int] = {}
    groups: dict[int, list[Message]] = {}
    for i, m in enumerate(ordered):
        for earlier in reversed(ordered[:i]):
            if m.received_at - earlier.received_at > window:
                break
            if earlier.account_id == m.account_id and similarity(words[m.id], words[earlier.id]) >= threshold:
                root = group_of[earlier.id]
                group_of[m.id] = root
                groups[root].append(m)
                break
        else:
            group_of[m.id] = m.id
            groups[m.id] = [m]
    return [g for g in groups.values() if len(g) > 1]


def duplicates_of(*, session: Session, ticket: Ticket, message: Message) -> list[tuple[Ticket, Message]]:
    """The open tickets of the same department whose messages are near-duplicates of this one."""
    since, until = message.received_at - DUPLICATE_WINDOW, message.received_at + DUPLICATE_WINDOW
    rows = list(session.exec(
        select(Ticket, Message).join(Message, Message.id == Ticket.message_id)
        .where(Ticket.department_id == ticket.department_id, Ticket.state.in_(OPEN_STATES),
               Message.account_id == message.account_id, Message.received_at >= since,
               Message.received_at <= until).limit(500)).all())
    by_message = {m.id: (t, m) for t, m in rows}
    by_message[message.id] = (ticket, message)
    for group in duplicate_groups([m for _, m in by_message.values()]):
        if any(m.id == message.id for m in group):
            return [by_message[m.id] for m in group if m.id != message.id]
    return []
