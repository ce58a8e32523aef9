"""The integration gateway's tables: Alembic creates exactly what schema_interop declares."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, insert, select

from medledger.store import migrate, schema_interop
from tests.access._admin_fixtures import migrated_engine


def test_migration_matches_the_declared_tables(db_url: str | None, tmp_path: Path) -> None:
    """0008 creates the interop tables exactly as declared, on SQLite and PostgreSQL."""
    only = MetaData()
    for name in schema_interop.__all__:
        getattr(schema_interop, name).to_metadata(only)
    with migrated_engine(db_url, tmp_path) as engine, engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), only)
    ours = [d for d in diff if any(t in repr(d) for t in schema_interop.__all__)]
    assert not ours, ours


def test_migration_downgrades_and_upgrades(db_url: str | None, tmp_path: Path) -> None:
    """0008 rolls back to 0007 and applies again; a row then stores and reads back."""
    with migrated_engine(db_url, tmp_path) as engine:
        cfg = migrate._config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0007")
        assert migrate.current_revision(engine) == "0007"
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        seq = schema_interop.interop_sequences
        with engine.begin() as conn:
            conn.execute(insert(seq).values(name="barcode:x", value=7))
            assert conn.execute(select(seq.c.value)).scalar() == 7
