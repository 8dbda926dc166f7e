"""The gateway's tables in DATABASE_URL (beside the account store): conversations, the durable inbox, the
transcript the widget's history, the agent console and the reports read (personal data redacted,
bot/privacy/redaction.py), and widget sessions.

The inbox is what makes delivery exactly-once: a message is stored (unique on channel + the channel's message
id) before the webhook is answered; the worker then moves it pending -> answered (Rasa's replies saved) -> done
(every reply delivered, counted one by one in `delivered_count`), so a retry or a restart never asks Rasa twice
and never sends a reply twice. All methods are synchronous; the gateway calls them in a thread.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, aliased

from bot.clock import now_utc
from bot.database import make_engine
from bot.gateway.messages import ROLE_AGENT, ROLE_CUSTOMER, Button, InboundMessage, Reply
from bot.gateway.models import (  # noqa: F401 - the statuses are part of this module's interface
    ANSWERED,
    CLAIM_LEASE,
    DONE,
    OPEN_STATUSES,
    PENDING,
    RATE_LIMITED,
    REJECTED,
    TO_AGENT,
    Conversation,
    Handoff,
    InboxMessage,
    TranscriptEntry,
    WebhookDelivery,
    WidgetSession,
)
from bot.gateway.review import add_to_queue
from bot.nlu.understanding import Understanding
from bot.privacy.redaction import redact
from bot.schema import SchemaGuard

log = logging.getLogger(__name__)

# Message ids of the inbox rows that carry agent replies and console notices. No customer's message id can take
# this form (widget ids are UUIDs, Messenger and X ids come signed from the platforms), and record_inbound
# refuses one that does, so a customer can never pre-claim the key of a reply or notice.
OUTBOUND_PREFIX = "agent:"


def widget_session_key(secret: str) -> str:
    """The stored, shown name of a widget session (the conversation is `widget:<key>`), from the browser's
    secret: a one-way hash, so the secret is never stored nor derivable from what agents and logs see."""
    return hashlib.sha256(f"ksos-widget-session:{secret}".encode()).hexdigest()[:32]


def iso(moment: Optional[datetime]) -> Optional[str]:
    """A naive UTC time as the JSON the widget and the console read: '2026-11-22T12:00:00Z'."""
    return moment.isoformat() + "Z" if moment else None


def open_handoff_of(session: Session, conversation_id: str) -> Optional[Handoff]:
    """The conversation's unresolved handoff (at most one), or None: while there is one, agents have it."""
    return session.scalars(select(Handoff).where(Handoff.conversation_id == conversation_id,
                                                 Handoff.resolved_at.is_(None))).one_or_none()


def open_handoff(session: Session, conversation_id: str, reason: str, now: datetime,
                 language: Optional[str] = None) -> Optional[Handoff]:
    """Open a handoff for the conversation unless one is open already (called in the worker's transaction).
    `language` is the one the assistant speaks with the customer: it becomes the conversation's language."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is not None and language:
        conversation.language = language
    if open_handoff_of(session, conversation_id) is not None:
        return None
    handoff = Handoff(conversation_id=conversation_id, channel=conversation.channel if conversation else "",
                      language=conversation.language if conversation else None, reason=reason,
                      requested_at=now)
    session.add(handoff)
    session.flush()
    return handoff


def queue_outbound(session: Session, conversation: Conversation, client_id: str, reply: Reply,
                    now: datetime) -> None:
    """An inbox row that is already answered: the worker delivers it in the conversation's order, with the
    same retries and exactly-once counting as the assistant's replies."""
    session.add(InboxMessage(
        channel=conversation.channel, message_id=OUTBOUND_PREFIX + client_id, conversation_id=conversation.id,
        text="", payload=None, message_metadata={}, status=ANSWERED, attempts=0, next_attempt_at=now,
        received_at=now, answered_at=now, replies=[reply.to_json()], delivered_count=0,
    ))
    session.flush()


@dataclass(frozen=True)
class InboxRow:
    id: int
    channel: str
    sender_id: str
    conversation_id: str
    message_id: str
    text: str
    payload: Optional[str]
    metadata: Dict[str, Any]
    status: str
    attempts: int
    rasa_sent: bool
    replies: Optional[List[Dict[str, Any]]]
    delivered_count: int
    # The previous attempt broke off mid-work (its replica died, stalled or was restarted): the reply it was
    # sending when it stopped may or may not have reached the customer (ChannelAdapter.already_delivered).
    interrupted: bool = False
    answered_at: Optional[datetime] = None

    @property
    def rasa_text(self) -> str:
        return self.payload or self.text


