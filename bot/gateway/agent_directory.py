"""The console's agents and their sessions.

An agent has a login name (agents and logs see it), an optional display name (what customers see) and a scrypt
password hash (bot/gateway/agents.py makes it). A console session is a random cookie token, of which only the hash
is stored, with its CSRF token; it ends after 8 idle hours, after 24, at logout, and when the agent's password
changes or the agent is disabled. All methods are synchronous; the gateway calls them in a thread.
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
from bot.gateway.models import Agent, AgentSession
from bot.gateway.store import GatewayStore, iso

SESSION_IDLE = timedelta(hours=8)
SESSION_MAX = timedelta(hours=24)


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


@dataclass(frozen=True)
class ConsoleSession:
    agent: AgentIdentity
    csrf_token: str


def agent_names(session: Session, ids: Sequence[Optional[int]]) -> Dict[int, str]:
    """The login names of the agents with these ids (None ignored)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(wanted))).all())


class AgentDirectory:
    def __init__(self, store: GatewayStore):
        self.store = store

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
