"""Shared helpers of the HL7 tests: sample files, the sender map, message builders."""

from __future__ import annotations

from pathlib import Path

import pytest

from medledger.errors import MessageRejected
from medledger.interop.hl7 import SenderMap, read_message
from medledger.interop.model import Requisition, Result

DATA = Path(__file__).resolve().parents[2] / "data" / "hl7"
CENTRAL = "hosp-central"
EAST = "hosp-member-east"
SENDERS = SenderMap({"示例市第一人民医院": CENTRAL, "示例区中医院": EAST})
UTF8_MSH = (
    "MSH|^~\\&|HIS|示例区中医院|RIS|示例市第一人民医院|20240501083015||{type}|C1|P|2.5|||||CHN|{cs}"
)


def sample(name: str) -> bytes:
    """Return the bytes of ``tests/data/hl7/<name>.hl7``."""
    return (DATA / f"{name}.hl7").read_bytes()


def sample_order(name: str) -> Requisition:
    """Read sample ``name``, which must be an order, into its Requisition."""
    out = read_message(sample(name), SENDERS)
    assert isinstance(out, Requisition)
    return out


def sample_results(name: str) -> list[Result]:
    """Read sample ``name``, which must be a result message, into its Results."""
    out = read_message(sample(name), SENDERS)
    assert isinstance(out, list)
    return out


def message(*segments: str, mtype: str = "ORM^O01", charset: str = "UNICODE UTF-8") -> bytes:
    """Return a UTF-8 message: a standard MSH, then ``segments``, each ended by \\r."""
    head = UTF8_MSH.format(type=mtype, cs=charset)
    return ("\r".join([head, *segments]) + "\r").encode("utf-8")


def rejected(
    excinfo: pytest.ExceptionInfo[MessageRejected],
    *,
    ack: str,
    segment: str | None,
    position: int | None,
    code: str,
    sequence: int = 1,
) -> None:
    """Assert the ERR-relevant fields of a rejection."""
    err = excinfo.value
    assert (err.ack_code, err.segment, err.position, err.hl7_error, err.sequence) == (
        ack,
        segment,
        position,
        code,
        sequence,
    ), err.to_dict()
