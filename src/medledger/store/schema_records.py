"""Record tables: versions (encrypted, append-only), current pointers, search index rows.

Nothing here holds patient data in the clear: payloads are AEAD ciphertext under the
patient's data key, subjects are pseudonyms, and search values for names and identifiers are
blind-index tokens (dates, codes and references are stored as they are; see DESIGN §5).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, String, Table

from medledger.store.schema import metadata

# One row per version, never updated except for its ledger anchoring (state, ledger_index).
record_versions = Table(
    "record_versions",
    metadata,
    Column("rtype", String(40), primary_key=True),
    Column("rid", String(64), primary_key=True),
    Column("vid", Integer, primary_key=True, autoincrement=False),
    Column("ts", String(32), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("inst", String(64), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("blob", LargeBinary, nullable=True),  # a delete stores an encrypted tombstone
    Column("payload_hash", String(128), nullable=False),
    Column("entry", LargeBinary, nullable=False),  # the ledger entry bytes (outbox)
    Column("state", String(10), nullable=False),  # pending | anchored
    Column("ledger_index", BigInteger, nullable=True),
    Index("ix_record_versions_state", "state"),
    Index("ix_record_versions_ts", "ts"),
    Index("ix_record_versions_type_ts", "rtype", "ts"),
)

record_current = Table(
    "record_current",
    metadata,
    Column("rtype", String(40), primary_key=True),
    Column("rid", String(64), primary_key=True),
    Column("vid", Integer, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("ts", String(32), nullable=False),
    Column("inst", String(64), nullable=False),
    Column("subject", String(64), nullable=False),
    Index("ix_record_current_ts", "rtype", "ts"),
)

# Search rows of the current version only; rewritten on every write of the resource.
record_search = Table(
    "record_search",
    metadata,
    Column("rtype", String(40), nullable=False),
    Column("rid", String(64), nullable=False),
    Column("param", String(40), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("system", String(255), nullable=True),
    Column("value", String(255), nullable=False),
    Column("low", String(40), nullable=True),
    Column("high", String(40), nullable=True),
    Index("ix_record_search_value", "rtype", "param", "value"),
    Index("ix_record_search_range", "rtype", "param", "low"),
    Index("ix_record_search_rid", "rtype", "rid"),
)

# Conditional create (If-None-Exist): one row per (type, normalized criteria). The primary key
# is what makes 200 concurrent identical conditional creates yield exactly one resource.
record_conditional = Table(
    "record_conditional",
    metadata,
    Column("rtype", String(40), primary_key=True),
    Column("criteria", String(64), primary_key=True),
    Column("rid", String(64), nullable=False),
)

__all__ = [
    "record_conditional",
    "record_current",
    "record_search",
    "record_versions",
]
