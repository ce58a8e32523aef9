"""Check a ``medledger-cert/1`` certificate offline, against a trust bundle only.

This module (with the rest of ``verify/``) imports nothing but ``medledger.crypto`` and
``medledger.errors``, so it can ship alone. docs/certificate.md specifies every byte it checks.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from medledger.crypto.canonical import canonical_bytes, parse_json_object
from medledger.crypto.hexcodec import from_hex
from medledger.crypto.registry import get_suite
from medledger.crypto.rfc6962 import hasher_for
from medledger.crypto.suite import Suite
from medledger.crypto.trust import TrustBundle
from medledger.errors import (
    InputError,
    MalformedDocument,
    MedLedgerError,
    PayloadMismatch,
    ProofInvalid,
    VerificationFailed,
)
from medledger.verify.header import SignedHeader, verify_signatures
from medledger.verify.merkle import verify_consistency, verify_inclusion

CERT_FORMAT = "medledger-cert/1"
CONSISTENCY_FORMAT = "medledger-consistency/1"
_CERT_FIELDS = {
    "format",
    "suite",
    "entry",
    "leaf_index",
    "inclusion_proof",
    "header",
    "payload_salt",
}
_CONS_FIELDS = {"format", "suite", "from", "to", "proof"}


@dataclass(frozen=True, slots=True)
class Certificate:
    suite: str
    entry: dict[str, Any]
    leaf_index: int
    inclusion_proof: tuple[bytes, ...]
    header: SignedHeader
    payload_salt: bytes | None = None


@dataclass(frozen=True, slots=True)
class ConsistencyDocument:
    suite: str
    old: SignedHeader
    new: SignedHeader
    proof: tuple[bytes, ...]


@dataclass(slots=True)
class Report:
    """What was checked and passed, in order; printed by ``medledger verify``."""

    passed: list[str] = field(default_factory=list)
    leaf_hash: str = ""
    tree_size: int = 0


def parse_certificate(obj: Any) -> Certificate:
    """Shape-check a certificate; raise MalformedDocument naming the first bad member."""
    _object(obj, "certificate", _CERT_FIELDS, CERT_FORMAT)
    entry = obj.get("entry")
    if not isinstance(entry, dict):
        raise MalformedDocument(
            "certificate.entry must be a JSON object",
            field="entry",
            value=entry,
            expected="the entry object",
        )
    index = obj.get("leaf_index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**53:
        raise MalformedDocument(
            "certificate.leaf_index must be a non-negative integer",
            field="leaf_index",
            value=index,
            expected="integer >= 0",
        )
    salt = obj.get("payload_salt")
    if "payload_salt" in obj and salt is None:
        raise MalformedDocument(
            "certificate.payload_salt is null; leave the member out instead",
            field="payload_salt",
            value=None,
            expected="hex salt",
        )
    return Certificate(
        suite=_suite_name(obj),
        entry=entry,
        leaf_index=index,
        inclusion_proof=_hashes(obj.get("inclusion_proof"), "inclusion_proof"),
        header=SignedHeader.from_json(obj.get("header"), field="header"),
        payload_salt=None if salt is None else from_hex(salt, field="payload_salt"),
    )


def parse_consistency(obj: Any) -> ConsistencyDocument:
    """Shape-check a consistency document."""
    _object(obj, "consistency document", _CONS_FIELDS, CONSISTENCY_FORMAT)
    return ConsistencyDocument(
        suite=_suite_name(obj),
        old=SignedHeader.from_json(obj.get("from"), field="from"),
        new=SignedHeader.from_json(obj.get("to"), field="to"),
        proof=_hashes(obj.get("proof"), "proof"),
    )


def verify_certificate(
    cert: Certificate,
    trust: TrustBundle,
    *,
    payload: bytes | None = None,
    newer: ConsistencyDocument | None = None,
) -> Report:
    """Check every claim of ``cert``; raise VerificationFailed naming the first failed check.

    Order: suite, header signatures (quorum of trusted keys), leaf index bound, inclusion of
    H(0x00 ‖ canonical entry) under the header root, then the payload against the entry's
    salted payload hash if ``payload`` is given, then consistency with a newer head if given.
    """
    suite = _suite(cert.suite, trust)
    report = Report(tree_size=cert.header.tree_size)
    report.passed.append(f"suite {suite.name} matches the trust bundle")
    signers = verify_signatures(cert.header, trust, suite)
    report.passed.append(
        f"header at height {cert.header.height} signed by {', '.join(signers)} "
        f"(quorum {trust.quorum})"
    )
    hasher = hasher_for(suite)
    leaf = hasher.leaf_hash(_canonical_entry(cert.entry))
    report.leaf_hash = leaf.hex()
    try:
        verify_inclusion(
            hasher,
            cert.leaf_index,
            cert.header.tree_size,
            leaf,
            cert.inclusion_proof,
            cert.header.root,
        )
    except VerificationFailed:
        raise
    except MedLedgerError as exc:  # an out-of-range index is a failed check, not bad input
        raise ProofInvalid(exc.message, check="inclusion") from exc
    report.passed.append(
        f"entry {cert.leaf_index} is included in the tree of size {cert.header.tree_size} "
        f"with root {cert.header.root.hex()}"
    )
    if payload is not None:
        _check_payload(suite, cert, payload)
        report.passed.append("payload matches the entry's salted payload hash")
    if newer is not None:
        _check_newer(suite, trust, cert.header, newer)
        report.passed.append(
            f"head at tree size {cert.header.tree_size} is consistent with the newer head at "
            f"tree size {newer.new.tree_size} (height {newer.new.height})"
        )
        report.tree_size = newer.new.tree_size
    return report


def verify_consistency_document(doc: ConsistencyDocument, trust: TrustBundle) -> Report:
    """Check both heads' signatures and the consistency proof between them."""
    suite = _suite(doc.suite, trust)
    report = Report(tree_size=doc.new.tree_size)
    for name, head in (("from", doc.old), ("to", doc.new)):
        signers = verify_signatures(head, trust, suite)
        report.passed.append(
            f"{name} head at tree size {head.tree_size} signed by {', '.join(signers)}"
        )
    _consistent(suite, doc.old, doc.new, doc.proof)
    report.passed.append(
        f"tree size {doc.old.tree_size} is a prefix of tree size {doc.new.tree_size}"
    )
    return report


