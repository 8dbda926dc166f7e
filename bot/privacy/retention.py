"""How long personal data is kept: `python -m bot purge --older-than DAYS` (default RETENTION_DAYS, 90), which
`python -m bot serve` also runs once a day.

Deleted when older than DAYS: Rasa's conversation events (TRACKER_STORE_URL), the gateway's transcripts, answered
inbox messages, closed handoffs, suggestion sets, widget sessions and conversations with nothing left, the email
outbox, verification challenges and alerts. Deleted as soon as they are useless, whatever DAYS is: expired
verifications, identity-token records and console sessions; rate-limit counts after a day; platform delivery ids
after a week. The agents'
audit log is kept a year (AUDIT_DAYS): it holds no message text, only who read which conversation when.
Messages still to be answered and open handoffs are never deleted.
"""
from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta
from typing import Dict, Optional

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, delete, exists, inspect

from bot.accounts import models as accounts
from bot.accounts.store import AccountStore
from bot.clock import now_utc
from bot.database import make_engine
from bot.gateway import models as gateway
from bot.gateway.store import GatewayStore
from bot.settings import Settings, load_settings

WEBHOOK_DELIVERY_DAYS = 7
WINDOW_EVENT_SECONDS = 86_400
AUDIT_DAYS = 365
MIN_DAYS = 2            # the verification limits look back 24 hours
MAX_DAYS = 36_500

# The one column of Rasa's SQL tracker store table the purge needs (rasa.core.tracker_store.SQLTrackerStore).
_RASA_EVENTS = Table("events", MetaData(), Column("id", Integer, primary_key=True), Column("sender_id", String),
                     Column("timestamp", Float))


def purge_accounts(store: AccountStore, cutoff: datetime, now: datetime, verification_ttl: timedelta
                   ) -> Dict[str, int]:
    with store.session() as session:
        counts = {
            "outbox emails": session.execute(
                delete(accounts.OutboxEmail).where(accounts.OutboxEmail.created_at < cutoff)).rowcount,
            "verification challenges": session.execute(delete(accounts.VerificationChallenge).where(
                accounts.VerificationChallenge.created_at < cutoff)).rowcount,
            "verification alerts": session.execute(delete(accounts.VerificationAlert).where(
                accounts.VerificationAlert.created_at < cutoff)).rowcount,
            "expired verifications": session.execute(delete(accounts.VerifiedConversation).where(
                accounts.VerifiedConversation.verified_at <= now - verification_ttl)).rowcount,
            "expired identity tokens": session.execute(delete(accounts.IdentityTokenUse).where(
                accounts.IdentityTokenUse.expires_at <= now)).rowcount,
        }
    return counts


def purge_gateway(store: GatewayStore, cutoff: datetime, now: datetime) -> Dict[str, int]:
    inbox, transcript, conversation = gateway.InboxMessage, gateway.TranscriptEntry, gateway.Conversation
    handoff = gateway.Handoff
    with store.session() as session:
        counts = {
            "transcript entries": session.execute(delete(transcript).where(transcript.created_at < cutoff)).rowcount,
            "inbox messages": session.execute(delete(inbox).where(
                inbox.received_at < cutoff, inbox.status.not_in(gateway.OPEN_STATUSES))).rowcount,
            "closed handoffs": session.execute(delete(handoff).where(handoff.resolved_at < cutoff)).rowcount,
            "suggestion sets": session.execute(delete(gateway.SuggestionSet).where(
                gateway.SuggestionSet.shown_at < cutoff)).rowcount,
            "answer ratings": session.execute(delete(gateway.AnswerFeedback).where(
                gateway.AnswerFeedback.created_at < cutoff)).rowcount,
            "review queue messages": session.execute(delete(gateway.ReviewItem).where(
                gateway.ReviewItem.received_at < cutoff)).rowcount,
            "widget sessions": session.execute(delete(gateway.WidgetSession).where(
                gateway.WidgetSession.last_seen_at < cutoff)).rowcount,
            "expired console sessions": session.execute(delete(gateway.AgentSession).where(
                gateway.AgentSession.expires_at <= now)).rowcount,
            "audit entries": session.execute(delete(gateway.AuditEntry).where(
                gateway.AuditEntry.last_at < now - timedelta(days=AUDIT_DAYS))).rowcount,
            # Platforms redeliver within hours; a week of delivery ids is plenty.
            "webhook delivery ids": session.execute(delete(gateway.WebhookDelivery).where(
                gateway.WebhookDelivery.received_at < now - timedelta(days=WEBHOOK_DELIVERY_DAYS))).rowcount,
            # The longest window a limiter counts over is 15 minutes (the login throttle).
            "rate-limit events": session.execute(delete(gateway.WindowEvent).where(
                gateway.WindowEvent.at < (now - datetime(1970, 1, 1)).total_seconds() - WINDOW_EVENT_SECONDS)
            ).rowcount,
        }
        counts["conversations"] = session.execute(delete(conversation).where(
            conversation.updated_at < cutoff,
            ~exists().where(inbox.conversation_id == conversation.id),
            ~exists().where(handoff.conversation_id == conversation.id),
            ~exists().where(transcript.conversation_id == conversation.id),
        ).execution_options(synchronize_session=False)).rowcount
    return counts


