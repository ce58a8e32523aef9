"""Check a ``medledger-audit-cert/1`` audit-event certificate offline, against a trust bundle.

An audit certificate proves that one FHIR AuditEvent is in the audit trail as it was recorded:

    {"format": "medledger-audit-cert/1",
     "event":  the AuditEvent, exactly as stored (its RFC 8785 bytes are the Merkle leaf),
     "batch":  {"id", "seq", "leaf_index", "size", "root", "path": [hex, ...]},
     "ledger": the medledger-cert/1 certificate of the batch's audit.batch ledger entry}

Checks, in order: the shape; H(0x00 ‖ canonical event) leads through ``path`` to ``root``
(RFC 9162 inclusion in a tree of ``size`` leaves); the ``audit.batch`` entry names this batch
and its ``meta`` holds the same ``root`` and ``count`` = ``size``; ``seq`` lies in the entry's
``first_seq..last_seq`` at position ``leaf_index``; then the ledger certificate itself (header
signatures, the entry's inclusion in the log). Imports only crypto, errors and verify.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medledger.crypto.canonical import canonical_bytes
from medledger.crypto.hexcodec import from_hex
from medledger.crypto.registry import get_suite
from medledger.crypto.rfc6962 import hasher_for
from medledger.crypto.trust import TrustBundle
from medledger.errors import MalformedDocument, MedLedgerError, ProofInvalid, VerificationFailed
from medledger.verify.certificate import (
    ConsistencyDocument,
    Report,
    parse_certificate,
    verify_certificate,
)
from medledger.verify.merkle import verify_inclusion

__all__ = [
    "AUDIT_CERT_FORMAT",
    "AuditCertificate",
    "parse_audit_certificate",
    "verify_audit_certificate",
]

AUDIT_CERT_FORMAT = "medledger-audit-cert/1"
_FIELDS = {"format", "event", "batch", "ledger"}
_BATCH_FIELDS = {"id", "seq", "leaf_index", "size", "root", "path"}
_MAX_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class AuditCertificate:
    event: dict[str, Any]
    batch_id: str
    seq: int
    leaf_index: int
    size: int
    root: bytes
    path: tuple[bytes, ...]
    ledger: dict[str, Any]


def parse_audit_certificate(obj: Any) -> AuditCertificate:
    """Shape-check an audit certificate; raise MalformedDocument naming the first bad member."""
    _members(obj, "audit certificate", _FIELDS)
    if obj.get("format") != AUDIT_CERT_FORMAT:
        raise MalformedDocument(
            f"audit certificate format is {obj.get('format')!r}",
            field="format",
            value=obj.get("format"),
            expected=AUDIT_CERT_FORMAT,
        )
    event = obj.get("event")
    if not isinstance(event, dict) or event.get("resourceType") != "AuditEvent":
        raise MalformedDocument(
            "event must be a FHIR AuditEvent object",
            field="event",
            value=type(event).__name__,
            expected='{"resourceType": "AuditEvent", ...}',
        )
    batch = obj.get("batch")
    _members(batch, "batch", _BATCH_FIELDS)
    batch_id = batch.get("id")
    if not isinstance(batch_id, str) or not 0 < len(batch_id) <= 64:
        raise MalformedDocument(
            "batch.id must be the batch id", field="batch.id", value=batch_id, expected="string"
        )
    path = batch.get("path")
    if not isinstance(path, list):
        raise MalformedDocument(
            "batch.path must be a list of hex hashes", field="batch.path", expected="list"
        )
    ledger = obj.get("ledger")
    if not isinstance(ledger, dict):
        raise MalformedDocument(
            "ledger must be a medledger-cert/1 certificate", field="ledger", expected="object"
        )
    return AuditCertificate(
        event=event,
        batch_id=batch_id,
        seq=_count(batch, "seq", 1),
        leaf_index=_count(batch, "leaf_index", 0),
        size=_count(batch, "size", 1),
        root=from_hex(batch.get("root"), field="batch.root", size=32),
        path=tuple(from_hex(h, field=f"batch.path[{i}]", size=32) for i, h in enumerate(path)),
        ledger=ledger,
    )


def verify_audit_certificate(
    cert: dict[str, Any] | AuditCertificate,
    trust: TrustBundle,
    *,
    newer: ConsistencyDocument | None = None,
) -> Report:
    """Check every claim of an audit certificate; raise VerificationFailed naming the check.

    ``newer`` optionally proves the ledger certificate's head against a newer signed head.
    """
    parsed = cert if isinstance(cert, AuditCertificate) else parse_audit_certificate(cert)
    ledger = parse_certificate(parsed.ledger)
    if ledger.suite != trust.suite:
        raise VerificationFailed(
            f"document uses suite {ledger.suite}, the trust bundle is for {trust.suite}",
            check="suite",
        )
    hasher = hasher_for(get_suite(ledger.suite))
    leaf = hasher.leaf_hash(_canonical(parsed.event))
    try:
        verify_inclusion(hasher, parsed.leaf_index, parsed.size, leaf, parsed.path, parsed.root)
    except VerificationFailed as exc:
        raise ProofInvalid(
            f"the event is not leaf {parsed.leaf_index} of the batch: {exc.message}",
            check="audit.inclusion",
        ) from exc
    except MedLedgerError as exc:
        raise ProofInvalid(exc.message, check="audit.inclusion") from exc
    _check_entry(parsed, ledger.entry)
    report = verify_certificate(ledger, trust, newer=newer)
    event_id = parsed.event.get("id")
    report.passed[:0] = [
        f"audit event {event_id} is leaf {parsed.leaf_index} of audit batch {parsed.batch_id} "
        f"(size {parsed.size}, root {parsed.root.hex()})",
        f"the batch root and size match ledger entry {ledger.leaf_index} (audit.batch, seq "
        f"{parsed.seq})",
    ]
    return report


def _check_entry(cert: AuditCertificate, entry: dict[str, Any]) -> None:
    meta = entry.get("meta")
    if entry.get("type") != "audit.batch" or not isinstance(meta, dict):
        raise VerificationFailed(
            f"the ledger certificate is for a {entry.get('type')!r} entry, not audit.batch",
            check="audit.entry",
        )
    if entry.get("ref") != f"audit-batch/{cert.batch_id}":
        raise VerificationFailed(
            f"the ledger entry certifies {entry.get('ref')!r}, not audit-batch/{cert.batch_id}",
            check="audit.entry",
        )
    if meta.get("root") != cert.root.hex():
        raise ProofInvalid(
            f"the batch root {cert.root.hex()} differs from the anchored root {meta.get('root')}",
            check="audit.root",
        )
    first, last, count = meta.get("first_seq"), meta.get("last_seq"), meta.get("count")
    if count != cert.size:
        raise ProofInvalid(
            f"the batch has {cert.size} events, the anchored entry says {count}",
            check="audit.size",
        )
    if not (
        isinstance(first, int)
        and isinstance(last, int)
        and first <= cert.seq <= last
        and cert.seq - first == cert.leaf_index
    ):
        raise ProofInvalid(
            f"seq {cert.seq} at leaf {cert.leaf_index} does not fit the anchored range "
            f"{first}..{last}",
            check="audit.seq",
        )


def _canonical(event: dict[str, Any]) -> bytes:
    try:
        return canonical_bytes(event)
    except MedLedgerError as exc:
        raise MalformedDocument(
            f"event cannot be canonicalized: {exc.message}",
            field="event",
            expected="RFC 8785 encodable JSON",
        ) from exc


def _members(obj: Any, what: str, allowed: set[str]) -> None:
    if not isinstance(obj, dict):
        raise MalformedDocument(
            f"{what} must be a JSON object", field=what, value=type(obj).__name__, expected="object"
        )
    extra = sorted(set(obj) - allowed)
    missing = sorted(allowed - set(obj))
    if extra or missing:
        name = extra[0] if extra else missing[0]
        raise MalformedDocument(
            f"{what} has {'unknown' if extra else 'no'} member {name!r}",
            field=name,
            value=name,
            expected=", ".join(sorted(allowed)),
        )


def _count(obj: dict[str, Any], name: str, low: int) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value < 2**53:
        raise MalformedDocument(
            f"batch.{name} must be an integer >= {low}",
            field=f"batch.{name}",
            value=value,
            expected=f"integer >= {low}",
        )
    if name == "size" and value > _MAX_SIZE:
        raise MalformedDocument(
            f"batch.size {value} is beyond any batch", field="batch.size", value=value
        )
    return value
