"""X Activity API: delivery ids handled and the channel's OAuth 2.0 tokens.

A database made by `create_all` before migrations existed may already hold these tables (the X channel's code
came a little before Alembic); such a database is stamped at the baseline, so each table and index here is made
only when it is missing.

Revision ID: 0002_x_activity_api
Revises: 0001_baseline
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0002_x_activity_api'
down_revision = '0001_baseline'
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if 'gateway_channel_tokens' not in existing:
        _create_channel_tokens()
    if 'gateway_webhook_deliveries' not in existing:
        _create_webhook_deliveries()


def _create_channel_tokens() -> None:
    op.create_table('gateway_channel_tokens',
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('access_token', sa.Text(), nullable=False),
    sa.Column('refresh_token', sa.Text(), nullable=True),
    sa.Column('scope', sa.String(length=300), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('refresh_claimed_until', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('channel')
    )


def _create_webhook_deliveries() -> None:
    op.create_table('gateway_webhook_deliveries',
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('delivery_id', sa.String(length=100), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'delivery_id')
    )
    with op.batch_alter_table('gateway_webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_webhook_deliveries_received_at'), ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('gateway_webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_webhook_deliveries_received_at'))

    op.drop_table('gateway_webhook_deliveries')
    op.drop_table('gateway_channel_tokens')