def purge_tracker_store(url: str, cutoff: datetime) -> Dict[str, int]:
    engine = make_engine(url)
    try:
        if not inspect(engine).has_table("events"):
            return {"conversation events": 0}
        cutoff_unix = (cutoff - datetime(1970, 1, 1)).total_seconds()
        with engine.begin() as connection:
            deleted = connection.execute(delete(_RASA_EVENTS).where(_RASA_EVENTS.c.timestamp < cutoff_unix)).rowcount
        return {"conversation events": deleted}
    finally:
        engine.dispose()


def purge(settings: Settings, days: int, now: Optional[datetime] = None) -> Dict[str, int]:
    """Delete what is older than `days`; returns how many rows of each kind went."""
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError(f"keep between {MIN_DAYS} days (the verification limits count the last 24 hours) and "
                         f"{MAX_DAYS} days")
    now = now or now_utc()
    cutoff = now - timedelta(days=days)
    counts = purge_tracker_store(settings.tracker_store_url, cutoff)
    gateway_store = GatewayStore(settings.database_url)
    account_store = AccountStore(settings.database_url)
    try:
        counts.update(purge_gateway(gateway_store, cutoff, now))
        counts.update(purge_accounts(account_store, cutoff, now,
                                     timedelta(minutes=settings.verification_ttl_minutes)))
    finally:
        gateway_store.dispose()
        account_store.engine.dispose()
    return counts


class DailyPurge:
    """For `serve`: run the purge at start and then every 24 hours."""

    INTERVAL_SECONDS = 24 * 3600

    def __init__(self, settings: Settings, report=print):
        self.settings, self.report, self.next_at = settings, report, 0.0

    def tick(self) -> None:
        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + self.INTERVAL_SECONDS
        try:
            counts = purge(self.settings, self.settings.retention_days)
        except Exception as error:  # noqa: BLE001 - a database hiccup must not stop the assistant; next day
            self.report(f"purge failed: {error}")
            return
        deleted = {kind: count for kind, count in counts.items() if count}
        self.report(f"purge (older than {self.settings.retention_days} days): "
                    + (", ".join(f"{count} {kind}" for kind, count in deleted.items()) or "nothing to delete"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot purge",
                                     description="delete personal data older than the retention period")
    parser.add_argument("--older-than", type=int, default=None, metavar="DAYS", help="default: RETENTION_DAYS (90)")
    args = parser.parse_args(argv)
    settings = load_settings()
    days = args.older_than if args.older_than is not None else settings.retention_days
    try:
        counts = purge(settings, days)
    except ValueError as problem:
        print(problem)
        return 2
    print(f"Deleted what was older than {days} days:")
    for kind, count in counts.items():
        print(f"  {count:>7}  {kind}")
    return 0

