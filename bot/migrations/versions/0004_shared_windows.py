"""Rate limits and the login throttle counted in the database, shared by every gateway replica.

Additive (a new table), so that gateways of the previous version keep running beside new ones during a rolling
upgrade (they keep counting in their own memory until they are replaced).

Revision ID: 0004_shared_windows
Revises: 0003_inbox_leases
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0004_shared_windows'
down_revision = '0003_inbox_leases'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if 'gateway_window_events' in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table('gateway_window_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('gateway_window_events', schema=None) as batch_op:
        batch_op.create_index('gateway_window_events_key_at', ['key', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('gateway_window_events', schema=None) as batch_op:
        batch_op.drop_index('gateway_window_events_key_at')
    op.drop_table('gateway_window_events')
