"""Full-text search over citizen messages (留言检索), the same on SQLite and PostgreSQL.

Chinese has no spaces, so a message is cut into words by jieba once, when it is stored
(`Message.search_text`: the words joined by spaces). The database indexes those words:
- SQLite: an FTS5 table over `search_text` kept in step by triggers (migration 0008);
- PostgreSQL: a GIN index on `string_to_array(search_text, ' ')`, searched by array containment.
A query is cut the same way and matches messages that contain every one of its words.
"""

from __future__ import annotations

import re

import jieba
from sqlalchemy import Text, cast, func, literal_column, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import ColumnElement

from bot.models import Message
from bot.triage.rules import normalize

# Objects the migration makes that the models do not declare (compare_metadata must skip them).
UNMODELLED = ("message_fts", "ix_message_search_terms")
_WORD = re.compile(r"[\w\u4e00-\u9fff]")
MAX_QUERY_WORDS = 12


def _words(tokens) -> list[str]:
    seen: dict[str, None] = {}
    for tok in tokens:
        tok = tok.strip()
        if tok and _WORD.search(tok) and '"' not in tok:
            seen.setdefault(tok, None)
    return list(seen)


def search_text(text: str) -> str:
    """What is indexed for a message: its words in search mode (long words and their parts)."""
    return " ".join(_words(jieba.dt.cut_for_search(normalize(text or ""), HMM=False)))


def query_words(query: str) -> list[str]:
    return _words(jieba.dt.cut(normalize(query or ""), HMM=False))[:MAX_QUERY_WORDS]


def unmodelled(name: str | None) -> bool:
    """A search index object of the migration (SQLite's FTS5 table and its shadow tables, the GIN index)."""
    return bool(name) and any(name == n or name.startswith(n + "_") for n in UNMODELLED)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic filter: leave the search index objects (not declared as models) alone."""
    return not unmodelled(name)


def matches(dialect: str, query: str) -> ColumnElement | None:
    """A WHERE condition on Message for messages containing every word of `query`; None for an empty query."""
    words = query_words(query)
    if not words:
        return None
    if dialect == "postgresql":
        # The same expression as the index (a literal separator, text[] on both sides), so the index is used.
        terms = func.string_to_array(Message.search_text, literal_column("' '"), type_=postgresql.ARRAY(Text))
        return terms.op("@>")(cast(postgresql.array(words), postgresql.ARRAY(Text)))
    expr = " AND ".join(f'"{w}"' for w in words)
    ids = select(text("rowid")).select_from(text("message_fts")).where(
        text("message_fts MATCH :fts").bindparams(fts=expr))
    return Message.id.in_(ids)
