"""Acknowledgements: MSH swap, MSA, v2.5 ERR, charsets, and reading them back."""

from __future__ import annotations

from datetime import datetime

import pytest

from medledger.errors import InputError, MessageRejected
from medledger.interop.hl7 import Ack, build_ack, decode, parse_ack, peek_header, read_message
from medledger.interop.hl7.datatypes import CST
from tests.interop.hl7._util import SENDERS, message, sample

NOW = datetime(2024, 5, 1, 8, 31, 0, tzinfo=CST)


def _ack(request: object, code: str, error: MessageRejected | None = None) -> bytes:
    return build_ack(
        request,  # type: ignore[arg-type]
        code,  # type: ignore[arg-type]
        error=error,
        sender_app="MEDLEDGER",
        sender_facility="示例市第一人民医院",
        control_id_factory=lambda: "ACK000001",
        now=NOW,
    )


def _segments(raw: bytes, codec: str = "utf-8") -> list[list[str]]:
    return [s.split("|") for s in raw.decode(codec).split("\r") if s]


def test_aa_swaps_sender_and_receiver() -> None:
    """An AA swaps MSH-3/4 with MSH-5/6, echoes MSH-10 in MSA-2 and keeps MSH-12 and MSH-18."""
    raw = _ack(decode(sample("orm_ct_chest")), "AA")
    msh, msa = _segments(raw)
    assert msh[2:7] == [
        "MEDLEDGER",
        "示例市第一人民医院",
        "HIS",
        "示例区中医院",
        "20240501083100+0800",
    ]
    assert (msh[8], msh[9], msh[10], msh[11], msh[17]) == (
        "ACK^O01^ACK",
        "ACK000001",
        "P",
        "2.5",
        "UNICODE UTF-8",
    )
    assert msa == ["MSA", "AA", "HIS20240501000123"]
    assert raw.endswith(b"\r")


def test_ae_carries_a_v25_err_segment() -> None:
    """An AE names the location (segment^sequence^field), the 0357 code, severity and text."""
    first_obr = "OBR|1|SQ1||CT^x^L" + "|" * 20 + "RAD"
    second_obr = "OBR|2|SQ2" + "|" * 22 + "RAD"  # OBR-4 empty
    raw = message("PID|1||P1", "ORC|NW|SQ1", first_obr, "ORC|NW|SQ2", second_obr)
    with pytest.raises(MessageRejected) as excinfo:
        read_message(raw, SENDERS)
    ack = _ack(decode(raw), "AE", excinfo.value)
    err = _segments(ack)[2]
    assert err[0] == "ERR"
    assert err[2] == "OBR^2^4"
    assert err[3] == "101^Required field missing^HL70357"
    assert err[4] == "E"
    assert err[8].startswith("OBR[2]-4: ")
    back = parse_ack(ack)
    assert back == Ack(
        code="AE",
        control_id="C1",
        ack_control_id="ACK000001",
        error_text=excinfo.value.message,
        error_location="OBR[2]-4",
        hl7_error="101",
    )


def test_ack_answers_in_the_request_charset() -> None:
    """A GB18030 request gets a GB18030 ACK; an undeclared GBK request gets GB18030, no MSH-18."""
    declared = _ack(decode(sample("oru_lab_gb18030")), "AA")
    msh = _segments(declared, "gb18030")[0]
    assert (msh[3], msh[17]) == ("示例市第一人民医院", "CHINESE GB18030")
    with pytest.raises(UnicodeDecodeError):
        declared.decode("utf-8")
    undeclared = _ack(decode(sample("oru_ct_report_gbk_undeclared")), "AA")
    msh2 = _segments(undeclared, "gb18030")[0]
    assert len(msh2) == 12  # ends at MSH-12: MSH-18 left out, as the request did
    assert parse_ack(undeclared).control_id == "PACS20240501000777"


def test_rejection_of_an_undecodable_request_is_utf8() -> None:
    """Bytes invalid in the declared charset: AR in UTF-8, MSH-18 UNICODE UTF-8, MSA-2 echoed."""
    raw = sample("orm_ct_chest").decode("utf-8").encode("gbk")  # says UTF-8, is GBK
    with pytest.raises(MessageRejected) as excinfo:
        decode(raw)
    ack = _ack(peek_header(raw), "AR", excinfo.value)
    msh, msa, err = _segments(ack)
    assert msh[17] == "UNICODE UTF-8"
    assert msa == ["MSA", "AR", "HIS20240501000123"]
    assert err[2:5] == ["MSH^1^18", "102^Data type error^HL70357", "E"]


