"""Every table of the gateway, in DATABASE_URL beside the account store.

Conversations, the durable inbox and the transcript (bot/gateway/store.py uses them); human agents, their login
sessions, handoffs to agents and the agent-assist suggestion sets (bot/gateway/handoffs.py); the platforms'
delivery ids already handled and a channel's OAuth 2.0 tokens (bot/gateway/x_api.py). `python -m bot
report` reads them too. The schema is kept by Alembic migrations (bot/migrations/, bot/schema.py).
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import JSON, Column, DateTime, Float, Index, Integer, String, Text, UniqueConstraint

from bot.database import Base

PENDING, ANSWERED, DONE = "pending", "answered", "done"
RATE_LIMITED, REJECTED = "rate_limited", "rejected"     # recorded, never sent to Rasa
TO_AGENT = "to_agent"          # arrived while an agent owned the conversation: recorded for the agent, not sent to Rasa
OPEN_STATUSES = (PENDING, ANSWERED)
CLAIM_LEASE = timedelta(seconds=30)     # a claim's lease (GATEWAY_LEASE_SECONDS), renewed while its replica works


class Conversation(Base):
    __tablename__ = "gateway_conversations"
    id = Column(String(200), primary_key=True)            # channel:sender
    channel = Column(String(20), nullable=False)
    sender_id = Column(String(160), nullable=False)
    language = Column(String(2))                          # last known: notices are written in it
    hold_notice_at = Column(DateTime)                     # "please hold on" sent during the current outage
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)
    feedback_asked_at = Column(DateTime)                  # "was this helpful?" sent (Messenger, X: once at most)


class AnswerFeedback(Base):
    """A customer's 👍 or 👎 on one answer of the assistant (its transcript entry), with the conversation's
    language and channel: `python -m bot report` counts them (CSAT), the review queue shows the 👎."""
    __tablename__ = "gateway_feedback"
    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(200), nullable=False, index=True)
    entry_id = Column(Integer, nullable=False)            # gateway_transcript.id of the answer rated
    channel = Column(String(20), nullable=False)
    language = Column(String(2))
    rating = Column(String(4), nullable=False)            # up | down
    created_at = Column(DateTime, nullable=False, index=True)
    __table_args__ = (UniqueConstraint("conversation_id", "entry_id", name="feedback_one_per_answer"),)


class ReviewItem(Base):
    """A customer message for the agents' review queue (bot/gateway/review.py): it fell back, was handed over,
    got a 👎, or was answered with low confidence (`reasons`, comma-separated). Its text is redacted. An agent
    labels it with the answer it should have had (`label`: "faq/plans", "greet" ...) or "not_covered";
    `python -m bot review export` writes the labelled ones to a training file and marks them exported."""
    __tablename__ = "gateway_review"
    id = Column(Integer, primary_key=True)
    inbox_id = Column(Integer, nullable=False, unique=True)  # one item per customer message
    conversation_id = Column(String(200), nullable=False)
    channel = Column(String(20), nullable=False)
    language = Column(String(2))
    text = Column(Text, nullable=False)
    reasons = Column(String(100), nullable=False)
    taken_for = Column(String(100))                       # the understanding's label ("nlu_fallback" ...)
    guess = Column(String(100))                           # its best label other than the fallback
    confidence = Column(Float)
    received_at = Column(DateTime, nullable=False, index=True)
    label = Column(String(100))
    labelled_by = Column(Integer)                         # agent id
    labelled_at = Column(DateTime)
    exported_at = Column(DateTime)


class InboxMessage(Base):
    __tablename__ = "gateway_inbox"
    id = Column(Integer, primary_key=True)
    channel = Column(String(20), nullable=False)
    message_id = Column(String(200), nullable=False)
    conversation_id = Column(String(200), nullable=False, index=True)
    text = Column(Text, nullable=False, default="")
    payload = Column(Text)
    message_metadata = Column("metadata", JSON, nullable=False, default=dict)
    status = Column(String(20), nullable=False, index=True)
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(DateTime, nullable=False)
    # A claim is a lease: the replica that took the message (claimed_by, GATEWAY_REPLICA_ID) and until when
    # (claimed_until, the lease's end, renewed while it works). The column keeps its name from before replicas so
    # that old and new gateways can run side by side during a rolling upgrade.
    claimed_until = Column(DateTime)
    claimed_by = Column(String(100))
    rasa_sent_at = Column(DateTime)        # a request may have reached Rasa: look in its tracker before re-sending
    replies = Column(JSON)
    delivered_count = Column(Integer, nullable=False, default=0)
    last_error = Column(String(300))
    received_at = Column(DateTime, nullable=False)
    answered_at = Column(DateTime)
    done_at = Column(DateTime)
    understanding = Column(JSON)           # what Rasa took it for, how surely (bot/nlu/understanding.py)
    __table_args__ = (UniqueConstraint("channel", "message_id", name="inbox_channel_message_unique"),)


class TranscriptEntry(Base):
    __tablename__ = "gateway_transcript"
    id = Column(Integer, primary_key=True)                # the widget's `seq`
    conversation_id = Column(String(200), nullable=False, index=True)
    role = Column(String(10), nullable=False)
    text = Column(Text, nullable=False)
    buttons = Column(JSON, nullable=False, default=list)
    client_id = Column(String(200))
    inbox_id = Column(Integer)
    created_at = Column(DateTime, nullable=False)
    source = Column(String(200))                          # an answer's document ("FAQ 22"), from its response


class WidgetSession(Base):
    """A widget session, by its key: the hash of the secret only the customer's browser holds."""
    __tablename__ = "gateway_widget_sessions"
    id = Column(String(64), primary_key=True)
    created_at = Column(DateTime, nullable=False)
    last_seen_at = Column(DateTime, nullable=False)


