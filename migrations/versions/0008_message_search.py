"""message search: jieba words of each message and their full-text index (SQLite FTS5, PostgreSQL GIN)

Revision ID: 0008
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0003"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = (
    """CREATE TRIGGER message_fts_ai AFTER INSERT ON message BEGIN
         INSERT INTO message_fts(rowid, search_text) VALUES (new.id, new.search_text); END""",
    """CREATE TRIGGER message_fts_ad AFTER DELETE ON message BEGIN
         INSERT INTO message_fts(message_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); END""",
    """CREATE TRIGGER message_fts_au AFTER UPDATE OF search_text ON message BEGIN
         INSERT INTO message_fts(message_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
         INSERT INTO message_fts(rowid, search_text) VALUES (new.id, new.search_text); END""",
)


def upgrade() -> None:
    from bot.search import search_text  # the one tokeniser, also for the messages stored so far

    with op.batch_alter_table("message") as batch_op:
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, text FROM message WHERE text <> ''")).fetchall()
    for row_id, body in rows:
        conn.execute(sa.text("UPDATE message SET search_text = :s WHERE id = :i"), {"s": search_text(body), "i": row_id})
    if conn.dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_message_search_terms ON message USING gin (string_to_array(search_text, ' '))")
    else:
        op.execute("CREATE VIRTUAL TABLE message_fts USING fts5(search_text, content='message', content_rowid='id')")
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)
        op.execute("INSERT INTO message_fts(message_fts) VALUES ('rebuild')")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_message_search_terms")
    else:
        for name in ("message_fts_ai", "message_fts_ad", "message_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS message_fts")
    with op.batch_alter_table("message") as batch_op:
        batch_op.drop_column("search_text")
