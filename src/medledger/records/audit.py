"""Audit the record store against the ledger: every version matches the entry certifying it.

For each stored version: its ledger entry exists at ``ledger_index``, names the same ref, and
its ``payload_hash`` equals H(salt ‖ canonical payload) of the decrypted version (erased
patients' versions are checked as far as their key allows: ref and hash columns only). For
each ``record.put`` / ``record.delete`` entry on the chain: a version row exists for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from medledger.crypto.canonical import canonical_bytes
from medledger.errors import Gone, MedLedgerError
from medledger.ledger.audit import Findings
from medledger.ledger.sqlstore import SqlReader
from medledger.records.service import RecordService
from medledger.store.engine import READ_ONLY
from medledger.store.schema_records import record_versions


@dataclass(slots=True)
class RecordAuditReport(Findings):
    versions: int = 0
    decrypted: int = 0
    erased: int = 0
    pending: int = 0

    def record(self, ref: str, problem: str) -> None:
        self.add("record", ref, problem)


def audit_records(service: RecordService, reader: SqlReader) -> RecordAuditReport:
    """Check every version against the chain and every version entry against the store."""
    rep = RecordAuditReport()
    anchored: set[str] = set()
    pending: set[str] = set()
    for row in _versions(service):
        rep.versions += 1
        ref = f"{row.rtype}/{row.rid}/_history/{row.vid}"
        if row.state == "pending":
            rep.pending += 1  # recovery appends these at the next start
            pending.add(ref)
            continue
        anchored.add(ref)
        _check_version(service, reader, row, ref, rep)
    for index, entry in _version_entries(reader):
        certified = entry.get("ref")
        if not isinstance(certified, str) or certified in anchored:
            continue
        if certified in pending:
            rep.record(
                certified,
                f"marked pending, yet ledger entry {index} already certifies it "
                "(the anchoring mark was removed)",
            )
        else:
            rep.record(
                certified, f"ledger entry {index} certifies a version the store does not hold"
            )
    return rep


def _check_version(
    service: RecordService, reader: SqlReader, row: Any, ref: str, rep: RecordAuditReport
) -> None:
    try:
        entry = json.loads(reader.get_entry(int(row.ledger_index)))
    except (MedLedgerError, ValueError, TypeError):
        rep.record(ref, f"its ledger entry {row.ledger_index} is missing")
        return
    if entry.get("ref") != ref:
        rep.record(ref, f"ledger entry {row.ledger_index} certifies {entry.get('ref')!r} instead")
        return
    if entry.get("payload_hash") != row.payload_hash or entry.get("subject") != row.subject:
        rep.record(ref, "stored hash or subject differs from the ledger entry")
        return
    try:
        plain = service.keyring.decrypt(row.subject, bytes(row.blob or b""), ref.encode())
    except Gone:
        rep.erased += 1
        return
    except MedLedgerError:
        rep.record(ref, "payload does not decrypt: the ciphertext was altered")
        return
    body = json.loads(plain)
    digest = service.suite.hash(bytes.fromhex(body["salt"]) + canonical_bytes(body["resource"]))
    if digest.hex() != entry.get("payload_hash"):
        rep.record(ref, "decrypted payload does not match the certified payload hash")
        return
    rep.decrypted += 1


def _versions(service: RecordService) -> Iterator[Any]:
    v = record_versions.c
    with service.store.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        yield from conn.execute(
            select(
                v.rtype, v.rid, v.vid, v.state, v.ledger_index, v.payload_hash, v.subject, v.blob
            ).order_by(v.rtype, v.rid, v.vid)
        )


def _version_entries(reader: SqlReader) -> Iterator[tuple[int, dict[str, Any]]]:
    for batch in reader.entry_batches(0):
        for index, data in batch:
            if b'"type":"record.put"' in data or b'"type":"record.delete"' in data:
                yield int(index), json.loads(data)
