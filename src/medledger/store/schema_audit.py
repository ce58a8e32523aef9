"""Audit-trail tables: one row per API request's audit event, and the batches anchoring them.

No clinical content and no raw identifier lives here: an event (``audit_events.event``) is a
FHIR R4 AuditEvent in RFC 8785 canonical JSON that names resources only by reference, patients
only by pseudonym, and people only by principal id (``access.audit_event`` refuses the rest).

``seq`` is gapless (the writer assigns max + 1 in its transaction), so a deleted event leaves a
hole the audit names. A batch covers the events ``first_seq..last_seq``; its ``entry`` is the
``audit.batch`` ledger entry to append (an outbox row), and the ledger's commit hook marks it
``anchored`` with its ``ledger_index`` inside the block's own transaction.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, String, Table

from medledger.store.schema import Key, metadata

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("recorded", String(32), nullable=False),
    Column("principal", String(64), nullable=False),
    Column("institution", String(64), nullable=False),
    Column("action", String(1), nullable=False),  # C R U D E
    Column("outcome", Integer, nullable=False),  # 0 success, 4 minor failure, 8 serious failure
    Column("break_glass", Boolean, nullable=False),
    Column("event", LargeBinary, nullable=False),  # canonical FHIR AuditEvent (the Merkle leaf)
    Column("batch_id", String(36), nullable=True),
    Index("ix_audit_events_recorded", "recorded"),
    Index("ix_audit_events_principal", "principal"),
    Index("ix_audit_events_break_glass", "break_glass"),
    Index("ix_audit_events_batch", "batch_id"),
)

# The refs (``Observation/1/_history/2``, ``user/dr.li``) and patient pseudonyms
# (``pseudonym:<hex>``) an event names, for the ``entity`` and ``patient`` searches.
audit_entities = Table(
    "audit_entities",
    metadata,
    Column("seq", Key, primary_key=True, autoincrement=False),
    Column("ref", String(200), primary_key=True),
    Index("ix_audit_entities_ref", "ref", "seq"),
)

audit_batches = Table(
    "audit_batches",
    metadata,
    Column("batch_id", String(36), primary_key=True),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("root", String(128), nullable=False),  # hex
    Column("entry", LargeBinary, nullable=False),  # the audit.batch ledger entry (outbox)
    Column("state", String(10), nullable=False),  # pending | anchored
    Column("ledger_index", BigInteger, nullable=True),
    Index("ix_audit_batches_state", "state"),
    Index("ix_audit_batches_first_seq", "first_seq"),
)

__all__ = [
    "audit_batches",
    "audit_entities",
    "audit_events",
]
