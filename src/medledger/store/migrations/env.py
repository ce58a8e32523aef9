"""Alembic environment: run migrations on the connection MedLedger hands over."""

from __future__ import annotations

from alembic import context

from medledger.store import schema_records  # noqa: F401  (registers the record tables)
from medledger.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # invoked by the alembic CLI: connect from the configured URL
    from medledger.store.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
