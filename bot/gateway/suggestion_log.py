"""The agent-assist suggestion sets shown to agents, and what became of each: used (sent as is), edited, or
ignored (another reply was sent, newer suggestions were asked for, or the conversation was resolved). The analytics
report counts them. All methods are synchronous; the gateway calls them in a thread.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import now_utc
from bot.gateway.agent_directory import AgentIdentity
from bot.gateway.models import EDITED, IGNORED, SHOWN, USED, Conversation, SuggestionSet
from bot.gateway.store import GatewayStore, open_handoff_of


def same_text(a: str, b: str) -> bool:
    """Equal apart from whitespace: a suggestion sent with only line breaks changed still counts as used."""
    return " ".join(a.split()) == " ".join(b.split())


def settle_suggestions(session: Session, conversation_id: str, chosen: Optional[Tuple[int, int]], text: str,
                       now: datetime, agent_id: Optional[int] = None) -> None:
    """In the caller's transaction: the chosen suggestion (set id, index) becomes used or edited, by whether `text`
    is the suggestion as shown; every other open set of the conversation (of `agent_id`) is ignored."""
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


class SuggestionLog:
    def __init__(self, store: GatewayStore):
        self.store = store

    def record(self, conversation_id: str, agent: AgentIdentity, language: str, customer_seq: Optional[int],
               suggestions: List[Dict[str, Any]], now: Optional[datetime] = None) -> Optional[int]:
        """Remember the suggestions shown to an agent for a conversation (earlier ones still open count as
        ignored); returns the set's id, or None for an unknown conversation."""
        now = now or now_utc()
        with self.store.session() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                return None
            settle_suggestions(session, conversation_id, None, "", now, agent_id=agent.id)
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