def _check_newer(
    suite: Suite, trust: TrustBundle, old: SignedHeader, doc: ConsistencyDocument
) -> None:
    if doc.suite != suite.name:
        raise VerificationFailed(
            f"consistency document uses suite {doc.suite}, the certificate {suite.name}",
            check="consistency.suite",
        )
    if doc.old.tree_size != old.tree_size or doc.old.root != old.root:
        raise ProofInvalid(
            f"consistency document starts at tree size {doc.old.tree_size} root "
            f"{doc.old.root.hex()}, the certificate's head is tree size {old.tree_size} root "
            f"{old.root.hex()}",
            check="consistency.from",
        )
    verify_signatures(doc.old, trust, suite)
    verify_signatures(doc.new, trust, suite)
    _consistent(suite, doc.old, doc.new, doc.proof)


def _consistent(
    suite: Suite, old: SignedHeader, new: SignedHeader, proof: tuple[bytes, ...]
) -> None:
    if old.chain != new.chain:
        raise ProofInvalid("the two heads belong to different chains", check="consistency")
    try:
        verify_consistency(
            hasher_for(suite), old.tree_size, new.tree_size, proof, old.root, new.root
        )
    except VerificationFailed as exc:
        raise ProofInvalid(exc.message, check="consistency") from exc
    except MedLedgerError as exc:
        raise ProofInvalid(exc.message, check="consistency") from exc


def _check_payload(suite: Suite, cert: Certificate, payload: bytes) -> None:
    want = cert.entry.get("payload_hash")
    if not isinstance(want, str):
        raise InputError(
            "the certified entry has no payload_hash, so there is no payload to check",
            field="entry.payload_hash",
            value=want,
            expected="a hex digest",
        )
    if cert.payload_salt is None:
        raise InputError(
            "the certificate carries no payload_salt; ask the data holder for the salted "
            "certificate",
            field="payload_salt",
            value=None,
            expected="hex salt",
        )
    candidates = [payload]
    # A JSON payload is hashed in canonical form, whatever its whitespace in the file.
    with contextlib.suppress(MedLedgerError):
        parsed = parse_json_object(payload, field="payload", error=MalformedDocument)
        candidates.append(canonical_bytes(parsed))
    for body in candidates:
        if suite.hash(cert.payload_salt + body).hex() == want:
            return
    raise PayloadMismatch(
        f"H(salt ‖ payload) does not equal the entry's payload_hash {want}", check="payload"
    )


def _canonical_entry(entry: dict[str, Any]) -> bytes:
    try:
        return canonical_bytes(entry)
    except MedLedgerError as exc:
        raise MalformedDocument(
            f"certificate.entry cannot be canonicalized: {exc.message}",
            field="entry",
            value=None,
            expected="RFC 8785 encodable JSON",
        ) from exc


def _suite(name: str, trust: TrustBundle) -> Suite:
    if name != trust.suite:
        raise VerificationFailed(
            f"document uses suite {name}, the trust bundle is for {trust.suite}", check="suite"
        )
    return get_suite(name)


def _suite_name(obj: dict[str, Any]) -> str:
    name = obj.get("suite")
    get_suite(name if isinstance(name, str) else repr(name))  # raise UnknownSuite early
    assert isinstance(name, str)
    return name


def _object(obj: Any, what: str, allowed: set[str], fmt: str) -> None:
    if not isinstance(obj, dict):
        raise MalformedDocument(
            f"{what} must be a JSON object", field=what, value=obj, expected="object"
        )
    if obj.get("format") != fmt:
        raise MalformedDocument(
            f"{what} format is {obj.get('format')!r}",
            field="format",
            value=obj.get("format"),
            expected=fmt,
        )
    extra = sorted(set(obj) - allowed)
    if extra:
        raise MalformedDocument(
            f"{what} has unknown member {extra[0]!r}",
            field=extra[0],
            value=extra[0],
            expected="one of " + ", ".join(sorted(allowed)),
        )


def _hashes(value: Any, name: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise MalformedDocument(
            f"{name} must be a list of hex hashes", field=name, value=value, expected="list"
        )
    return tuple(from_hex(h, field=f"{name}[{i}]", size=32) for i, h in enumerate(value))
