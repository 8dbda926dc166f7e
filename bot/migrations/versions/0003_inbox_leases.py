"""Inbox claims become leases held in a replica's name (several gateways on one PostgreSQL database).

Additive only, so that gateways of the previous version keep running beside new ones during a rolling upgrade:
a new nullable column; `claimed_until` keeps its name and meaning (the lease's end). An old gateway's claims have
no `claimed_by`; new gateways leave them until their lease runs out.

Revision ID: 0003_inbox_leases
Revises: 0002_x_activity_api
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0003_inbox_leases'
down_revision = '0002_x_activity_api'
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {column['name'] for column in sa.inspect(op.get_bind()).get_columns('gateway_inbox')}
    if 'claimed_by' not in columns:
        with op.batch_alter_table('gateway_inbox', schema=None) as batch_op:
            batch_op.add_column(sa.Column('claimed_by', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('gateway_inbox', schema=None) as batch_op:
        batch_op.drop_column('claimed_by')
