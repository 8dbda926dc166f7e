"""Each assistant answer in the transcript keeps the document it comes from ("FAQ 22", "Support Rules 4.1"),
for the agents' console and the widget's source line; customers' 👍/👎 on answers (gateway_feedback), and when a
conversation was asked for it.

Additive (nullable columns, a new table), so that gateways of the previous version keep running beside new ones
during a rolling upgrade (they write entries without a source and never ask for feedback).

Revision ID: 0005_sources_and_feedback
Revises: 0004_shared_windows
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = '0005_sources_and_feedback'
down_revision = '0004_shared_windows'
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if 'source' not in {column['name'] for column in inspector.get_columns('gateway_transcript')}:
        with op.batch_alter_table('gateway_transcript', schema=None) as batch_op:
            batch_op.add_column(sa.Column('source', sa.String(length=200), nullable=True))
    if 'feedback_asked_at' not in {column['name'] for column in inspector.get_columns('gateway_conversations')}:
        with op.batch_alter_table('gateway_conversations', schema=None) as batch_op:
            batch_op.add_column(sa.Column('feedback_asked_at', sa.DateTime(), nullable=True))
    if 'gateway_feedback' in set(inspector.get_table_names()):
        return
    op.create_table('gateway_feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.String(length=200), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=True),
    sa.Column('rating', sa.String(length=4), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('conversation_id', 'entry_id', name='feedback_one_per_answer')
    )
    with op.batch_alter_table('gateway_feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_feedback_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_gateway_feedback_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('gateway_feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_feedback_created_at'))
        batch_op.drop_index(batch_op.f('ix_gateway_feedback_conversation_id'))
    op.drop_table('gateway_feedback')
    with op.batch_alter_table('gateway_conversations', schema=None) as batch_op:
        batch_op.drop_column('feedback_asked_at')
    with op.batch_alter_table('gateway_transcript', schema=None) as batch_op:
        batch_op.drop_column('source')
