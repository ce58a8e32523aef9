"""Certificates: golden files, an independent verifier from the spec, and bit-flip properties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medledger.crypto.canonical import canonical_bytes
from medledger.crypto.trust import TrustBundle
from medledger.errors import MedLedgerError, RootMismatch, SignatureInvalid, VerificationFailed
from medledger.verify.certificate import (
    parse_certificate,
    parse_consistency,
    verify_certificate,
    verify_consistency_document,
)
from tests.verify import spec_verifier

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


def _load(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


CERT = _load("cert.json")
TRUST_JSON = _load("keys.json")
TRUST = TrustBundle.from_json(TRUST_JSON)
PAYLOAD = canonical_bytes(_load("payload.json"))


def _ours(cert: Any, payload: bytes | None = PAYLOAD) -> bool:
    try:
        verify_certificate(parse_certificate(cert), TRUST, payload=payload)
        return True
    except MedLedgerError:
        return False


def test_golden_certificate_verifies() -> None:
    """The committed certificate, payload and consistency document all verify."""
    report = verify_certificate(
        parse_certificate(CERT),
        TRUST,
        payload=PAYLOAD,
        newer=parse_consistency(_load("consistency.json")),
    )
    assert report.tree_size == 11
    assert verify_consistency_document(parse_consistency(_load("consistency.json")), TRUST)


def test_golden_trace_matches_spec() -> None:
    """The leaf bytes, leaf hash and header signed bytes in trace.json follow the spec."""
    trace = _load("trace.json")
    assert canonical_bytes(CERT["entry"]).decode() == trace["leaf_bytes_utf8"]
    header = {k: v for k, v in CERT["header"].items() if k != "signatures"}
    assert canonical_bytes(header).decode() == trace["header_signed_bytes_utf8"]
    assert spec_verifier.H(b"\x00" + trace["leaf_bytes_utf8"].encode()).hex() == trace["leaf_hash"]


def test_spec_verifier_agrees_on_golden() -> None:
    """A verifier written from docs/certificate.md alone accepts the golden certificate."""
    assert spec_verifier.verify(CERT, TRUST_JSON, PAYLOAD)
    assert spec_verifier.verify(CERT, TRUST_JSON)


def test_typed_failures_name_the_check() -> None:
    """An altered entry fails inclusion with RootMismatch; an altered root fails signatures."""
    bad = json.loads(json.dumps(CERT))
    bad["entry"]["ref"] = "Observation/6/_history/1"
    with pytest.raises(RootMismatch) as exc:
        verify_certificate(parse_certificate(bad), TRUST)
    assert exc.value.check == "inclusion"
    bad = json.loads(json.dumps(CERT))
    bad["header"]["tree_size"] = 7
    with pytest.raises(SignatureInvalid):
        verify_certificate(parse_certificate(bad), TRUST)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


CERT_BYTES = json.dumps(CERT, separators=(",", ":"), ensure_ascii=False).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=len(CERT_BYTES) * 8 - 1))
def test_any_bit_flip_in_certificate_fails(bit: int) -> None:
    """Flipping any single bit of the certificate makes it unparseable or invalid."""
    mutated = _flip(CERT_BYTES, bit)
    try:
        obj = json.loads(mutated.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return  # not even JSON any more: rejected before any check
    assert not _ours(obj)
    assert not spec_verifier.verify(obj, TRUST_JSON, PAYLOAD)


ENTRY_BYTES = canonical_bytes(CERT["entry"])


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(ENTRY_BYTES) * 8 - 1))
def test_any_bit_flip_in_entry_fails(bit: int) -> None:
    """Flipping any single bit of the entry's canonical bytes breaks the certificate."""
    try:
        entry = json.loads(_flip(ENTRY_BYTES, bit).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return
    cert = {**CERT, "entry": entry}
    with pytest.raises(MedLedgerError):
        verify_certificate(parse_certificate(cert), TRUST)


def test_payload_salt_tamper_fails_payload_check() -> None:
    """The salt is not signed, but a changed salt cannot match the payload hash."""
    cert = {**CERT, "payload_salt": "00" + CERT["payload_salt"][2:]}
    with pytest.raises(VerificationFailed) as exc:
        verify_certificate(parse_certificate(cert), TRUST, payload=PAYLOAD)
    assert exc.value.check == "payload"
