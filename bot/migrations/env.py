"""Alembic's entry for our migrations. They run only through bot/schema.py (`python -m bot db upgrade`, or a
store opening a database), which hands over the connection: there is no alembic.ini."""
from alembic import context

from bot.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the migrations with `python -m bot db upgrade` (bot/schema.py), not the alembic command")
context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
