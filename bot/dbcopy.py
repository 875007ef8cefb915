"""`govbot db copy`: move every row from one database to another (SQLite -> PostgreSQL when scaling out).

The target is migrated to the code's revision first and must hold no rows. Tables are copied parents
before children (foreign-key order), in batches, inside one transaction on the target: a failed copy
leaves the target empty, so it can simply be run again. Afterwards PostgreSQL's id sequences are moved
past the copied ids, or the next insert would collide with a copied row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Table, func, inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

import bot.models  # noqa: F401  (registers every table on SQLModel.metadata)
from bot import db
from bot.errors import GovbotError
from bot.search import unmodelled

ALEMBIC_TABLE = "alembic_version"


class CopyError(GovbotError):
    """The copy cannot start or failed; says why, with passwords taken out of URLs."""


def tables() -> list[Table]:
    """Every govbot table, parents before children."""
    return list(SQLModel.metadata.sorted_tables)


@dataclass(frozen=True)
class CopyPlan:
    source_url: str
    target_url: str
    rows: dict[str, int]  # rows to copy per table, in copy order

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def plan_copy(source_url: str, target_url: str) -> CopyPlan:
    """Check both databases, migrate the (empty) target and count the rows to copy."""
    if source_url == target_url:
        raise CopyError("copy.same_database")
    sqlite_file = source_url.removeprefix("sqlite:///") if source_url.startswith("sqlite:///") else None
    if sqlite_file and sqlite_file != ":memory:" and not Path(sqlite_file).is_file():
        raise CopyError("copy.source_missing", path=sqlite_file)  # opening it would create it
    source, target = db.make_engine(source_url), db.make_engine(target_url)
    try:
        _check_source(source, source_url)
        _check_target_empty(target, target_url)  # before migrating it: a refused target is not touched
        db.upgrade(target_url)
        with source.connect() as src:
            rows = {t.name: src.execute(select(func.count()).select_from(t)).scalar_one() for t in tables()}
        return CopyPlan(source_url, target_url, rows)
    except SQLAlchemyError as e:
        raise CopyError("copy.prepare_failed", reason=_reason(e)) from None
    finally:
        source.dispose()
        target.dispose()


def copy_rows(plan: CopyPlan, *, batch_size: int = 1000, progress: Callable[[int], None] = lambda rows: None) -> None:
    """Copy the rows in one transaction on the target; `progress(rows)` is called after each batch."""
    source, target = db.make_engine(plan.source_url), db.make_engine(plan.target_url)
    try:
        with source.connect() as src, target.begin() as dst:
            for table in tables():
                _copy_table(src, dst, table, batch_size, progress)
            if dst.dialect.name == "postgresql":
                _fix_sequences(dst)
    except SQLAlchemyError as e:
        raise CopyError("copy.failed", reason=_reason(e)) from None
    finally:
        source.dispose()
        target.dispose()


def _reason(e: SQLAlchemyError) -> str:
    # The driver's first line says what went wrong; the rest repeats the statement and its parameters.
    return str(getattr(e, "orig", None) or e).strip().splitlines()[0]


def _check_source(source: Engine, url: str) -> None:
    try:
        current = db.current_revision(source)
    except SQLAlchemyError as e:
        raise CopyError("copy.source_unreadable", url=db._redact(url), reason=_reason(e)) from None
    head = db.head_revision(url)
    if current is None:
        raise CopyError("copy.source_empty", head=head)
    if current != head:
        raise CopyError("copy.source_behind", current=current, head=head)
    known = {t.name for t in tables()} | {ALEMBIC_TABLE}
    # The search index is rebuilt on the target by its triggers (SQLite) or is an index (PostgreSQL): not copied.
    unknown = sorted(n for n in set(inspect(source).get_table_names()) - known if not unmodelled(n))
    if unknown:
        raise CopyError("copy.source_unknown_tables", tables=", ".join(unknown))


def _check_target_empty(target: Engine, url: str) -> None:
    try:
        with target.connect() as conn:
            quote = conn.dialect.identifier_preparer.quote
            full = next((name for name in sorted(set(inspect(conn).get_table_names()) - {ALEMBIC_TABLE})
                         if not unmodelled(name)  # FTS5's config table has a row in an empty database
                         if conn.execute(text(f"SELECT 1 FROM {quote(name)} LIMIT 1")).first() is not None), None)
    except SQLAlchemyError as e:
        raise CopyError("copy.target_unreachable", url=db._redact(url), reason=_reason(e)) from None
    if full is not None:
        raise CopyError("copy.target_not_empty", url=db._redact(url), table=full)


def _copy_table(src: Connection, dst: Connection, table: Table, batch_size: int,
                progress: Callable[[int], None]) -> None:
    # Ordered by primary key, so rows that point at earlier rows of the same table find them already there.
    rows = src.execution_options(yield_per=batch_size).execute(select(table).order_by(*table.primary_key.columns))
    for batch in rows.mappings().partitions(batch_size):
        dst.execute(table.insert(), [dict(r) for r in batch])
        progress(len(batch))


def _fix_sequences(dst: Connection) -> None:
    for table in tables():
        for column in table.primary_key.columns:
            if column.autoincrement is True or (column.autoincrement == "auto" and _is_integer(column)):
                quoted = dst.dialect.identifier_preparer.quote(table.name)  # "user" is a reserved word
                dst.execute(text(
                    f"SELECT setval(pg_get_serial_sequence(:table, :column), COALESCE(MAX({column.name}), 1), "
                    f"MAX({column.name}) IS NOT NULL) FROM {quoted}"
                ), {"table": quoted, "column": column.name})


def _is_integer(column) -> bool:
    try:
        return column.type.python_type is int and len(column.table.primary_key.columns) == 1
    except NotImplementedError:
        return False
