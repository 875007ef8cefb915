"""a delivery keeps the passive automatic answer the callback gave (FAQ rule, citizen): the worker records it

Revision ID: 0016
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbounddelivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('faq_rule', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(sa.Column('sender_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.create_index('ix_inbounddelivery_answered', ['account_id', 'sender_id', 'faq_rule'], unique=False,
                              sqlite_where=sa.text('faq_rule IS NOT NULL'),
                              postgresql_where=sa.text('faq_rule IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('inbounddelivery', schema=None) as batch_op:
        batch_op.drop_index('ix_inbounddelivery_answered')
        batch_op.drop_column('sender_id')
        batch_op.drop_column('faq_rule')
