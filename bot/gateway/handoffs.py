"""Handoffs to human agents: the queue, what an agent may read, taking, replying, resolving and expiring.

A conversation is handed over when the assistant says so (its handoff message, see bot/dialogue/handoff.py): the worker
opens a Handoff while saving Rasa's replies. From then on the customer's messages are kept for the agents and
not sent to Rasa (GatewayStore.claim). An agent opens the conversation (taking it when nobody has it), replies
(queued in the inbox like the assistant's replies, so delivery is retried and never doubled) and resolves it,
after which the assistant answers again. Each access is audit-logged (bot/gateway/agent_audit.py), and a reply or a
resolve settles the suggestions shown (bot/gateway/suggestion_log.py). The agents and their sessions are in
bot/gateway/agent_directory.py. All methods are synchronous; the gateway calls them in a thread.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.clock import now_utc
from bot.gateway.agent_audit import AUDIT_OPEN, AUDIT_REPLY, AUDIT_RESOLVE, AUDIT_VIEW, record_access
from bot.gateway.agent_directory import AgentIdentity, agent_names
from bot.gateway.messages import ROLE_AGENT, ROLE_CUSTOMER, ROLE_NOTICE, Reply
from bot.gateway.models import Conversation, Handoff, InboxMessage, TranscriptEntry
from bot.gateway.notices import notice
from bot.gateway.store import OUTBOUND_PREFIX, GatewayStore, entry_json, iso, open_handoff_of, queue_outbound
from bot.gateway.suggestion_log import settle_suggestions

# Outcomes of an agent action, each with what the console shows the agent.
QUEUED, DUPLICATE, RESOLVED, NOT_OWNER, NOT_FOUND = "queued", "duplicate", "resolved", "not_owner", "not_found"
MESSAGES = {
    RESOLVED: "This conversation has already been resolved and handed back to the assistant. Your reply was not "
              "sent.",
    NOT_OWNER: "Another agent is handling this conversation. Your reply was not sent.",
    NOT_FOUND: "There is no such conversation, or it was not handed over to you.",
}


def joined_notice(agent: AgentIdentity, language: Optional[str]) -> str:
    """"Aisyah from Unifi has joined the chat" with the agent's display name, never the login name."""
    if agent.display_name:
        return notice("agent_joined", language, agent=agent.display_name)
    return notice("agent_joined_unnamed", language)


class HandoffStore:
    def __init__(self, store: GatewayStore):
        self.store = store

    @staticmethod
    def _latest(session: Session, conversation_id: str) -> Optional[Handoff]:
        return session.scalars(select(Handoff).where(Handoff.conversation_id == conversation_id)
                               .order_by(Handoff.id.desc()).limit(1)).one_or_none()

    def queue(self, agent_id: int, now: Optional[datetime] = None) -> List[Dict[str, Any]]:
        """The open handoffs, oldest first, with what an agent needs to pick one."""
        now = now or now_utc()
        with self.store.session() as session:
            handoffs = session.scalars(select(Handoff).where(Handoff.resolved_at.is_(None))
                                       .order_by(Handoff.requested_at, Handoff.id)).all()
            names = agent_names(session, [h.agent_id for h in handoffs])
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

    def _view(self, session: Session, conversation_id: str, agent_id: int) -> Optional[Dict[str, Any]]:
        conversation = session.get(Conversation, conversation_id)
        readable, until, hand_back_seq = (self._readable_until(session, conversation_id, agent_id) if conversation
                                          else (False, None, None))
        if not readable:
            return None
        handoff = open_handoff_of(session, conversation_id)
        shown = handoff or self._latest(session, conversation_id)
        names = agent_names(session, [shown.agent_id if shown else None])
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
                record_access(session, agent_id, action, conversation_id, now or now_utc())
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
                record_access(session, agent.id, AUDIT_OPEN, conversation_id, now)
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
                record_access(session, agent.id, AUDIT_REPLY, conversation_id, now)
                handoff.first_reply_at = handoff.first_reply_at or now
                settle_suggestions(session, conversation_id, suggestion, text, now)
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
            record_access(session, agent.id, AUDIT_RESOLVE, conversation_id, now)
            queue_outbound(session, conversation, f"handed-back:{handoff.id}",
                           Reply(notice("handed_back", conversation.language), role=ROLE_NOTICE), now)
            settle_suggestions(session, conversation_id, None, "", now)
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

    # --- what the console shows of a conversation -------------------------------------------------------------

    def latest_customer_entries(self, conversation_id: str, limit: int = 3) -> List[Dict[str, Any]]:
        """The customer's latest messages with text, newest first."""
        with self.store.session() as session:
            entries = session.scalars(select(TranscriptEntry).where(
                TranscriptEntry.conversation_id == conversation_id, TranscriptEntry.role == ROLE_CUSTOMER,
                TranscriptEntry.text != "").order_by(TranscriptEntry.id.desc()).limit(limit)).all()
            return [entry_json(entry) for entry in entries]
