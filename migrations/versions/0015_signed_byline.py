"""a submitted version keeps its WeChat byline (作者) and comment switch (留言): both are signed

Revision ID: 0015
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes


revision = '0015'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('postversion', schema=None) as batch_op:
        batch_op.add_column(sa.Column('byline', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('open_comment', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table('postversion', schema=None) as batch_op:
        batch_op.drop_column('open_comment')
        batch_op.drop_column('byline')
