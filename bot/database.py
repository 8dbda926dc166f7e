"""The one database of the assistant (DATABASE_URL): one SQLAlchemy metadata for every table of ours (accounts,
verification, outbox: bot/accounts/models.py; inbox, transcript, handoffs, agents, channel state:
bot/gateway/models.py) and the engine factory. Its schema is kept by the migrations of bot/schema.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import declarative_base
from sqlalchemy.pool import QueuePool

Base: Any = declarative_base()


class OutdatedSchema(RuntimeError):
    """The database's tables do not match what this version needs, and no migration explains the difference."""


def make_engine(url: str) -> Engine:
    """A 2.0-style engine. SQLite files get their folder created, WAL and foreign keys switched on, and a pool of
    open connections (SQLAlchemy 2.0's default for files; 1.4 opened a new connection, and ran these pragmas, for
    every transaction: about half of the gateway's database time per turn)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        on_disk = bool(parsed.database) and parsed.database != ":memory:"
        if on_disk:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        pool = {"poolclass": QueuePool} if on_disk else {}
        engine = create_engine(url, future=True, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, future=True, pool_pre_ping=True)
