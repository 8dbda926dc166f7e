"""Handoffs to human agents, the agents themselves, their console sessions and the agent-assist suggestion sets.

A conversation is handed over when the assistant says so (its handoff message, see bot/dialogue/handoff.py): the worker
opens a Handoff while saving Rasa's replies. From then on the customer's messages are kept for the agents and
not sent to Rasa (GatewayStore.claim). An agent opens the conversation (taking it when nobody has it), replies
(queued in the inbox like the assistant's replies, so delivery is retried and never doubled) and resolves it,
after which the assistant answers again. All methods are synchronous; the gateway calls them in a thread.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.clock import now_utc
from bot.gateway.messages import ROLE_AGENT, ROLE_CUSTOMER, ROLE_NOTICE, Reply
from bot.gateway.models import (
    EDITED,
    IGNORED,
    SHOWN,
    USED,
    Agent,
    AgentSession,
    AuditEntry,
    Conversation,
    Handoff,
    InboxMessage,
    SuggestionSet,
    TranscriptEntry,
)
from bot.gateway.notices import notice
from bot.gateway.store import OUTBOUND_PREFIX, GatewayStore, entry_json, iso, open_handoff_of, queue_outbound

SESSION_IDLE = timedelta(hours=8)
SESSION_MAX = timedelta(hours=24)

# Outcomes of an agent action, each with what the console shows the agent.
QUEUED, DUPLICATE, RESOLVED, NOT_OWNER, NOT_FOUND = "queued", "duplicate", "resolved", "not_owner", "not_found"
MESSAGES = {
    RESOLVED: "This conversation has already been resolved and handed back to the assistant. Your reply was not "
              "sent.",
    NOT_OWNER: "Another agent is handling this conversation. Your reply was not sent.",
    NOT_FOUND: "There is no such conversation, or it was not handed over to you.",
}


def same_text(a: str, b: str) -> bool:
    """Equal apart from whitespace: a suggestion sent with only line breaks changed still counts as used."""
    return " ".join(a.split()) == " ".join(b.split())


@dataclass(frozen=True)
class AgentIdentity:
    id: int
    name: str                      # the login: agents and logs see it, customers never do
    display_name: str = ""         # what customers see ("a Unifi agent" when empty)

    def to_json(self) -> Dict[str, Any]:
        return {"id": self.id, "name": self.name, "display_name": self.display_name}

    @classmethod
    def of(cls, agent: Agent) -> "AgentIdentity":
        return cls(agent.id, agent.name, agent.display_name or "")


def joined_notice(agent: AgentIdentity, language: Optional[str]) -> str:
    """"Aisyah from Unifi has joined the chat" with the agent's display name, never the login name."""
    if agent.display_name:
        return notice("agent_joined", language, agent=agent.display_name)
    return notice("agent_joined_unnamed", language)


# What agents do with a conversation, as the audit log records it.
AUDIT_OPEN, AUDIT_VIEW, AUDIT_SUGGEST, AUDIT_REPLY, AUDIT_RESOLVE = "open", "view", "suggest", "reply", "resolve"
AUDIT_COALESCE = timedelta(minutes=1)


@dataclass(frozen=True)
class ConsoleSession:
    agent: AgentIdentity
    csrf_token: str


