"""The retention job (`python -m bot purge`, bot/privacy/retention.py) on SQLite and the real PostgreSQL: what is older
than the retention period goes, what is younger, still open or still needed stays."""
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, create_engine, func, select

from bot.accounts import models as accounts
from bot.accounts.verification import mark_verified
from bot.dialogue.handoff import REQUEST_HUMAN
from bot.gateway import models as gateway
from bot.gateway.feedback import FeedbackStore
from bot.gateway.handoffs import HandoffStore
from bot.gateway.messages import InboundMessage, Reply
from bot.gateway.review import FELL_BACK
from bot.gateway.shared_windows import DatabaseWindow
from bot.gateway.store import GatewayStore
from bot.privacy.retention import purge
from bot.settings import load_settings
from conftest import TEST_SECRETS

NOW = datetime(2026, 12, 1, 12, 0)
OLD, RECENT = NOW - timedelta(days=100), NOW - timedelta(days=10)

EVENTS = Table("events", MetaData(), Column("id", Integer, primary_key=True), Column("sender_id", String(255)),
               Column("type_name", String(255)), Column("timestamp", Float), Column("intent_name", String(255)),
               Column("action_name", String(255)), Column("data", Text))


def count(store, model, *where) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def unix(moment: datetime) -> float:
    return (moment - datetime(1970, 1, 1)).total_seconds()


@pytest.fixture
def populated(demo_store, account_store_url):
    """One old and one recent of everything, in the account database; Rasa's events in the same database."""
    store = GatewayStore(account_store_url)
    for moment, sender in ((OLD, "old"), (RECENT, "new")):
        row = store.record_inbound(InboundMessage("widget", sender, f"m-{sender}", text="hi"), now=moment).inbox_id
        store.claim(row, now=moment)
        store.save_replies(row, [Reply("hello")], now=moment, review=[FELL_BACK])      # to the review queue
        answer = store.record_delivery(row, 0, Reply("hello"), now=moment)
        FeedbackStore(store).record(f"widget:{sender}", "up", answer["seq"], now=moment)
        store.widget_session(None, now=moment)
        store.remember_delivery("twitter", f"uuid-{sender}", now=moment)
        with demo_store.session() as session:
            session.add(accounts.OutboxEmail(kind="verification_code", to_address="a@b.my", subject="s", body="",
                                             created_at=moment, sent_at=moment, attempts=1))
            session.add(accounts.VerificationChallenge(
                account_number="1000000001", conversation_id=sender, channel="widget", code_hash="s$h",
                emailed=True, wrong_attempts=0, created_at=moment, expires_at=moment + timedelta(minutes=10)))
            session.add(accounts.VerificationAlert(account_number="1000000001", reason="codes_limit",
                                                   created_at=moment))
    # An old conversation still waiting for an agent: never deleted, nor its unanswered message.
    waiting = store.record_inbound(InboundMessage("widget", "waiting", "m-w", text="a person please"),
                                   now=OLD).inbox_id
    store.claim(waiting, now=OLD)
    store.save_replies(waiting, [Reply("an agent will join")], handoff_reason=REQUEST_HUMAN, now=OLD)
    pending = store.record_inbound(InboundMessage("widget", "waiting", "m-w2", text="hello?"), now=OLD).inbox_id
    store.remember_delivery("twitter", "uuid-yesterday", now=NOW - timedelta(days=1))
    events = DatabaseWindow(store, 900, "login:")
    events.add("aisyah", now=unix(NOW - timedelta(days=2)))
    events.add("ben", now=unix(NOW - timedelta(minutes=5)))
    mark_verified(demo_store, "expired", "1000000001", "code", NOW - timedelta(hours=1))
    mark_verified(demo_store, "live", "1000000001", "code", NOW - timedelta(minutes=5))
    engine = create_engine(account_store_url)
    EVENTS.create(engine, checkfirst=True)
    with engine.begin() as connection:
        connection.execute(EVENTS.insert(), [
            {"sender_id": "widget:old", "type_name": "user", "timestamp": unix(OLD), "data": json.dumps({})},
            {"sender_id": "widget:new", "type_name": "user", "timestamp": unix(RECENT), "data": json.dumps({})}])
    engine.dispose()
    yield store, pending
    store.dispose()


def test_purge_deletes_what_is_older_than_the_retention_period(populated, demo_store, account_store_url):
    store, pending = populated
    settings = load_settings({**TEST_SECRETS, "DATABASE_URL": account_store_url,
                              "TRACKER_STORE_URL": account_store_url, "SECRETS_FILE": "/nonexistent"})
    counts = purge(settings, 90, now=NOW)
    assert counts["conversation events"] == 1 and counts["outbox emails"] == 1
    assert counts["verification challenges"] == 1 and counts["verification alerts"] == 1
    assert counts["expired verifications"] == 1 and counts["widget sessions"] == 1
    assert counts["webhook delivery ids"] == 2                     # after a week, whatever the retention
    assert counts["rate-limit events"] == 1                        # after a day
    assert counts["answer ratings"] == 1 and count(store, gateway.AnswerFeedback) == 1
    assert counts["review queue messages"] == 1 and count(store, gateway.ReviewItem) == 1
    assert DatabaseWindow(store, 900, "login:").recent("ben", now=unix(NOW)) == [unix(NOW - timedelta(minutes=5))]
    assert not store.delivery_seen("twitter", "uuid-new") and store.delivery_seen("twitter", "uuid-yesterday")
    assert counts["conversations"] == 1                            # "old"; "waiting" keeps its open handoff
    assert count(store, gateway.Conversation) == 2
    assert count(store, gateway.TranscriptEntry, gateway.TranscriptEntry.conversation_id == "widget:new") == 2
    assert count(store, gateway.TranscriptEntry, gateway.TranscriptEntry.conversation_id == "widget:old") == 0
    assert count(store, gateway.InboxMessage, gateway.InboxMessage.id == pending) == 1     # still to be answered
    assert count(store, gateway.Handoff) == 1                                               # still open
    assert HandoffStore(store).queue(agent_id=0)[0]["conversation_id"] == "widget:waiting"
    assert count(demo_store, accounts.VerifiedConversation) == 1                          # "live"
    assert purge(settings, 90, now=NOW)["conversation events"] == 0                        # nothing twice


def test_purge_refuses_a_retention_shorter_than_the_verification_limits(account_store_url):
    settings = load_settings({**TEST_SECRETS, "DATABASE_URL": account_store_url, "SECRETS_FILE": "/nonexistent"})
    with pytest.raises(ValueError):
        purge(settings, 1, now=NOW)
