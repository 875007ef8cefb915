"""platform quotas, system events, WeChat draft fields

Revision ID: 0003
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes


revision = '0003'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('quotausage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('api', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('window_start', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('window_end', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.Column('limit', sa.Integer(), nullable=False),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'api', 'window_start')
    )
    with op.batch_alter_table('quotausage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quotausage_account_id'), ['account_id'], unique=False)

    op.create_table('systemevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('dedupe_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('stored_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'dedupe_key')
    )
    with op.batch_alter_table('systemevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_systemevent_account_id'), ['account_id'], unique=False)

    with op.batch_alter_table('post', schema=None) as batch_op:
        batch_op.add_column(sa.Column('byline', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('open_comment', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stats_unavailable', sqlmodel.sql.sqltypes.AutoString(length=300),
                                      nullable=True))
    with op.batch_alter_table('pollcursor', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_poll_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_new_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('full_scan_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pollcursor', schema=None) as batch_op:
        batch_op.drop_column('full_scan_at')
        batch_op.drop_column('last_new_at')
        batch_op.drop_column('next_poll_at')
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.drop_column('stats_unavailable')
    with op.batch_alter_table('post', schema=None) as batch_op:
        batch_op.drop_column('open_comment')
        batch_op.drop_column('byline')
    with op.batch_alter_table('systemevent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_systemevent_account_id'))
    op.drop_table('systemevent')
    with op.batch_alter_table('quotausage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quotausage_account_id'))
    op.drop_table('quotausage')
