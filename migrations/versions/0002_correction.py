"""correction: responders' corrections of intent and topic

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "correction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("old_intent", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("old_topic", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("intent", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("correction") as batch_op:
        batch_op.create_index("ix_correction_message", ["message_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_correction_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_table("correction")
