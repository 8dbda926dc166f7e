"""Baseline: every table as `create_all` made it before migrations existed (the schema of issue 11's release).
A database from that time is upgraded from here: each table is made only when it is missing.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0001_baseline'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each table (and its indexes) only when missing: a database made by create_all before migrations existed
    # is upgraded from here, keeping what it has (bot/schema.py checks the columns afterwards).
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if 'customers' not in existing:
        op.create_table('customers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('business_name', sa.String(length=200), nullable=False),
        sa.Column('registration_type', sa.String(length=10), nullable=False),
        sa.Column('registration_id', sa.String(length=40), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('phone', sa.String(length=30), nullable=False),
        sa.CheckConstraint("registration_type IN ('brn', 'nric', 'passport')", name='registration_type_known'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('registration_type', 'registration_id')
        )
    if 'gateway_agent_sessions' not in existing:
        op.create_table('gateway_agent_sessions',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('token_hash')
        )
        with op.batch_alter_table('gateway_agent_sessions', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_gateway_agent_sessions_agent_id'), ['agent_id'], unique=False)
    if 'gateway_agents' not in existing:
        op.create_table('gateway_agents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('display_name', sa.String(length=80), nullable=False),
        sa.Column('password_hash', sa.String(length=300), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('disabled_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name')
        )
    if 'gateway_audit_log' not in existing:
        op.create_table('gateway_audit_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('conversation_id', sa.String(length=200), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('last_at', sa.DateTime(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('gateway_audit_log', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_gateway_audit_log_agent_id'), ['agent_id'], unique=False)
            batch_op.create_index(batch_op.f('ix_gateway_audit_log_at'), ['at'], unique=False)
            batch_op.create_index(batch_op.f('ix_gateway_audit_log_conversation_id'), ['conversation_id'], unique=False)
    if 'gateway_conversations' not in existing:
        op.create_table('gateway_conversations',
        sa.Column('id', sa.String(length=200), nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('sender_id', sa.String(length=160), nullable=False),
        sa.Column('language', sa.String(length=2), nullable=True),
        sa.Column('hold_notice_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
    if 'gateway_handoffs' not in existing:
        op.create_table('gateway_handoffs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.String(length=200), nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('language', sa.String(length=2), nullable=True),
        sa.Column('reason', sa.String(length=20), nullable=False),
        sa.Column('requested_at', sa.DateTime(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=True),
        sa.Column('assigned_at', sa.DateTime(), nullable=True),
        sa.Column('first_reply_at', sa.DateTime(), nullable=True),
        sa.Column('resolved_at', sa.DateTime(), nullable=True),
        sa.Column('resolved_by', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('gateway_handoffs', schema=None) as batch_op:
            batch_op.create_index('gateway_handoffs_one_open', ['conversation_id'], unique=True, sqlite_where=sa.text('resolved_at IS NULL'), postgresql_where=sa.text('resolved_at IS NULL'))
            batch_op.create_index(batch_op.f('ix_gateway_handoffs_conversation_id'), ['conversation_id'], unique=False)
    if 'gateway_inbox' not in existing:
        op.create_table('gateway_inbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('message_id', sa.String(length=200), nullable=False),
        sa.Column('conversation_id', sa.String(length=200), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('payload', sa.Text(), nullable=True),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('claimed_until', sa.DateTime(), nullable=True),
        sa.Column('rasa_sent_at', sa.DateTime(), nullable=True),
        sa.Column('replies', sa.JSON(), nullable=True),
        sa.Column('delivered_count', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.String(length=300), nullable=True),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('answered_at', sa.DateTime(), nullable=True),
        sa.Column('done_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('channel', 'message_id', name='inbox_channel_message_unique')
        )
        with op.batch_alter_table('gateway_inbox', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_gateway_inbox_conversation_id'), ['conversation_id'], unique=False)
            batch_op.create_index(batch_op.f('ix_gateway_inbox_status'), ['status'], unique=False)
    if 'gateway_suggestion_sets' not in existing:
        op.create_table('gateway_suggestion_sets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.String(length=200), nullable=False),
        sa.Column('handoff_id', sa.Integer(), nullable=True),
        sa.Column('agent_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('language', sa.String(length=2), nullable=False),
        sa.Column('customer_seq', sa.Integer(), nullable=True),
        sa.Column('suggestions', sa.JSON(), nullable=False),
        sa.Column('shown_at', sa.DateTime(), nullable=False),
        sa.Column('outcome', sa.String(length=10), nullable=False),
        sa.Column('chosen_index', sa.Integer(), nullable=True),
        sa.Column('outcome_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('gateway_suggestion_sets', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_gateway_suggestion_sets_conversation_id'), ['conversation_id'], unique=False)
    if 'gateway_transcript' not in existing:
        op.create_table('gateway_transcript',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.String(length=200), nullable=False),
        sa.Column('role', sa.String(length=10), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('buttons', sa.JSON(), nullable=False),
        sa.Column('client_id', sa.String(length=200), nullable=True),
        sa.Column('inbox_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('gateway_transcript', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_gateway_transcript_conversation_id'), ['conversation_id'], unique=False)
    if 'gateway_widget_sessions' not in existing:
        op.create_table('gateway_widget_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
    if 'identity_token_uses' not in existing:
        op.create_table('identity_token_uses',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('conversation_id', sa.String(length=255), nullable=False),
        sa.Column('first_used_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('token_hash')
        )
    if 'outbox' not in existing:
        op.create_table('outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=30), nullable=False),
        sa.Column('to_address', sa.String(length=254), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('claimed_until', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id')
        )
    if 'verification_alerts' not in existing:
        op.create_table('verification_alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_number', sa.String(length=20), nullable=False),
        sa.Column('reason', sa.String(length=20), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('verification_alerts', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_verification_alerts_account_number'), ['account_number'], unique=False)
    if 'verification_challenges' not in existing:
        op.create_table('verification_challenges',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_number', sa.String(length=20), nullable=False),
        sa.Column('conversation_id', sa.String(length=255), nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('client_hash', sa.String(length=64), nullable=True),
        sa.Column('code_hash', sa.String(length=100), nullable=False),
        sa.Column('emailed', sa.Boolean(), nullable=False),
        sa.Column('wrong_attempts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('verification_challenges', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_verification_challenges_account_number'), ['account_number'], unique=False)
            batch_op.create_index(batch_op.f('ix_verification_challenges_client_hash'), ['client_hash'], unique=False)
            batch_op.create_index(batch_op.f('ix_verification_challenges_conversation_id'), ['conversation_id'], unique=False)
            batch_op.create_index(batch_op.f('ix_verification_challenges_created_at'), ['created_at'], unique=False)
    if 'verified_conversations' not in existing:
        op.create_table('verified_conversations',
        sa.Column('conversation_id', sa.String(length=255), nullable=False),
        sa.Column('account_number', sa.String(length=20), nullable=False),
        sa.Column('method', sa.String(length=10), nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('verified_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('conversation_id')
        )
    if 'accounts' not in existing:
        op.create_table('accounts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_number', sa.String(length=20), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('suspended_since', sa.Date(), nullable=True),
        sa.Column('outstanding_amount', sa.BigInteger(), nullable=False),
        sa.Column('bill_day', sa.Integer(), nullable=False),
        sa.Column('billing_arrangement', sa.String(length=20), nullable=False),
        sa.Column('autopay', sa.Boolean(), nullable=False),
        sa.CheckConstraint("billing_arrangement IN ('with_unifi_biz', 'separate')", name='billing_arrangement_known'),
        sa.CheckConstraint("status IN ('active', 'suspended', 'terminated')", name='account_status_known'),
        sa.CheckConstraint('bill_day BETWEEN 1 AND 31', name='bill_day_in_month'),
        sa.CheckConstraint('outstanding_amount >= 0', name='outstanding_not_negative'),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('account_number')
        )
    if 'bills' not in existing:
        op.create_table('bills',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('bill_date', sa.Date(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id')
        )
    if 'payments' not in existing:
        op.create_table('payments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('paid_on', sa.Date(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('channel', sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id')
        )
    if 'subscriptions' not in existing:
        op.create_table('subscriptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('plan', sa.String(length=20), nullable=False),
        sa.Column('monthly_fee', sa.BigInteger(), nullable=False),
        sa.Column('start_date', sa.Date(), nullable=False),
        sa.Column('contract_start', sa.Date(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.CheckConstraint("status IN ('active', 'terminated')", name='subscription_status_known'),
        sa.CheckConstraint('monthly_fee >= 0', name='fee_not_negative'),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id')
        )
    if 'activation_codes' not in existing:
        op.create_table('activation_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscription_id', sa.Integer(), nullable=False),
        sa.Column('code_encrypted', sa.Text(), nullable=False),
        sa.Column('issued_on', sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id')
        )
    if 'devices' not in existing:
        op.create_table('devices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscription_id', sa.Integer(), nullable=False),
        sa.Column('type', sa.String(length=20), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('first_connected_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id')
        )


def downgrade() -> None:
    op.drop_table('devices')
    op.drop_table('activation_codes')
    op.drop_table('subscriptions')
    op.drop_table('payments')
    op.drop_table('bills')
    op.drop_table('accounts')
    op.drop_table('verified_conversations')
    with op.batch_alter_table('verification_challenges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_verification_challenges_created_at'))
        batch_op.drop_index(batch_op.f('ix_verification_challenges_conversation_id'))
        batch_op.drop_index(batch_op.f('ix_verification_challenges_client_hash'))
        batch_op.drop_index(batch_op.f('ix_verification_challenges_account_number'))

    op.drop_table('verification_challenges')
    with op.batch_alter_table('verification_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_verification_alerts_account_number'))

    op.drop_table('verification_alerts')
    op.drop_table('outbox')
    op.drop_table('identity_token_uses')
    op.drop_table('gateway_widget_sessions')
    with op.batch_alter_table('gateway_transcript', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_transcript_conversation_id'))

    op.drop_table('gateway_transcript')
    with op.batch_alter_table('gateway_suggestion_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_suggestion_sets_conversation_id'))

    op.drop_table('gateway_suggestion_sets')
    with op.batch_alter_table('gateway_inbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_inbox_status'))
        batch_op.drop_index(batch_op.f('ix_gateway_inbox_conversation_id'))

    op.drop_table('gateway_inbox')
    with op.batch_alter_table('gateway_handoffs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_handoffs_conversation_id'))
        batch_op.drop_index('gateway_handoffs_one_open', sqlite_where=sa.text('resolved_at IS NULL'), postgresql_where=sa.text('resolved_at IS NULL'))

    op.drop_table('gateway_handoffs')
    op.drop_table('gateway_conversations')
    with op.batch_alter_table('gateway_audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_audit_log_conversation_id'))
        batch_op.drop_index(batch_op.f('ix_gateway_audit_log_at'))
        batch_op.drop_index(batch_op.f('ix_gateway_audit_log_agent_id'))

    op.drop_table('gateway_audit_log')
    op.drop_table('gateway_agents')
    with op.batch_alter_table('gateway_agent_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_agent_sessions_agent_id'))

    op.drop_table('gateway_agent_sessions')
    op.drop_table('customers')