class Agent(Base):
    """A human agent of the console (`python -m bot agents add NAME`). The password is kept as a scrypt hash.
    `name` is the login and is never shown to customers; they see `display_name` (or "a Unifi agent")."""
    __tablename__ = "gateway_agents"
    id = Column(Integer, primary_key=True)
    name = Column(String(80), nullable=False, unique=True)
    display_name = Column(String(80), nullable=False, default="")
    password_hash = Column(String(300), nullable=False)
    created_at = Column(DateTime, nullable=False)
    disabled_at = Column(DateTime)


class AgentSession(Base):
    """A console login. The cookie holds a random token; only its SHA-256 is stored."""
    __tablename__ = "gateway_agent_sessions"
    token_hash = Column(String(64), primary_key=True)
    agent_id = Column(Integer, nullable=False, index=True)
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(DateTime, nullable=False)
    last_seen_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=False)


HANDOFF_REASONS = ("request_human", "fallback")


class Handoff(Base):
    """One hand-over of a conversation to the human agents, from the request until an agent resolves it. At most
    one open (unresolved) handoff per conversation; while it is open the assistant stays silent."""
    __tablename__ = "gateway_handoffs"
    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(200), nullable=False, index=True)
    channel = Column(String(20), nullable=False)
    language = Column(String(2))
    reason = Column(String(20), nullable=False)            # request_human | fallback
    requested_at = Column(DateTime, nullable=False)
    agent_id = Column(Integer)                             # the agent who took it (None while waiting)
    assigned_at = Column(DateTime)
    first_reply_at = Column(DateTime)
    resolved_at = Column(DateTime)
    resolved_by = Column(Integer)                          # agent id
    __table_args__ = (
        Index("gateway_handoffs_one_open", "conversation_id", unique=True,
              sqlite_where=resolved_at.is_(None), postgresql_where=resolved_at.is_(None)),
    )


SHOWN, USED, EDITED, IGNORED = "shown", "used", "edited", "ignored"


class SuggestionSet(Base):
    """The agent-assist suggestions shown to an agent for one customer message, and what became of them: `used`
    (sent as is), `edited` (sent after changes), `ignored` (replaced, or the agent wrote their own reply)."""
    __tablename__ = "gateway_suggestion_sets"
    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(200), nullable=False, index=True)
    handoff_id = Column(Integer)
    agent_id = Column(Integer, nullable=False)
    channel = Column(String(20), nullable=False)
    language = Column(String(2), nullable=False)
    customer_seq = Column(Integer)                          # the transcript entry the suggestions answer
    suggestions = Column(JSON, nullable=False, default=list)  # [{key, source, confidence, text}]
    shown_at = Column(DateTime, nullable=False)
    outcome = Column(String(10), nullable=False, default=SHOWN)
    chosen_index = Column(Integer)
    outcome_at = Column(DateTime)


class AuditEntry(Base):
    """An agent's access to a customer's conversation in the console: who, what (open, view, suggest, reply,
    resolve), which conversation, when. Repeated identical reads within a minute (the console polls) are counted
    on one row (`count`, `last_at`) instead of a row per poll."""
    __tablename__ = "gateway_audit_log"
    id = Column(Integer, primary_key=True)
    agent_id = Column(Integer, nullable=False, index=True)
    action = Column(String(20), nullable=False)
    conversation_id = Column(String(200), nullable=False, index=True)
    at = Column(DateTime, nullable=False, index=True)
    last_at = Column(DateTime, nullable=False)
    count = Column(Integer, nullable=False, default=1)


class WebhookDelivery(Base):
    """A platform delivery already handled, by the platform's own id for it (the X Activity API's `event_uuid`):
    a redelivery is acknowledged and not looked at again. Recorded after its messages are in the inbox, so a
    crash in between costs a second look (the inbox's unique message ids catch it), never a message. Purged
    after a week (bot/privacy/retention.py)."""
    __tablename__ = "gateway_webhook_deliveries"
    channel = Column(String(20), primary_key=True)
    delivery_id = Column(String(100), primary_key=True)
    received_at = Column(DateTime, nullable=False, index=True)


class ChannelToken(Base):
    """A channel's OAuth 2.0 user-context tokens (X: the bot account's, from `python -m bot x authorize`), both
    encrypted with DATA_ENCRYPTION_KEY. X's refresh tokens are single-use, so one process at a time refreshes:
    it holds `refresh_claimed_until`; the others wait for the new access token."""
    __tablename__ = "gateway_channel_tokens"
    channel = Column(String(20), primary_key=True)
    user_id = Column(String(40), nullable=False)
    access_token = Column(Text, nullable=False)
    refresh_token = Column(Text)
    scope = Column(String(300), nullable=False, default="")
    expires_at = Column(DateTime, nullable=False)
    refresh_claimed_until = Column(DateTime)
    updated_at = Column(DateTime, nullable=False)


class WindowEvent(Base):
    """One event counted by a rate limit or the login throttle when several gateway replicas share the database
    (bot/gateway/ratelimit.py, DatabaseWindow): who (the limiter's key) and when (seconds since the epoch)."""
    __tablename__ = "gateway_window_events"
    id = Column(Integer, primary_key=True)
    key = Column(String(250), nullable=False)
    at = Column(Float, nullable=False)
    __table_args__ = (Index("gateway_window_events_key_at", "key", "at"),)
