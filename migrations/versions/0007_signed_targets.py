"""signed targets: accounts and time chosen at 送审, version snapshots, post notices

Revision ID: 0007
Revises: 0005
"""
import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("post") as batch_op:
        batch_op.add_column(sa.Column("target_account_ids", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("planned_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    # Posts already scheduled keep going out on the accounts they were scheduled for: those become their targets.
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT post_id, account_id FROM publication WHERE state != 'cancelled' "
                                "ORDER BY post_id, account_id")).all()
    targets: dict[int, list[int]] = {}
    for post_id, account_id in rows:
        targets.setdefault(post_id, []).append(account_id)
    post = sa.table("post", sa.column("id", sa.Integer()), sa.column("target_account_ids", sa.JSON()))
    for post_id, ids in targets.items():
        conn.execute(post.update().where(post.c.id == post_id).values(target_account_ids=ids))

    op.create_table(
        "postversion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("weibo_text", sa.Text(), nullable=False),
        sa.Column("cover_media_id", sa.Integer(), nullable=True),
        sa.Column("target_account_ids", sa.JSON(), nullable=False),
        sa.Column("planned_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["cover_media_id"], ["media.id"]),
        sa.ForeignKeyConstraint(["post_id"], ["post.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("post_id", "version"),
    )
    with op.batch_alter_table("postversion") as batch_op:
        batch_op.create_index(batch_op.f("ix_postversion_post_id"), ["post_id"], unique=False)

    with op.batch_alter_table("notification") as batch_op:
        batch_op.add_column(sa.Column("post_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("read_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_notification_post_id"), ["post_id"], unique=False)
        batch_op.create_foreign_key("fk_notification_post_id_post", "post", ["post_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("notification") as batch_op:
        batch_op.drop_constraint("fk_notification_post_id_post", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_notification_post_id"))
        batch_op.drop_column("read_at")
        batch_op.drop_column("post_id")
    op.drop_table("postversion")
    with op.batch_alter_table("post") as batch_op:
        batch_op.drop_column("planned_at")
        batch_op.drop_column("target_account_ids")
