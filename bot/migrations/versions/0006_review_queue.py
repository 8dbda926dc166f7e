"""The agents' review queue (gateway_review): customer messages that fell back, were handed over, got a 👎 or
were answered with low confidence, with the answer an agent says they should have had; and what Rasa took each
inbox message for (gateway_inbox.understanding).

Additive (a nullable column, a new table), so that gateways of the previous version keep running beside new ones
during a rolling upgrade (they fill neither).

Revision ID: 0006_review_queue
Revises: 0005_sources_and_feedback
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = '0006_review_queue'
down_revision = '0005_sources_and_feedback'
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if 'understanding' not in {column['name'] for column in inspector.get_columns('gateway_inbox')}:
        with op.batch_alter_table('gateway_inbox', schema=None) as batch_op:
            batch_op.add_column(sa.Column('understanding', sa.JSON(), nullable=True))
    if 'gateway_review' in set(inspector.get_table_names()):
        return
    op.create_table('gateway_review',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('reasons', sa.String(length=100), nullable=False),
    sa.Column('taken_for', sa.String(length=100), nullable=True),
    sa.Column('guess', sa.String(length=100), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=True),
    sa.Column('labelled_by', sa.Integer(), nullable=True),
    sa.Column('labelled_at', sa.DateTime(), nullable=True),
    sa.Column('exported_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('inbox_id')
    )
    with op.batch_alter_table('gateway_review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_review_received_at'), ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('gateway_review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_review_received_at'))
    op.drop_table('gateway_review')
    with op.batch_alter_table('gateway_inbox', schema=None) as batch_op:
        batch_op.drop_column('understanding')
