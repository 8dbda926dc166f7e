"""The schema under Alembic (bot/schema.py, bot/migrations/) on SQLite and on the real local PostgreSQL: the
migrations make exactly the models' tables; a database made by `create_all` before migrations existed, with rows
in it, is taken as the baseline and upgraded without losing a row; a store opens a fresh database by itself; two
processes upgrading one database at once do not collide; tables changed outside the migrations are refused."""
import subprocess
import sys
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, func, select, text

from bot.accounts import models as accounts
from bot.database import Base, OutdatedSchema, make_engine
from bot.gateway import models as gateway
from bot.gateway.store import GatewayStore
from bot.paths import REPO_ROOT
from bot.schema import BASELINE, current_revision, head_revision, upgrade
from conftest import TEST_SECRETS

T0 = datetime(2026, 11, 30, 9, 0)
ADDED_AFTER_BASELINE = {"gateway_webhook_deliveries", "gateway_channel_tokens"}     # 0002_x_activity_api


@pytest.fixture
def engine(account_store_url):
    engine = make_engine(account_store_url)
    yield engine
    engine.dispose()


def differences(engine):
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)


def test_the_migrations_make_exactly_the_models_tables(engine):
    assert upgrade(engine).reached == head_revision()
    assert differences(engine) == []
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    again = upgrade(engine)                                                         # again: nothing to do
    assert again.before == head_revision() and not again.fresh and differences(engine) == []


def test_a_database_made_before_migrations_is_upgraded_and_keeps_every_row(engine, account_store_url):
    """Today's create_all schema (the baseline's tables), with rows in accounts and gateway tables."""
    before = MetaData()
    for table in Base.metadata.sorted_tables:
        if table.name not in ADDED_AFTER_BASELINE:
            table.to_metadata(before)
    before.create_all(engine)
    with engine.begin() as connection:
        connection.execute(accounts.Customer.__table__.insert(), [{
            "id": 1, "business_name": "Kedai Runcit Aminah", "registration_type": "brn",
            "registration_id": "202301000001", "email": "aminah@example.my", "phone": "0123456789"}])
        connection.execute(gateway.Agent.__table__.insert(), [{
            "name": "aisyah", "display_name": "Aisyah", "password_hash": "scrypt$x", "created_at": T0}])
        connection.execute(gateway.InboxMessage.__table__.insert(), [{
            "channel": "facebook", "message_id": "m-1", "conversation_id": "facebook:U1", "text": "berapa harga?",
            "metadata": {}, "status": "done", "attempts": 0, "next_attempt_at": T0, "replies": [{"text": "RM18"}],
            "delivered_count": 1, "received_at": T0}])
        connection.execute(gateway.TranscriptEntry.__table__.insert(), [{
            "conversation_id": "facebook:U1", "role": "customer", "text": "berapa harga?", "buttons": [],
            "created_at": T0}])
    counts = {name: count(engine, name) for name in before.tables}
    with engine.connect() as connection:
        assert current_revision(connection) is None

    done = upgrade(engine)
    assert (done.before, done.fresh, done.reached) == (None, False, head_revision())
    assert {name: count(engine, name) for name in before.tables} == counts
    assert counts["customers"] == 1 and counts["gateway_agents"] == 1 and counts["gateway_inbox"] == 1
    assert counts["gateway_transcript"] == 1
    assert differences(engine) == []
    reopened = GatewayStore(account_store_url)
    try:
        assert reopened.history("facebook:U1")[0]["text"] == "berapa harga?"
        reopened.remember_delivery("twitter", "uuid-1")                      # a table of the new revision
        assert reopened.delivery_seen("twitter", "uuid-1")
    finally:
        reopened.dispose()


def test_a_database_made_before_migrations_with_every_current_table_is_upgraded_too(engine):
    """create_all of this version's models (the X tables included) and no alembic_version: every revision finds
    its tables there and makes nothing twice."""
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(gateway.WebhookDelivery.__table__.insert(), [
            {"channel": "twitter", "delivery_id": "uuid-1", "received_at": T0}])
    done = upgrade(engine)
    assert (done.before, done.fresh, done.reached) == (None, False, head_revision())
    assert count(engine, "gateway_webhook_deliveries") == 1 and differences(engine) == []


def test_a_database_with_only_some_tables_gets_the_missing_ones(engine):
    """A pre-migration database only the gateway ever opened (no account tables): upgraded, it has them all."""
    gateway_only = MetaData()
    for table in Base.metadata.sorted_tables:
        if table.name.startswith("gateway_"):
            table.to_metadata(gateway_only)
    gateway_only.create_all(engine)
    assert upgrade(engine).reached == head_revision()
    assert differences(engine) == []


def count(engine, table_name: str) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(text(table_name))).scalar_one()


def test_a_store_opens_a_fresh_database_at_the_newest_revision(account_store_url):
    store = GatewayStore(account_store_url)
    try:
        with store.engine.connect() as connection:
            assert current_revision(connection) == head_revision()
    finally:
        store.dispose()


def test_tables_changed_outside_the_migrations_are_refused(engine):
    upgrade(engine, BASELINE)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE gateway_widget_sessions"))
        connection.execute(text("CREATE TABLE gateway_widget_sessions (id VARCHAR(64) PRIMARY KEY)"))
    with pytest.raises(OutdatedSchema, match="gateway_widget_sessions.created_at"):
        upgrade(engine)


@pytest.mark.integration
def test_two_processes_upgrading_one_new_database_at_once_both_succeed(account_store_url):
    env = {**TEST_SECRETS, "DATABASE_URL": account_store_url, "SECRETS_FILE": "/nonexistent", "PATH": "/usr/bin:/bin"}
    processes = [subprocess.Popen([sys.executable, "-m", "bot", "db", "upgrade"], cwd=REPO_ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert sum("new database" in output for output in outputs) == 1, outputs       # one migrated, one found it done
    engine = make_engine(account_store_url)
    try:
        assert differences(engine) == []
    finally:
        engine.dispose()
