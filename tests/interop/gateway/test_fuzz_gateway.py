"""Malformed HL7 against the whole gateway: every input gets an ACK (AA, AE or AR with a
reason), nothing raises, and a refused message leaves no record behind (nothing partial)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medledger.interop.config import parse_gateway
from medledger.interop.gateway import Gateway
from medledger.interop.hl7.ack import parse_ack
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService
from medledger.store.schema_records import record_versions

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "hl7"
NAMES = ["orm_ct_chest.hl7", "oml_lab.hl7", "oru_lab_gb18030.hl7", "oru_ct_report.hl7"]
FACILITIES = {"示例区中医院": "hosp-member-east", "示例市第一人民医院": "hosp-central"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    node = LedgerNode.init(
        tmp_path_factory.mktemp("fuzz") / "d", node="hosp-central", block_max_wait_ms=1
    )
    try:
        yield Gateway(RecordService.open(node), parse_gateway({"facilities": FACILITIES}))
    finally:
        node.close()


def _versions(gateway: Gateway) -> int:
    with gateway.service.ledger.store.engine.connect() as c:
        return len(c.execute(record_versions.select()).all())


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A sample with a random edit: truncation, byte flips, a deleted or doubled separator,
    a foreign charset label, or junk spliced in."""
    raw = bytearray((SAMPLES / draw(st.sampled_from(NAMES))).read_bytes())
    kind = draw(st.sampled_from(["truncate", "flip", "separator", "charset", "splice"]))
    if kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(raw) - 1))
            raw[i] = draw(st.integers(0, 255))
    elif kind == "separator":
        at = [i for i, b in enumerate(raw) if b in b"|^~&\r"]
        i = draw(st.sampled_from(at))
        raw[i : i + 1] = b"" if draw(st.booleans()) else raw[i : i + 1] * 2
    elif kind == "charset":
        raw = raw.replace(b"UNICODE UTF-8", draw(st.sampled_from([b"KOI8-R", b"", b"GBK"])))
    else:
        i = draw(st.integers(0, len(raw)))
        raw[i:i] = draw(st.binary(min_size=1, max_size=40))
    # A fresh control id each time, so the journal never answers from an earlier example.
    nonce = f"F{draw(st.integers(0, 10**12))}-".encode()
    out = bytes(raw)
    for prefix in (b"|HIS2024", b"|LIS2024", b"|PACS2024"):
        out = out.replace(prefix, b"|" + nonce + prefix[1:], 1)
    return out


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=mutated())
def test_malformed_messages_get_an_answer_and_leave_nothing_partial(
    gateway: Gateway, raw: bytes
) -> None:
    """AA, AE or AR for anything; an AE/AR never stored a record version."""
    before = _versions(gateway)
    ack = parse_ack(gateway.handle_hl7(raw))
    assert ack.code in ("AA", "AE", "AR")
    if ack.code != "AA":
        assert ack.error_text  # a reason the sender can read
        assert _versions(gateway) == before
