"""Fuzzing: any bytes give a model or a MessageRejected, never another exception."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medledger.errors import MessageRejected
from medledger.interop.hl7 import (
    Ack,
    build_ack,
    peek_header,
    read_message,
    requisition_bundle,
    result_bundle,
)
from medledger.interop.model import Requisition
from medledger.records.fhir_model import validate_resource
from tests.data.hl7.make_samples import sample_bytes
from tests.interop.hl7._util import SENDERS

SAMPLES = sample_bytes()
NAMES = sorted(SAMPLES)
DELIMITERS = b"|^~\\&\r\n"


_CODES = frozenset({"100", "101", "102", "103", "200", "201", "202", "203", "205", "207"})


def _outcome(raw: bytes) -> Any:
    """Read ``raw``; also build an ACK, or FHIR Bundles that validate, as the gateway would."""
    rejection: MessageRejected | None = None
    try:
        model = read_message(raw, SENDERS, max_bytes=4096)
    except MessageRejected as exc:
        rejection = exc
    if rejection is not None:
        assert rejection.ack_code in ("AE", "AR")
        assert rejection.hl7_error in _CODES
        ack = build_ack(
            peek_header(raw),
            rejection.ack_code,  # type: ignore[arg-type]
            error=rejection,
            sender_app="GW",
            sender_facility="hosp-central",
            control_id_factory=lambda: "A1",
        )
        assert ack.startswith(b"MSH")
        return rejection
    bundles = []
    if isinstance(model, Requisition):
        bundles.append(requisition_bundle(model))
    elif isinstance(model, list):
        bundles += [result_bundle(res, order_ref=None, existing=None) for res in model]
    else:
        assert isinstance(model, Ack)
    for bundle in bundles:  # whatever we accept maps to valid FHIR
        for entry in bundle["entry"]:
            validate_resource(entry["resource"])
    return model


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    """Random bytes are rejected cleanly (or, rarely, read)."""
    _outcome(raw)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_after_a_valid_header(tail: bytes) -> None:
    """A valid MSH followed by random bytes never raises anything but MessageRejected."""
    head = SAMPLES["oru_lab"].split(b"\r", 1)[0] + b"\r"
    _outcome(head + tail)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A sample with byte flips, delimiter swaps, truncation, insertions or dropped segments."""
    data = bytearray(SAMPLES[draw(st.sampled_from(NAMES))])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "delimiter", "truncate", "insert", "drop", "swap"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "delimiter":
            data[at] = draw(st.sampled_from(DELIMITERS))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "drop":
            segments = bytes(data).split(b"\r")
            del segments[at % len(segments)]
            data = bytearray(b"\r".join(segments))
        else:
            old, new = draw(st.sampled_from(DELIMITERS)), draw(st.sampled_from(DELIMITERS))
            data = bytearray(bytes(data).replace(bytes([old]), bytes([new])))
    return bytes(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_samples(raw: bytes) -> None:
    """Mutated samples give a model or a MessageRejected, and a sendable ACK either way."""
    _outcome(raw)


FIELD_TEXT = st.text(
    st.one_of(
        st.sampled_from('|^~&\\ \t\u3000\x0b"XE.br0123456789中文'),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=12,
)


@st.composite
def refilled(draw: st.DrawFn) -> bytes:
    """A sample with random text (delimiters, escapes, white space) put into some fields."""
    name = draw(st.sampled_from(NAMES))
    codec = "gb18030" if "gb" in name else "utf-8"
    segments = [s.split("|") for s in SAMPLES[name].decode(codec).split("\r") if s]
    for _ in range(draw(st.integers(1, 4))):
        seg = segments[draw(st.integers(1, len(segments) - 1))]
        n = draw(st.integers(1, 32))
        seg += [""] * (n + 1 - len(seg))
        seg[n] = draw(FIELD_TEXT)
    text = "\r".join("|".join(s) for s in segments) + "\r"
    return text.encode(codec, "replace")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(refilled())
def test_random_field_contents(raw: bytes) -> None:
    """Random text in any field of a valid message: a model whose FHIR validates, or a rejection."""
    _outcome(raw)


def test_every_sample_survives_every_truncation() -> None:
    """Each prefix of each sample is read or rejected cleanly."""
    for name in ("oru_ct_report", "oml_lab", "oru_ct_report_gbk_undeclared"):
        data = SAMPLES[name]
        for cut in range(0, len(data), 7):
            _outcome(data[:cut])