def test_rejection_without_any_header() -> None:
    """When not even MSH could be read, the AR has an empty MSA-2 and standard delimiters."""
    with pytest.raises(MessageRejected) as excinfo:
        decode(b"garbage")
    ack = _ack(None, "AR", excinfo.value)
    msh, msa, err = _segments(ack)
    assert msh[:2] == ["MSH", "^~\\&"]
    assert (msh[8], msh[17]) == ("ACK", "UNICODE UTF-8")
    assert msa == ["MSA", "AR"]
    assert err[3].startswith("100^")
    assert parse_ack(ack).control_id is None


def test_unsupported_type_is_acknowledged_with_its_control_id() -> None:
    """An unsupported message type is AR 200 and the ACK still echoes MSH-10."""
    raw = message("PID|1||P1", mtype="ADT^A01")
    with pytest.raises(MessageRejected) as excinfo:
        decode(raw)
    back = parse_ack(_ack(peek_header(raw), "AR", excinfo.value))
    assert (back.code, back.control_id, back.hl7_error, back.error_location) == (
        "AR",
        "C1",
        "200",
        "MSH-9",
    )


def test_custom_delimiters_are_kept() -> None:
    """The ACK uses the request's delimiters."""
    raw = b"MSH#*@!$#HIS#H1###20240501##ORM*O01#C9#P#2.5\r"
    ack = _ack(decode(raw), "AA")
    assert ack.startswith(b"MSH#*@!$#MEDLEDGER#")
    assert parse_ack(ack).control_id == "C9"


def test_ack_error_text_is_bounded_and_generic_without_error() -> None:
    """A long message is clipped in ERR-8; an AE with no error reports 207."""
    long_error = MessageRejected("x" * 500, segment="OBX", position=5, hl7_error="102")
    err = _segments(_ack(None, "AE", long_error))[2]
    assert len(err[8]) == 200
    generic = parse_ack(_ack(None, "AE"))
    assert (generic.hl7_error, generic.error_location) == ("207", None)


def test_bad_ack_arguments() -> None:
    """An unknown code or an AA with an error is an InputError."""
    with pytest.raises(InputError):
        _ack(None, "CA")
    with pytest.raises(InputError):
        _ack(None, "AA", MessageRejected("x"))


def test_parse_ack_refuses_non_acks() -> None:
    """parse_ack of an order is AR 200; of an ACK without MSA is AE 100."""
    with pytest.raises(MessageRejected) as excinfo:
        parse_ack(sample("orm_ct_chest"))
    assert excinfo.value.hl7_error == "200"
    with pytest.raises(MessageRejected) as excinfo:
        parse_ack(message(mtype="ACK"))
    assert (excinfo.value.segment, excinfo.value.hl7_error) == ("MSA", "100")
    assert isinstance(read_message(message("MSA|AA|X1", mtype="ACK^R01^ACK"), SENDERS), Ack)


@pytest.mark.parametrize(
    ("field", "bad", "position", "echoed"),
    [("|P|2.5|", "|P|2|", 12, ("P", "2.5")), ("|P|2.5|", "|X|2.5|", 11, ("P", "2.5"))],
)
def test_refused_processing_id_or_version_is_not_echoed(
    field: str, bad: str, position: int, echoed: tuple[str, str]
) -> None:
    """The AR for a refused MSH-11 or MSH-12 is itself readable: it answers in P and 2.5, not
    with the value it refuses (found by the gateway fuzz test)."""
    raw = message("PID|1||P1").replace(field.encode(), bad.encode(), 1)
    with pytest.raises(MessageRejected) as excinfo:
        decode(raw)
    assert excinfo.value.field == f"MSH-{position}"
    ack = _ack(peek_header(raw), "AR", excinfo.value)
    msh, _, _ = _segments(ack)
    assert (msh[10], msh[11]) == echoed
    back = parse_ack(ack)
    assert (back.code, back.control_id, back.error_location) == ("AR", "C1", f"MSH-{position}")
