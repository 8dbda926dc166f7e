"""The schema of DATABASE_URL, kept by Alembic migrations (bot/migrations/versions/).

`python -m bot db upgrade` (run by `make run` and `python -m bot serve`) brings a database to the newest
revision; every store does the same when it first opens one (SchemaGuard), so a fresh SQLite file or PostgreSQL
schema needs no step of its own. A database made before migrations existed (tables from `create_all`, no
`alembic_version`) is upgraded from the first revision, whose tables are made only where missing. Two processes
never migrate at once: PostgreSQL holds an advisory lock, SQLite a lock file beside the database.
"""
from __future__ import annotations

import contextlib
import fcntl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

import bot.accounts.models  # noqa: F401 - every model module: Base.metadata holds every table
import bot.gateway.models  # noqa: F401
from bot.database import Base, OutdatedSchema

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001_baseline"            # the schema `create_all` made before migrations existed
ADVISORY_LOCK_KEY = 7_415_062_001     # pg_advisory_lock key of our migrations


def _alembic_config(connection: Optional[Connection]):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)
    return ScriptDirectory.from_config(config).get_current_head() or ""


def current_revision(connection: Connection) -> Optional[str]:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """One migrating process per database (PostgreSQL: advisory lock; SQLite: an flock'd file beside it)."""
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database
    if backend != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _our_tables() -> List[str]:
    return [table.name for table in Base.metadata.sorted_tables]


def missing_columns(engine: Engine) -> List[str]:
    """`table.column` of every column the models have and the database lacks (tables included)."""
    inspector = inspect(engine)
    present_tables = set(inspector.get_table_names())
    missing = []
    for table in Base.metadata.sorted_tables:
        if table.name not in present_tables:
            missing.append(f"{table.name} (table)")
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing += [f"{table.name}.{column.name}" for column in table.columns if column.name not in present]
    return missing


@dataclass(frozen=True)
class Upgraded:
    before: Optional[str]          # the revision found (None: no migrations yet)
    fresh: bool                    # the database had none of our tables
    reached: str


def upgrade(engine: Engine, revision: str = "head") -> Upgraded:
    """Migrate the database to `revision` (the newest by default), under the migration lock."""
    from alembic import command

    with _migration_lock(engine):
        with engine.begin() as connection:
            config = _alembic_config(connection)
            before = current_revision(connection)
            ours = set(_our_tables()) & set(inspect(connection).get_table_names())
            # A database made by create_all before migrations (no alembic_version) is upgraded from the start:
            # every migration makes only the tables that are missing, so whatever it holds is kept.
            command.upgrade(config, revision)
            reached = current_revision(connection) or ""
    if revision == "head":
        missing = missing_columns(engine)
        if missing:
            raise OutdatedSchema(
                f"{engine.url.render_as_string(hide_password=True)} lacks {', '.join(missing[:8])} after the "
                f"migrations to {reached}: its tables were changed outside them.")
    return Upgraded(before, not ours, reached)


class SchemaGuard:
    """A store's "the schema is current" flag: the first use upgrades the database (cheap at the head)."""

    def __init__(self, engine: Engine):
        self.engine, self._lock, self._ready = engine, threading.Lock(), False

    def ensure(self) -> None:
        with self._lock:
            if not self._ready:
                upgrade(self.engine)
                self._ready = True
