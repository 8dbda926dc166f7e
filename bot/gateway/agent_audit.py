"""The console's audit log: which agent opened, read, asked suggestions for, replied to or resolved which
conversation, and when. It holds no message text (bot/privacy/retention.py keeps it a year). A repeat of the same
read within a minute is counted on the previous row rather than added.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.gateway.agent_directory import agent_names
from bot.gateway.models import AuditEntry
from bot.gateway.store import GatewayStore, iso

AUDIT_OPEN, AUDIT_VIEW, AUDIT_SUGGEST, AUDIT_REPLY, AUDIT_RESOLVE = "open", "view", "suggest", "reply", "resolve"
AUDIT_COALESCE = timedelta(minutes=1)


def record_access(session: Session, agent_id: int, action: str, conversation_id: str, now: datetime) -> None:
    """Record, in the caller's transaction, that an agent accessed a conversation."""
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


class AgentAuditLog:
    def __init__(self, store: GatewayStore):
        self.store = store

    def entries(self, conversation_id: Optional[str] = None, limit: int = 200) -> List[Dict[str, Any]]:
        """The latest audit entries (of one conversation), newest first, with the agents' login names."""
        with self.store.session() as session:
            query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
            if conversation_id is not None:
                query = query.where(AuditEntry.conversation_id == conversation_id)
            found = session.scalars(query).all()
            names = agent_names(session, [entry.agent_id for entry in found])
            return [{"agent": names.get(entry.agent_id), "action": entry.action,
                     "conversation_id": entry.conversation_id, "at": iso(entry.at), "last_at": iso(entry.last_at),
                     "count": entry.count} for entry in found]
