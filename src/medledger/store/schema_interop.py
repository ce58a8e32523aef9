"""Integration gateway tables: messages, deliveries, watermarks and sequences.

No patient data is stored in the clear here: a message's raw bytes are kept only sealed (AEAD
under a key derived from the node's master key) so that a held or quarantined message can be
processed again, and its ``raw_hash`` is salted. ``reason`` and ``mismatch`` name segments,
fields and codes, never values from the patient's record.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text

from medledger.store.schema import Key, metadata

# One row per distinct inbound message (per sender and control id); redeliveries only count.
interop_messages = Table(
    "interop_messages",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("interface", String(128), nullable=False),  # e.g. mllp, view:his-orders, fhir
    Column("institution", String(256), nullable=False),  # the sending institution
    Column("source", String(256), nullable=False),  # sending application^facility (MSH-3^MSH-4)
    Column("control_id", String(256), nullable=False),  # MSH-10 or the view row key
    Column("message_type", String(32), nullable=False),  # ORU^R01, ORM^O01, OML^O21, row, …
    Column("day", String(10), nullable=False),  # YYYY-MM-DD (UTC+8) it was first received
    Column("received_at", BigInteger, nullable=False),  # epoch ms
    Column("status", String(16), nullable=False),  # stored, held, quarantined, rejected
    Column("ack_code", String(2), nullable=True),  # AA, AE, AR: what the sender was told
    Column("acked_at", BigInteger, nullable=True),
    Column("duplicates", Integer, nullable=False, default=0),  # redeliveries suppressed
    Column("salt", LargeBinary, nullable=False),
    Column("raw_hash", String(128), nullable=False),  # hex H(salt ‖ raw bytes)
    Column("raw_sealed", LargeBinary, nullable=True),  # sealed raw bytes while they may rerun
    Column("reason", Text, nullable=True),  # why held, quarantined or rejected (no PHI)
    Column("mismatch", Text, nullable=True),  # kind of mismatch, e.g. order-unknown
    Column("unmapped", Text, nullable=True),  # JSON list of "system|code" waiting for a mapping
    Column("refs", Text, nullable=True),  # JSON list of the resource versions it produced
    Column("ledger_index", BigInteger, nullable=True),  # its interop.message entry
    Index("ux_interop_messages_identity", "institution", "source", "control_id", unique=True),
    Index("ix_interop_messages_day", "day", "interface"),
    Index("ix_interop_messages_status", "status"),
)

# One row per outbound delivery of one resource version to one recipient endpoint.
interop_deliveries = Table(
    "interop_deliveries",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("channel", String(32), nullable=False),  # rest-hook or mllp
    Column("target", String(256), nullable=False),  # subscription ref or endpoint name
    Column("endpoint", Text, nullable=False),  # URL or host:port
    Column("institution", String(256), nullable=False),  # the recipient
    Column("ref", String(512), nullable=False),  # resource version delivered
    Column("day", String(10), nullable=False),
    Column("created_at", BigInteger, nullable=False),  # epoch ms
    Column("status", String(16), nullable=False),  # pending, delivered, dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("deadline_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("resource", String(512), nullable=True),  # ref without version: the order key
    Index("ix_interop_deliveries_due", "status", "next_attempt_at"),
    Index("ix_interop_deliveries_day", "day", "channel"),
    Index("ix_interop_deliveries_resource", "resource", "channel", "target", "status", "id"),
)

# Where each SQL-view connector stopped: the last watermark and row key it stored.
interop_watermarks = Table(
    "interop_watermarks",
    metadata,
    Column("connector", String(128), primary_key=True),
    Column("watermark", Text, nullable=False),  # the column's value, as JSON
    Column("row_key", Text, nullable=True),  # tiebreak among rows of equal watermark, as JSON
    Column("updated_at", BigInteger, nullable=False),
)

# Named counters (e.g. barcode sequences per institution and day), incremented atomically.
interop_sequences = Table(
    "interop_sequences",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

__all__ = ["interop_deliveries", "interop_messages", "interop_sequences", "interop_watermarks"]
