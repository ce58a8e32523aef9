"""Table definitions. Alembic migrations in ``store/migrations`` create exactly these."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, String, Table, Text

# On SQLite only "INTEGER PRIMARY KEY" makes the key the rowid itself (one B-tree, not two).
Key = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

# Chain-wide settings fixed at init: chain id, suite, genesis.
chain_meta = Table(
    "chain_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# One row per log entry: the RFC 8785 canonical bytes, exactly what the leaf hash covers.
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("idx", Key, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

# Hashes of every complete subtree, keyed by (level << 48) | index; level 0 holds leaf hashes.
ledger_nodes = Table(
    "ledger_nodes",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
)

# Block headers: the canonical header bytes (what signatures cover) plus columns for lookup.
ledger_blocks = Table(
    "ledger_blocks",
    metadata,
    Column("height", Key, primary_key=True, autoincrement=False),
    Column("tree_size", BigInteger, nullable=False, index=True),
    Column("header", LargeBinary, nullable=False),
)

ledger_signatures = Table(
    "ledger_signatures",
    metadata,
    Column("height", BigInteger, primary_key=True, autoincrement=False),
    Column("key_id", String(64), primary_key=True),
    Column("sig", LargeBinary, nullable=False),
)

# One data key per subject (a pseudonym, never PHI), wrapped under the master key ``master_kid``.
# ``wrapped`` is NULL once the subject is erased (crypto-shredding); the row stays as a tombstone
# so the subject can never silently get a fresh key.
record_keys = Table(
    "record_keys",
    metadata,
    Column("subject", String(64), primary_key=True),
    Column("master_kid", String(16), nullable=False, index=True),
    Column("wrapped", LargeBinary, nullable=True),
    Column("created", String(32), nullable=False),
    Column("shredded_at", String(32), nullable=True),
    Column("shred_reason", Text, nullable=True),
)

__all__ = [
    "chain_meta",
    "ledger_blocks",
    "ledger_entries",
    "ledger_nodes",
    "ledger_signatures",
    "metadata",
    "record_keys",
]