@dataclass(frozen=True)
class Recorded:
    inbox_id: Optional[int]
    duplicate: bool
    entry: Optional[Dict[str, Any]]           # the customer's transcript entry (None for a duplicate)
    claimed: Optional["InboxRow"] = None      # claimed as it was recorded (record_inbound's `claim`)


def entry_json(entry: TranscriptEntry) -> Dict[str, Any]:
    return {
        "seq": entry.id, "role": entry.role, "text": entry.text, "buttons": list(entry.buttons or []),
        "client_id": entry.client_id, "at": iso(entry.created_at),
        **({"source": entry.source} if entry.source else {}),
    }


def inbox_row(row: InboxMessage, conversation: Optional[Conversation], rasa_sent: bool, interrupted: bool
              ) -> InboxRow:
    """What the worker gets of a message it claimed."""
    return InboxRow(
        id=row.id, channel=row.channel, sender_id=conversation.sender_id if conversation else "",
        conversation_id=row.conversation_id, message_id=row.message_id, text=row.text, payload=row.payload,
        metadata=dict(row.message_metadata or {}), status=row.status, attempts=row.attempts,
        rasa_sent=rasa_sent, replies=row.replies, delivered_count=row.delivered_count,
        interrupted=interrupted, answered_at=row.answered_at,
    )


class LeaseLost(RuntimeError):
    """Another replica holds the message now (this one's lease ran out): whatever this one was doing with it
    stops, and nothing of it is written."""