class HandoffStore:
    def __init__(self, store: GatewayStore):
        self.store = store

    # --- agents and console sessions --------------------------------------------------------------------------

    def add_agent(self, name: str, password_hash: str, now: Optional[datetime] = None,
                  display_name: str = "") -> AgentIdentity:
        """Create an agent; raises ValueError if the name is taken."""
        try:
            with self.store.session() as session:
                agent = Agent(name=name, display_name=display_name, password_hash=password_hash,
                              created_at=now or now_utc())
                session.add(agent)
                session.flush()
                return AgentIdentity.of(agent)
        except IntegrityError:
            raise ValueError(f"an agent called {name!r} already exists") from None

    def set_password(self, name: str, password_hash: str) -> bool:
        with self.store.session() as session:
            changed = session.execute(update(Agent).where(Agent.name == name)
                                      .values(password_hash=password_hash)).rowcount
            agent = session.scalars(select(Agent).where(Agent.name == name)).one_or_none()
            if agent is not None:      # a new password ends every session of the agent
                session.query(AgentSession).filter(AgentSession.agent_id == agent.id).delete()
            return bool(changed)

    def set_display_name(self, name: str, display_name: str) -> bool:
        with self.store.session() as session:
            return bool(session.execute(update(Agent).where(Agent.name == name)
                                        .values(display_name=display_name)).rowcount)

    def disable_agent(self, name: str, now: Optional[datetime] = None) -> bool:
        with self.store.session() as session:
            agent = session.scalars(select(Agent).where(Agent.name == name)).one_or_none()
            if agent is None:
                return False
            agent.disabled_at = agent.disabled_at or now or now_utc()
            session.query(AgentSession).filter(AgentSession.agent_id == agent.id).delete()
            return True

    def list_agents(self) -> List[Dict[str, Any]]:
        with self.store.session() as session:
            return [{"id": a.id, "name": a.name, "display_name": a.display_name or "", "created_at": iso(a.created_at),
                     "disabled": a.disabled_at is not None}
                    for a in session.scalars(select(Agent).order_by(Agent.name))]

    def password_hash(self, name: str) -> Optional[Tuple[AgentIdentity, str]]:
        """The enabled agent called `name` and their stored password hash."""
        with self.store.session() as session:
            agent = session.scalars(select(Agent).where(Agent.name == name, Agent.disabled_at.is_(None))
                                    ).one_or_none()
            return (AgentIdentity.of(agent), agent.password_hash) if agent else None

    @staticmethod
    def _token_hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def create_session(self, agent: AgentIdentity, now: Optional[datetime] = None) -> Tuple[str, str]:
        """A new console session: (cookie token, CSRF token). Only the token's hash is stored."""
        now = now or now_utc()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        with self.store.session() as session:
            session.add(AgentSession(token_hash=self._token_hash(token), agent_id=agent.id, csrf_token=csrf,
                                     created_at=now, last_seen_at=now, expires_at=now + SESSION_MAX))
        return token, csrf

    def session_for(self, token: Optional[str], now: Optional[datetime] = None) -> Optional[ConsoleSession]:
        """The live session of a cookie token (idle for less than 8 hours, younger than 24), or None."""
        if not token or len(token) > 200:
            return None
        now = now or now_utc()
        with self.store.session() as session:
            row = session.get(AgentSession, self._token_hash(token))
            if row is None:
                return None
            agent = session.get(Agent, row.agent_id)
            if agent is None or agent.disabled_at is not None or row.expires_at <= now or \
                    row.last_seen_at + SESSION_IDLE <= now:
                session.delete(row)
                return None
            row.last_seen_at = now
            return ConsoleSession(AgentIdentity.of(agent), row.csrf_token)

    def end_session(self, token: Optional[str]) -> None:
        if token:
            with self.store.session() as session:
                session.query(AgentSession).filter(AgentSession.token_hash == self._token_hash(token)).delete()

    # --- handoffs ---------------------------------------------------------------------------------------------

    @staticmethod
    def _latest(session: Session, conversation_id: str) -> Optional[Handoff]:
        return session.scalars(select(Handoff).where(Handoff.conversation_id == conversation_id)
                               .order_by(Handoff.id.desc()).limit(1)).one_or_none()

    @staticmethod
    def _agent_names(session: Session, ids: Sequence[Optional[int]]) -> Dict[int, str]:
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return {}
        return dict(session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(wanted))).all())

    def queue(self, agent_id: int, now: Optional[datetime] = None) -> List[Dict[str, Any]]:
        """The open handoffs, oldest first, with what an agent needs to pick one."""
        now = now or now_utc()
        with self.store.session() as session:
            handoffs = session.scalars(select(Handoff).where(Handoff.resolved_at.is_(None))
                                       .order_by(Handoff.requested_at, Handoff.id)).all()
            names = self._agent_names(session, [h.agent_id for h in handoffs])
            items = []
            for handoff in handoffs:
                conversation = session.get(Conversation, handoff.conversation_id)
                last = session.scalars(
                    select(TranscriptEntry.text).where(TranscriptEntry.conversation_id == handoff.conversation_id,
                                                       TranscriptEntry.role == ROLE_CUSTOMER)
                    .order_by(TranscriptEntry.id.desc()).limit(1)).one_or_none()
                items.append({
                    "conversation_id": handoff.conversation_id, "channel": handoff.channel,
                    "language": (conversation.language if conversation else None) or handoff.language or "en",
                    "state": "assigned" if handoff.agent_id else "waiting",
                    "agent": names.get(handoff.agent_id), "mine": handoff.agent_id == agent_id,
                    "reason": handoff.reason, "requested_at": iso(handoff.requested_at),
                    "waiting_seconds": max(0, int((now - handoff.requested_at).total_seconds())),
                    "last_customer_text": last,
                })
            return items

    @staticmethod
    def _readable_until(session: Session, conversation_id: str, agent_id: int
                        ) -> Tuple[bool, Optional[datetime], Optional[int]]:
        """Whether the agent may read the conversation, up to when, and the transcript entry of their hand-back
        notice (delivered just after that moment, and still theirs to see). Agents read only what was handed over
        to them: a conversation with an open handoff (the queue) wholly; one they handled, closed since, up to the
        moment they handed it back — what the customer and the assistant said afterwards (a verification, their
        account) is not theirs to read. (False, None, None) for every other conversation."""
        if open_handoff_of(session, conversation_id) is not None:
            return True, None, None
        closed = session.scalars(select(Handoff).where(
            Handoff.conversation_id == conversation_id, Handoff.resolved_at.is_not(None),
            (Handoff.agent_id == agent_id) | (Handoff.resolved_by == agent_id),
        ).order_by(Handoff.resolved_at.desc(), Handoff.id.desc()).limit(1)).first()
        if closed is None:
            return False, None, None
        notice_entry = session.scalar(select(TranscriptEntry.id).join(
            InboxMessage, InboxMessage.id == TranscriptEntry.inbox_id).where(
            InboxMessage.conversation_id == conversation_id,
            InboxMessage.message_id == f"{OUTBOUND_PREFIX}handed-back:{closed.id}"))
        return True, closed.resolved_at, notice_entry

    def audit(self, session: Session, agent_id: int, action: str, conversation_id: str, now: datetime) -> None:
        """Record that an agent accessed a conversation (a repeat of the same read within a minute is counted on
        the previous row)."""
        if action in (AUDIT_VIEW, AUDIT_SUGGEST):
            recent = session.scalars(select(AuditEntry).where(
                AuditEntry.agent_id == agent_id, AuditEntry.action == action,
                AuditEntry.conversation_id == conversation_id, AuditEntry.last_at > now - AUDIT_COALESCE,
            ).order_by(AuditEntry.id.desc()).limit(1)).first()
            if recent is not None:
                recent.count += 1
                recent.last_at = now
                return
        session.add(AuditEntry(agent_id=agent_id, action=action, conversation_id=conversation_id, at=now,
                               last_at=now, count=1))

    def audit_log(self, conversation_id: Optional[str] = None, limit: int = 200) -> List[Dict[str, Any]]:
        """The latest audit entries (of one conversation), newest first, with the agents' login names."""
        with self.store.session() as session:
            query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
            if conversation_id is not None:
                query = query.where(AuditEntry.conversation_id == conversation_id)
            entries = session.scalars(query).all()
            names = self._agent_names(session, [entry.agent_id for entry in entries])
            return [{"agent": names.get(entry.agent_id), "action": entry.action,
                     "conversation_id": entry.conversation_id, "at": iso(entry.at), "last_at": iso(entry.last_at),
                     "count": entry.count} for entry in entries]

    def _view(self, session: Session, conversation_id: str, agent_id: int) -> Optional[Dict[str, Any]]:
        conversation = session.get(Conversation, conversation_id)
        readable, until, hand_back_seq = (self._readable_until(session, conversation_id, agent_id) if conversation
                                          else (False, None, None))
        if not readable:
            return None
        handoff = open_handoff_of(session, conversation_id)
        shown = handoff or self._latest(session, conversation_id)
        names = self._agent_names(session, [shown.agent_id if shown else None])
        if handoff is None:
            state = "resolved" if shown is not None else "bot"
        else:
            state = "assigned" if handoff.agent_id else "waiting"
        return {
            "conversation_id": conversation_id, "channel": conversation.channel,
            "language": conversation.language or "en", "state": state,
            "agent": names.get(shown.agent_id) if shown else None,
            "mine": bool(handoff and handoff.agent_id == agent_id),
            "handoff_id": handoff.id if handoff else None,
            "requested_at": iso(shown.requested_at) if shown else None,
            "readable_until": iso(until),          # None: handed over now; else the agent's view ends there
            "hand_back_seq": hand_back_seq,        # ... with the hand-back notice itself (once delivered)
        }

    def view(self, conversation_id: str, agent_id: int, action: str = AUDIT_VIEW,
             now: Optional[datetime] = None) -> Optional[Dict[str, Any]]:
        """What the console shows of a conversation the agent may read (None: no such conversation, or not one
        handed over to them); the read is audit-logged as `action`."""
        with self.store.session() as session:
            view = self._view(session, conversation_id, agent_id)
            if view is not None:
                self.audit(session, agent_id, action, conversation_id, now or now_utc())
            return view

    def take(self, conversation_id: str, agent: AgentIdentity, now: Optional[datetime] = None
             ) -> Tuple[Optional[Dict[str, Any]], bool]:
        """Open a conversation in the console: the agent takes its open handoff if nobody has it. Returns (the
        conversation's view, whether the agent has just taken it). Two agents opening it at once: one update
        wins, the other gets a read-only view."""
        now = now or now_utc()
        with self.store.session() as session:
            taken = session.execute(
                update(Handoff).where(Handoff.conversation_id == conversation_id, Handoff.resolved_at.is_(None),
                                      Handoff.agent_id.is_(None))
                .values(agent_id=agent.id, assigned_at=now)).rowcount
            handoff = open_handoff_of(session, conversation_id) if taken else None
            if handoff is not None:
                conversation = session.get(Conversation, conversation_id)
                queue_outbound(session, conversation, f"joined:{handoff.id}",
                               Reply(joined_notice(agent, conversation.language), role=ROLE_NOTICE), now)
            view = self._view(session, conversation_id, agent.id)
            if view is not None:
                self.audit(session, agent.id, AUDIT_OPEN, conversation_id, now)
            return view, bool(taken)

    def reply(self, conversation_id: str, agent: AgentIdentity, text: str, client_id: str,
              suggestion: Optional[Tuple[int, int]] = None, now: Optional[datetime] = None) -> str:
        """Queue an agent's reply for delivery (QUEUED; DUPLICATE for a client id already sent), or refuse it:
        RESOLVED, NOT_OWNER, NOT_FOUND. `suggestion` = (set id, index) of the suggestion the reply started from."""
        now = now or now_utc()
        try:
            with self.store.session() as session:
                conversation = session.get(Conversation, conversation_id)
                if conversation is None:
                    return NOT_FOUND
                if self._outbound_exists(session, conversation.channel, client_id):
                    return DUPLICATE
                handoff = open_handoff_of(session, conversation_id)
                if handoff is None:
                    return RESOLVED
                if handoff.agent_id != agent.id:
                    return NOT_OWNER
                queue_outbound(session, conversation, client_id, Reply(text, role=ROLE_AGENT), now)
                self.audit(session, agent.id, AUDIT_REPLY, conversation_id, now)
                handoff.first_reply_at = handoff.first_reply_at or now
                self._settle_suggestions(session, conversation_id, suggestion, text, now)
                return QUEUED
        except IntegrityError:       # the same client id sent twice at the same moment
            return DUPLICATE

    def resolve(self, conversation_id: str, agent: AgentIdentity, now: Optional[datetime] = None) -> str:
        """Hand the conversation back to the assistant (RESOLVED), or NOT_FOUND / NOT_OWNER / "already" (a
        handoff that is no longer open). An agent may resolve a waiting handoff nobody has taken."""
        now = now or now_utc()
        with self.store.session() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                return NOT_FOUND
            handoff = open_handoff_of(session, conversation_id)
            if handoff is None:
                return "already"
            if handoff.agent_id not in (None, agent.id):
                return NOT_OWNER
            closed = session.execute(update(Handoff).where(Handoff.id == handoff.id, Handoff.resolved_at.is_(None))
                                     .values(resolved_at=now, resolved_by=agent.id,
                                             agent_id=handoff.agent_id or agent.id,
                                             assigned_at=handoff.assigned_at or now)).rowcount
            if not closed:
                return "already"
            self.audit(session, agent.id, AUDIT_RESOLVE, conversation_id, now)
            queue_outbound(session, conversation, f"handed-back:{handoff.id}",
                                 Reply(notice("handed_back", conversation.language), role=ROLE_NOTICE), now)
            self._settle_suggestions(session, conversation_id, None, "", now)
            return RESOLVED

    def expire_waiting(self, wait: timedelta, now: Optional[datetime] = None) -> List[str]:
        """Hand back the handoffs no agent has taken within `wait`: the customer is told no agent is free and
        where else to reach a person (FAQ 11). Returns their conversation ids."""
        now = now or now_utc()
        expired = []
        with self.store.session() as session:
            for handoff in session.scalars(select(Handoff).where(Handoff.resolved_at.is_(None),
                                                                 Handoff.agent_id.is_(None),
                                                                 Handoff.requested_at <= now - wait)):
                handoff.resolved_at = now
                conversation = session.get(Conversation, handoff.conversation_id)
                if conversation is not None:
                    queue_outbound(session, conversation, f"no-agent:{handoff.id}",
                                   Reply(notice("no_agent", conversation.language), role=ROLE_NOTICE), now)
                expired.append(handoff.conversation_id)
        return expired

    # --- outbound messages (agent replies, console notices) ---------------------------------------------------

    @staticmethod
    def _outbound_exists(session: Session, channel: str, client_id: str) -> bool:
        return session.scalars(select(InboxMessage.id).where(
            InboxMessage.channel == channel, InboxMessage.message_id == OUTBOUND_PREFIX + client_id)
        ).first() is not None

    # --- agent-assist suggestion sets -------------------------------------------------------------------------

    def record_suggestions(self, conversation_id: str, agent: AgentIdentity, language: str,
                           customer_seq: Optional[int], suggestions: List[Dict[str, Any]],
                           now: Optional[datetime] = None) -> Optional[int]:
        """Remember the suggestions shown to an agent for a conversation (earlier ones still open count as
        ignored); returns the set's id, or None for an unknown conversation."""
        now = now or now_utc()
        with self.store.session() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                return None
            self._settle_suggestions(session, conversation_id, None, "", now, agent_id=agent.id)
            handoff = open_handoff_of(session, conversation_id)
            row = SuggestionSet(
                conversation_id=conversation_id, handoff_id=handoff.id if handoff else None, agent_id=agent.id,
                channel=conversation.channel, language=language, customer_seq=customer_seq,
                suggestions=[{k: s[k] for k in ("key", "source", "confidence", "answer")} for s in suggestions],
                shown_at=now, outcome=SHOWN,
            )
            session.add(row)
            session.flush()
            return row.id

    @staticmethod
    def _settle_suggestions(session: Session, conversation_id: str, chosen: Optional[Tuple[int, int]], text: str,
                            now: datetime, agent_id: Optional[int] = None) -> None:
        """The chosen suggestion becomes used (sent as is) or edited; every other open set is ignored."""
        query = select(SuggestionSet).where(SuggestionSet.conversation_id == conversation_id,
                                            SuggestionSet.outcome == SHOWN)
        if agent_id is not None:
            query = query.where(SuggestionSet.agent_id == agent_id)
        for row in session.scalars(query):
            row.outcome_at = now
            if chosen and row.id == chosen[0] and 0 <= chosen[1] < len(row.suggestions or []):
                row.chosen_index = chosen[1]
                row.outcome = USED if same_text(row.suggestions[chosen[1]].get("answer", ""), text) else EDITED
            else:
                row.outcome = IGNORED

    # --- what the console shows of a conversation -------------------------------------------------------------

    def latest_customer_entries(self, conversation_id: str, limit: int = 3) -> List[Dict[str, Any]]:
        """The customer's latest messages with text, newest first."""
        with self.store.session() as session:
            entries = session.scalars(select(TranscriptEntry).where(
                TranscriptEntry.conversation_id == conversation_id, TranscriptEntry.role == ROLE_CUSTOMER,
                TranscriptEntry.text != "").order_by(TranscriptEntry.id.desc()).limit(limit)).all()
            return [entry_json(entry) for entry in entries]