class GatewayStore:
    """The gateway's tables. `replica` names this gateway process among those sharing the database (its claims
    are leases taken in its name); `lease` is how long a claim lasts unless renewed."""

    def __init__(self, url: str, replica: str = "gateway", lease: timedelta = CLAIM_LEASE):
        self.url, self.replica, self.lease = url, replica, lease
        self.engine = make_engine(url)
        self.postgres = self.engine.url.get_backend_name() == "postgresql"
        SchemaGuard(self.engine).ensure()
        self._replica_lock: Optional[Connection] = None

    def dispose(self) -> None:
        if self._replica_lock is not None:
            # Unlocked here, not left to the server: a closed socket's backend lets its locks go a moment later,
            # so a successor started at once could find the name still taken.
            try:
                self._replica_lock.execute(text("SELECT pg_advisory_unlock_all()"))
                self._replica_lock.commit()
            except DBAPIError:      # the connection is gone, and its locks with it
                log.warning("replica %s: the connection holding its name was already closed", self.replica)
            self._replica_lock.close()
            self._replica_lock = None
        self.engine.dispose()

    def hold_replica_name(self) -> bool:
        """PostgreSQL: take this replica's name for as long as the process lives (a session advisory lock on a
        connection of its own); False when a live process already has it. Two processes with one name would
        take each other's claims for their own. SQLite (one process per database): always True."""
        if not self.postgres:
            return True
        if self._replica_lock is None:
            connection = self.engine.connect()
            # Advisory locks are database-wide: the name is scoped by the schema, so deployments (or tests)
            # sharing one database in separate schemas never take each other's replica names.
            database, schema = connection.execute(text("SELECT current_database(), current_schema()")).one()
            scoped = f"ksos-replica:{database}:{schema}:{self.replica}"
            key = int.from_bytes(hashlib.sha256(scoped.encode()).digest()[:8], "big", signed=True)
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
            connection.commit()
            if not taken:
                connection.close()
                return False
            self._replica_lock = connection
        return True

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, future=True, expire_on_commit=False) as session:
            with session.begin():
                yield session

    # --- inbound ----------------------------------------------------------------------------------------------

    def insert_ignoring_conflicts(self, model: Any, index_elements: List[str], **values: Any) -> Any:
        """INSERT … ON CONFLICT (index_elements) DO NOTHING for this database's dialect: a row two writers may
        add at once is added once."""
        insert = postgresql_insert if self.postgres else sqlite_insert
        return insert(model).values(**values).on_conflict_do_nothing(index_elements=index_elements)

    def record_inbound(self, message: InboundMessage, status: str = PENDING, language: Optional[str] = None,
                       now: Optional[datetime] = None, language_hint: Optional[str] = None,
                       claim: bool = False) -> Recorded:
        """Store one inbound message and its transcript entry, once: a second message with the same channel and
        message id is reported as a duplicate and changes nothing. `language` is the one the message is clearly
        written in (it becomes the conversation's language); `language_hint` (the channel's, e.g. the widget's
        UI language) only sets the language of a conversation that has none yet.

        `claim` (the worker has room for it): a message to be answered is claimed in the same transaction, as
        `claim` would, when it is its conversation's only open message and no agent has the conversation; the
        worker then starts on it without looking for it (Recorded.claimed)."""
        now = now or now_utc()
        if message.message_id.startswith(OUTBOUND_PREFIX):
            raise ValueError("an inbound message id may not take the form of an outbound one")
        try:
            with self.session() as session:
                # Made if missing without a conflict between two first messages recorded at once, then locked
                # (PostgreSQL): one conversation's messages are recorded one after the other, so "its only open
                # message" below holds across replicas.
                session.execute(self.insert_ignoring_conflicts(
                    Conversation, ["id"], id=message.conversation_id, channel=message.channel,
                    sender_id=message.sender_id, created_at=now, updated_at=now))
                conversation = session.get(Conversation, message.conversation_id, with_for_update=self.postgres)
                conversation.updated_at = now
                take = claim and status == PENDING and not session.scalar(
                    select(InboxMessage.id).where(InboxMessage.conversation_id == message.conversation_id,
                                                  InboxMessage.status.in_(OPEN_STATUSES)).limit(1)
                ) and open_handoff_of(session, message.conversation_id) is None
                if language or (language_hint and not conversation.language):
                    conversation.language = language or language_hint
                # Only a message still to be answered keeps the customer's exact words (Rasa needs them); what
                # is kept afterwards, and the transcript agents and reports read, has personal data redacted.
                row = InboxMessage(
                    channel=message.channel, message_id=message.message_id, conversation_id=message.conversation_id,
                    text=message.text if status == PENDING else redact(message.text), payload=message.payload,
                    # Metadata (the language hint, the client's address) serves Rasa's turn only.
                    message_metadata=dict(message.metadata) if status == PENDING else {},
                    status=status, attempts=0, next_attempt_at=now, received_at=now, delivered_count=0,
                )
                if take:
                    row.claimed_until, row.claimed_by, row.rasa_sent_at = now + self.lease, self.replica, now
                session.add(row)
                session.flush()
                entry = TranscriptEntry(
                    conversation_id=message.conversation_id, role=ROLE_CUSTOMER, text=redact(message.text or ""),
                    buttons=[], client_id=message.message_id, inbox_id=row.id, created_at=now,
                )
                session.add(entry)
                session.flush()
                claimed = inbox_row(row, conversation, rasa_sent=False, interrupted=False) if take else None
                return Recorded(row.id, False, entry_json(entry), claimed)
        except IntegrityError:
            return Recorded(None, True, None)

    def conversation_language(self, conversation_id: str) -> Optional[str]:
        with self.session() as session:
            conversation = session.get(Conversation, conversation_id)
            return conversation.language if conversation else None

    # --- the worker -------------------------------------------------------------------------------------------

    def due_messages(self, channels: List[str], now: Optional[datetime] = None, limit: int = 500
                     ) -> List[Tuple[int, str]]:
        """For each conversation with open messages, its oldest open message if it is due and not claimed. A
        conversation's later messages wait for the earlier ones, so replies keep the customers' order."""
        now = now or now_utc()
        with self.session() as session:
            rows = session.execute(
                select(InboxMessage.id, InboxMessage.conversation_id, InboxMessage.next_attempt_at,
                       InboxMessage.claimed_until)
                .where(InboxMessage.status.in_(OPEN_STATUSES), InboxMessage.channel.in_(channels))
                .order_by(InboxMessage.id).limit(limit)
            ).all()
        seen, due = set(), []
        for row_id, conversation, next_attempt_at, claimed_until in rows:
            if conversation in seen:
                continue
            seen.add(conversation)
            if next_attempt_at <= now and (claimed_until is None or claimed_until < now):
                due.append((row_id, conversation))
        return due

    def claim(self, row_id: int, now: Optional[datetime] = None) -> Optional[InboxRow]:
        """Take a message for processing: a lease in this replica's name, if the message is still open, unclaimed
        (or its lease ran out) and the oldest open one of its conversation, so that one conversation is worked
        on by one replica at a time, in order. PostgreSQL skips a row another replica is claiming at this very
        moment (SELECT ... FOR UPDATE SKIP LOCKED) instead of waiting for it."""
        now = now or now_utc()
        candidate = aliased(InboxMessage, name="candidate")
        with self.session() as session:
            older = select(InboxMessage.id).where(
                InboxMessage.conversation_id == candidate.conversation_id, InboxMessage.status.in_(OPEN_STATUSES),
                InboxMessage.id < candidate.id).exists()
            row = session.scalars(
                select(candidate).where(candidate.id == row_id, candidate.status.in_(OPEN_STATUSES),
                                        (candidate.claimed_until.is_(None)) | (candidate.claimed_until < now),
                                        ~older)
                .with_for_update(skip_locked=True, of=candidate)
            ).one_or_none()
            if row is None:
                return None
            interrupted = row.claimed_by is not None          # finished or retried claims end with None
            if self.postgres:                                 # the row is locked: set the claim on it
                row.claimed_until, row.claimed_by = now + self.lease, self.replica
            else:
                # SQLite has no row locks: the conditional update is what makes two claims of one row exclusive.
                taken = session.execute(
                    update(InboxMessage).where(InboxMessage.id == row_id,
                                               (InboxMessage.claimed_until.is_(None))
                                               | (InboxMessage.claimed_until < now))
                    .values(claimed_until=now + self.lease, claimed_by=self.replica)
                    .execution_options(synchronize_session=False)).rowcount
                if not taken:
                    return None
                session.refresh(row)
            conversation = session.get(Conversation, row.conversation_id)
            rasa_sent = row.rasa_sent_at is not None
            if row.status == PENDING and not rasa_sent and open_handoff_of(session, row.conversation_id):
                # The agents have this conversation: the message is kept for them (it is in the transcript
                # already) and the assistant stays silent.
                row.text = redact(row.text)
                self._finish(row, now, TO_AGENT)
                return None
            if row.status == PENDING and not rasa_sent:
                # From here on the message may reach Rasa: should this attempt break off, the next one looks in
                # Rasa's tracker before sending it again (one transaction fewer than marking it separately).
                row.rasa_sent_at = now
            return inbox_row(row, conversation, rasa_sent, interrupted)

    def renew_leases(self, row_ids: Sequence[int], now: Optional[datetime] = None) -> Set[int]:
        """Extend this replica's leases on the messages it is working on; returns the ids still its own (a
        missing one was taken over by another replica after its lease ran out)."""
        if not row_ids:
            return set()
        now = now or now_utc()
        with self.session() as session:
            session.execute(update(InboxMessage).where(
                InboxMessage.id.in_(list(row_ids)), InboxMessage.claimed_by == self.replica,
                InboxMessage.status.in_(OPEN_STATUSES)).values(claimed_until=now + self.lease))
            return set(session.scalars(select(InboxMessage.id).where(
                InboxMessage.id.in_(list(row_ids)), InboxMessage.claimed_by == self.replica)))

    def _owned(self, session: Session, row_id: int) -> InboxMessage:
        """The message, if this replica still holds its claim (else LeaseLost): the fence on every write a
        replica makes while working on a message."""
        row = session.get(InboxMessage, row_id, with_for_update=self.postgres)
        if row is None or row.claimed_by != self.replica:
            raise LeaseLost(f"inbox {row_id} is claimed by {row.claimed_by if row else 'nobody'!s} now")
        return row

    def save_replies(self, row_id: int, replies: List[Reply], handoff_reason: Optional[str] = None,
                     handoff_language: Optional[str] = None, now: Optional[datetime] = None,
                     delivered: bool = False, feedback_prompt: Optional[Callable[[Optional[str]], Reply]] = None,
                     understanding: Optional[Understanding] = None, review: Sequence[str] = ()
                     ) -> List[Dict[str, Any]]:
        """Rasa answered: keep its replies (delivery can now be retried without asking Rasa again) and end any
        outage notice of the conversation. When the answer hands the conversation over to the agents
        (`handoff_reason`), the handoff opens in the same transaction. `feedback_prompt` (a reply in the
        conversation's language): asked after these replies if the conversation was never asked, appended to
        `replies` and saved with them, so that a replica taking the message over delivers the same replies.
        `delivered` (a channel whose transcript is its delivery): the replies are recorded as delivered too, and
        the message is done; returns their transcript entries. `understanding`: what Rasa took the message for,
        kept with it; `review`: why it goes to the agents' review queue (bot/gateway/review.py), if it does."""
        now = now or now_utc()
        with self.session() as session:
            row = self._owned(session, row_id)
            if handoff_reason:
                open_handoff(session, row.conversation_id, handoff_reason, now, handoff_language)
            row.text = redact(row.text)
            row.status = ANSWERED
            row.answered_at = now
            row.attempts = 0
            row.last_error = None
            row.understanding = understanding.to_json() if understanding is not None else None
            conversation = session.get(Conversation, row.conversation_id)
            add_to_queue(session, row, review, conversation.language if conversation else None)
            if conversation is not None:
                conversation.hold_notice_at = None
                if feedback_prompt is not None and conversation.feedback_asked_at is None:
                    conversation.feedback_asked_at = now
                    replies.append(feedback_prompt(conversation.language))
            row.replies = [reply.to_json() for reply in replies]
            if not delivered:
                return []
            # Each entry says the conversation's language, so the widget's own texts can follow it.
            language = conversation.language if conversation is not None else None
            entries = [{**entry_json(self._add_transcript_entry(session, row.conversation_id, reply, now,
                                                                inbox_id=row_id)), "language": language}
                       for reply in replies]
            row.delivered_count = len(replies)
            self._finish(row, now)
            return entries

    def schedule_retry(self, row_id: int, delay_seconds: float, error: str, reached_rasa: bool = True,
                       now: Optional[datetime] = None) -> int:
        """Try again later; returns the number of failed attempts so far."""
        now = now or now_utc()
        with self.session() as session:
            row = self._owned(session, row_id)
            row.attempts += 1
            row.next_attempt_at = now + timedelta(seconds=delay_seconds)
            row.claimed_until, row.claimed_by = None, None
            row.last_error = error[:300]
            if not reached_rasa and row.status == PENDING:
                row.rasa_sent_at = None
            return row.attempts

    def release_claims(self) -> int:
        """On start: the messages this replica had claimed before it stopped are free again at once (another
        replica's claims run out with their leases). SQLite has one gateway process: every claim is its own. The
        claim's owner stays, marking the next attempt as interrupted."""
        with self.session() as session:
            mine = (InboxMessage.claimed_by == self.replica if self.postgres
                    else InboxMessage.claimed_until.is_not(None))
            return session.execute(
                update(InboxMessage).where(mine, InboxMessage.status.in_(OPEN_STATUSES)).values(claimed_until=None)
            ).rowcount

    def record_delivery(self, row_id: int, index: int, reply: Reply, now: Optional[datetime] = None
                        ) -> Dict[str, Any]:
        """Reply number `index` of a message reached the customer: add it to the transcript and count it. After
        the last one the message is done and its metadata (which may hold an identity token) is dropped."""
        now = now or now_utc()
        with self.session() as session:
            row = self._owned(session, row_id)
            # An agent's reply keeps the console's client id, so the console can match it to what it sent.
            client_id = row.message_id[len(OUTBOUND_PREFIX):] if reply.role == ROLE_AGENT else None
            entry = self._add_transcript_entry(session, row.conversation_id, reply, now, inbox_id=row_id,
                                               client_id=client_id)
            row.delivered_count = index + 1
            if row.delivered_count >= len(row.replies or []):
                self._finish(row, now)
            return entry_json(entry)

    def finish(self, row_id: int, now: Optional[datetime] = None) -> None:
        with self.session() as session:
            self._finish(self._owned(session, row_id), now or now_utc())

    @staticmethod
    def _finish(row: InboxMessage, now: datetime, status: str = DONE) -> None:
        row.status = status
        row.done_at = now
        row.claimed_until, row.claimed_by = None, None
        row.message_metadata = {}

    def record_notice(self, conversation_id: str, reply: Reply, now: Optional[datetime] = None) -> Dict[str, Any]:
        with self.session() as session:
            return entry_json(self._add_transcript_entry(session, conversation_id, reply, now or now_utc()))

    @staticmethod
    def _add_transcript_entry(session: Session, conversation_id: str, reply: Reply, now: datetime,
                              inbox_id: Optional[int] = None, client_id: Optional[str] = None) -> TranscriptEntry:
        entry = TranscriptEntry(conversation_id=conversation_id, role=reply.role, text=redact(reply.text),
                                buttons=reply.to_json()["buttons"], inbox_id=inbox_id, client_id=client_id,
                                created_at=now, source=reply.source)
        session.add(entry)
        session.flush()
        return entry

    def offered_payloads(self, conversation_id: str, limit: int = 200) -> Set[str]:
        """The button payloads the conversation's latest `limit` transcript entries offered the customer: only
        these (and a channel's own controls) are taken as payloads; anything else a customer sends starting with
        "/" is words, not a command to the assistant."""
        with self.session() as session:
            rows = session.scalars(
                select(TranscriptEntry.buttons).where(TranscriptEntry.conversation_id == conversation_id,
                                                      TranscriptEntry.role != ROLE_CUSTOMER)
                .order_by(TranscriptEntry.id.desc()).limit(limit)).all()
        return {str(button["payload"]) for buttons in rows for button in buttons or []
                if isinstance(button, dict) and isinstance(button.get("payload"), str)}

    def last_offered_buttons(self, conversation_id: str) -> List[Button]:
        """The buttons of the latest message the customer was sent (by the assistant, an agent or the gateway)
        in this conversation: the options a reply of "1", "2" … refers to. Empty when it offered none."""
        with self.session() as session:
            buttons = session.scalars(
                select(TranscriptEntry.buttons).where(TranscriptEntry.conversation_id == conversation_id,
                                                      TranscriptEntry.role != ROLE_CUSTOMER)
                .order_by(TranscriptEntry.id.desc()).limit(1)).first()
        return [Button(str(b.get("title", "")), b["payload"]) for b in buttons or []
                if isinstance(b, dict) and isinstance(b.get("payload"), str)]

    def pending_count(self) -> int:
        """Messages received and not yet answered (shown by /healthz)."""
        with self.session() as session:
            return session.scalar(select(func.count()).select_from(InboxMessage)
                                  .where(InboxMessage.status.in_(OPEN_STATUSES))) or 0

    def delivery_seen(self, channel: str, delivery_id: str) -> bool:
        """Whether a platform delivery (X's event_uuid) was already handled: a redelivery."""
        with self.session() as session:
            return session.get(WebhookDelivery, (channel, delivery_id[:100])) is not None

    def remember_delivery(self, channel: str, delivery_id: str, now: Optional[datetime] = None) -> None:
        """Record a delivery as handled, once its messages are in the inbox."""
        try:
            with self.session() as session:
                session.add(WebhookDelivery(channel=channel, delivery_id=delivery_id[:100],
                                            received_at=now or now_utc()))
        except IntegrityError:
            pass                                     # a concurrent redelivery recorded it first

    def take_hold_notice(self, conversation_id: str, now: Optional[datetime] = None) -> bool:
        """True once per outage of a conversation: the caller then sends the "please hold on" notice."""
        with self.session() as session:
            taken = session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id, Conversation.hold_notice_at.is_(None))
                .values(hold_notice_at=now or now_utc())
            ).rowcount
            return bool(taken)

    def inbox_status(self, channel: str, message_id: str) -> Optional[Dict[str, Any]]:
        with self.session() as session:
            row = session.scalars(select(InboxMessage).where(
                InboxMessage.channel == channel, InboxMessage.message_id == message_id)).one_or_none()
            if row is None:
                return None
            return {"status": row.status, "attempts": row.attempts, "delivered_count": row.delivered_count}

    # --- widget sessions and history --------------------------------------------------------------------------

    def widget_session(self, secret: Optional[str], now: Optional[datetime] = None, create: bool = True
                       ) -> Optional[Tuple[str, str]]:
        """The widget's session: (the secret the browser keeps, the key the conversation is named by). The secret
        the browser remembers, if the gateway issued it, else a new one (None instead, when not `create`). Only the
        key is stored and shown (to agents, in logs, as `widget:<key>`): knowing a conversation's id does not let
        anyone open its session."""
        now = now or now_utc()
        with self.session() as session:
            if secret:
                known = session.get(WidgetSession, widget_session_key(secret))
                if known is not None:
                    known.last_seen_at = now
                    return secret, known.id
            if not create:
                return None
            secret = secrets.token_urlsafe(24)
            key = widget_session_key(secret)
            session.add(WidgetSession(id=key, created_at=now, last_seen_at=now))
            return secret, key

    def history(self, conversation_id: str, after: int = 0, limit: int = 200, until: Optional[datetime] = None,
                also: Optional[int] = None) -> List[Dict[str, Any]]:
        """Transcript entries after `after` (the widget's highest seq), oldest first, at most the last `limit`
        (and, when `until` is given, none later than it but the entry `also`)."""
        query = select(TranscriptEntry).where(TranscriptEntry.conversation_id == conversation_id,
                                              TranscriptEntry.id > after)
        if until is not None:
            query = query.where((TranscriptEntry.created_at <= until) | (TranscriptEntry.id == (also or 0)))
        with self.session() as session:
            entries = session.scalars(query.order_by(TranscriptEntry.id.desc()).limit(limit)).all()
            return [entry_json(entry) for entry in reversed(entries)]
