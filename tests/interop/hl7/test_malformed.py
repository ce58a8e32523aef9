"""Content errors in orders and results: each is a MessageRejected naming segment and field."""

from __future__ import annotations

import pytest

from medledger.errors import InputError, MessageRejected
from medledger.interop.hl7 import SenderMap, read_message
from medledger.interop.model import Coded, Requisition, Result, Value, code_system
from tests.interop.hl7._util import CENTRAL, EAST, SENDERS, message, rejected


def _fields(seg: str, **changes: str) -> str:
    """Return ``seg`` with fields replaced, e.g. ``_fields(OBR, f4="")``."""
    parts = seg.split("|")
    for key, value in changes.items():
        n = int(key[1:])
        parts += [""] * (n + 1 - len(parts))
        parts[n] = value
    return "|".join(parts)


PID = "PID|1||P001^^^^PI||张三||19800101|M"
ORC = _fields("ORC|NW|SQ1", f9="20240501080000")
OBR = _fields("OBR|1|SQ1||CT01^胸部CT^L", f24="RAD")
ORU_OBR = _fields("OBR|1|SQ1|F1|XCG^血常规^L", f22="20240501110000", f24="HM", f25="F")
OBX = "OBX|1|NM|WBC^白细胞^L||5.2|10*9/L|3.5-9.5|N|||F"
ORC21 = _fields(ORC, f21="某某诊所")


def _order(*segments: str) -> Requisition:
    out = read_message(message(*segments), SENDERS)
    assert isinstance(out, Requisition)
    return out


def _results(*segments: str) -> list[Result]:
    out = read_message(message(*segments, mtype="ORU^R01"), SENDERS)
    assert isinstance(out, list)
    return out


def _reject(*segments: str, mtype: str = "ORM^O01") -> pytest.ExceptionInfo[MessageRejected]:
    with pytest.raises(MessageRejected) as excinfo:
        read_message(message(*segments, mtype=mtype), SENDERS)
    return excinfo


@pytest.mark.parametrize(
    ("segments", "segment", "position", "code", "sequence"),
    [
        ((_fields(PID, f3=""), ORC, OBR), "PID", 3, "101", 1),
        ((ORC, OBR), "PID", None, "100", 1),
        ((PID, _fields(ORC, f2=""), _fields(OBR, f2="")), "OBR", 2, "101", 1),
        ((PID, ORC, _fields(OBR, f4="")), "OBR", 4, "101", 1),
        ((PID, ORC, _fields(OBR, f4="^胸部CT")), "OBR", 4, "101", 1),
        ((PID, ORC, _fields(OBR, f24="")), "OBR", 24, "101", 1),
        ((PID, ORC, _fields(OBR, f4="CT  01^胸部CT")), "OBR", 4, "102", 1),
        ((PID, ORC, _fields(OBR, f15="BLD\\X20\\&全血")), "OBR", 15, "102", 1),
        ((PID, ORC, _fields(OBR, f24="XYZ")), "OBR", 24, "103", 1),
        ((_fields(PID, f7="19801350"), ORC, OBR), "PID", 7, "102", 1),
        ((_fields(PID, f8="X"), ORC, OBR), "PID", 8, "103", 1),
        ((PID, _fields(ORC, f9="2024-05-01"), OBR), "ORC", 9, "102", 1),
        ((PID, _fields(ORC, f1="ZZ"), OBR), "ORC", 1, "103", 1),
        ((PID, _fields(ORC, f1=""), OBR), "ORC", 1, "101", 1),
        ((PID, _fields(ORC, f7="^^^^^Q"), OBR), "ORC", 7, "103", 1),
        ((PID, ORC, OBR, "ORC|NW|SQ2", _fields(OBR, f1="2", f2="SQ2", f4="")), "OBR", 4, "101", 2),
        ((PID, ORC, OBR, "ORC|NW|SQ1", _fields(OBR, f1="2")), "OBR", 2, "205", 2),
        ((PID, ORC, "ORC|NW|SQ2"), "ORC", None, "100", 1),
        ((PID, "OBX|1|ST|X||y"), "OBX", None, "100", 1),
        (
            (PID, ORC, OBR, "PID|1||P002", "ORC|NW|SQ2", _fields(OBR, f2="SQ2")),
            "PID",
            None,
            "100",
            2,
        ),
    ],
)
def test_order_content_errors(
    segments: tuple[str, ...], segment: str, position: int | None, code: str, sequence: int
) -> None:
    """A missing or malformed order field is AE with its segment, occurrence, field and code."""
    rejected(
        _reject(*segments),
        ack="AE",
        segment=segment,
        position=position,
        code=code,
        sequence=sequence,
    )


def test_truncated_messages_name_the_first_missing_field() -> None:
    """A message cut short is rejected naming the first required field it lost."""
    whole = message(PID, ORC, OBR)
    with pytest.raises(MessageRejected) as excinfo:
        read_message(whole[: whole.index(b"|C1|")], SENDERS)
    rejected(excinfo, ack="AR", segment="MSH", position=10, code="101")
    cut = whole[: whole.index(b"CT01")]
    with pytest.raises(MessageRejected) as excinfo:
        read_message(cut, SENDERS)
    rejected(excinfo, ack="AE", segment="OBR", position=4, code="101")


def test_messages_never_repeat_patient_values() -> None:
    """A bad birth date is named by field; the value is in ``value``, not in the message."""
    excinfo = _reject(_fields(PID, f7="19801350"), ORC, OBR)
    assert excinfo.value.value == "19801350"
    assert "19801350" not in excinfo.value.message
    assert excinfo.value.field == "PID-7"


@pytest.mark.parametrize(
    ("msh_change", "orc", "segment", "position"),
    [
        ("|示例区中医院|", ORC21, "ORC", 21),
        ("|某某诊所|", ORC, "MSH", 4),
        ("|某某医院|", ORC, "MSH", 6),
    ],
)
def test_unknown_facilities_are_rejected(
    msh_change: str, orc: str, segment: str, position: int
) -> None:
    """An ordering, sending or receiving facility missing from the sender map is AR 103."""
    raw = message(PID, orc, OBR).decode()
    if position == 6:
        raw = raw.replace("|示例市第一人民医院|", msh_change, 1)
    else:
        raw = raw.replace("|示例区中医院|", msh_change, 1)
    with pytest.raises(MessageRejected) as excinfo:
        read_message(raw.encode(), SENDERS)
    rejected(excinfo, ack="AR", segment=segment, position=position, code="103")


def test_sender_map() -> None:
    """Facility names match case-insensitively; institution ids map to themselves."""
    senders = SenderMap({"Shili Hospital": CENTRAL})
    assert senders.lookup([None, " shili hospital "]) == CENTRAL
    assert senders.lookup([CENTRAL.upper()]) == CENTRAL
    assert senders.lookup(["unknown", ""]) is None
    assert senders.institutions == frozenset({CENTRAL})
    with pytest.raises(InputError):
        SenderMap({"x": ""})


def test_order_variants_that_are_accepted() -> None:
    """Code prefix gives the kind; SC+CM completes; one ORC may serve several OBRs."""
    req = _order(PID, _fields(ORC, f1="SC", f5="CM"), _fields(OBR, f4="CT-CHEST^胸部CT", f24=""))
    assert (req.items[0].kind, req.items[0].status) == ("radiology", "completed")
    assert req.items[0].code == Coded(code_system(EAST), "CT-CHEST", "胸部CT")
    shared = _order(PID, ORC, OBR, _fields(OBR, f1="2", f2="SQ2", f24="US"))
    assert [(i.placer, i.kind) for i in shared.items] == [
        ("SQ1", "radiology"),
        ("SQ2", "ultrasound"),
    ]
    assert shared.performer == CENTRAL
    by_system = _order(PID, ORC, _fields(OBR, f4="US0201^腹部彩超^超声", f24=""))
    assert by_system.items[0].kind == "ultrasound"
    held = _order(PID, _fields(ORC, f1="HD"), OBR)
    assert held.items[0].status == "on-hold"
    cancelled = _order(PID, _fields(ORC, f1="CA"), OBR)
    assert cancelled.items[0].status == "revoked"
    no_performer = read_message(
        message(PID, ORC, OBR).decode().replace("|示例市第一人民医院|", "||", 1).encode(), SENDERS
    )
    assert isinstance(no_performer, Requisition)
    assert no_performer.performer is None


@pytest.mark.parametrize(
    ("segments", "segment", "position", "code"),
    [
        ((PID, _fields(ORU_OBR, f3=""), OBX), "OBR", 3, "101"),
        ((PID, _fields(ORU_OBR, f4=""), OBX), "OBR", 4, "101"),
        ((PID, _fields(ORU_OBR, f25=""), OBX), "OBR", 25, "101"),
        ((PID, _fields(ORU_OBR, f25="Z"), OBX), "OBR", 25, "103"),
        ((PID, _fields(ORU_OBR, f22="20241301"), OBX), "OBR", 22, "102"),
        ((PID, ORU_OBR, _fields(OBX, f14="yesterday")), "OBX", 14, "102"),
        ((PID, ORU_OBR, _fields(OBX, f5="5,2")), "OBX", 5, "102"),
        ((PID, ORU_OBR, _fields(OBX, f2="XX")), "OBX", 2, "103"),
        ((PID, ORU_OBR, _fields(OBX, f2="")), "OBX", 2, "101"),
        ((PID, ORU_OBR, _fields(OBX, f3="")), "OBX", 3, "101"),
        ((PID, ORU_OBR, _fields(OBX, f11="Q")), "OBX", 11, "103"),
        (
            (PID, ORU_OBR, "OBX|1|ED|IMG^图像^L||PACS^application^pdf^Base64^JVBERi0="),
            "OBX",
            5,
            "102",
        ),
        (
            (
                PID,
                ORU_OBR,
                "OBX|1|RP|IMG^图||https://x/a.jpg^^IM^JPEG",
                "NTE|1||md5:abc|content-hash",
            ),
            "NTE",
            3,
            "102",
        ),
        ((ORU_OBR, OBX), "PID", None, "100"),
    ],
)
def test_result_content_errors(
    segments: tuple[str, ...], segment: str, position: int | None, code: str
) -> None:
    """A missing or malformed result field is AE with its segment, field and code."""
    rejected(
        _reject(*segments, mtype="ORU^R01"), ack="AE", segment=segment, position=position, code=code
    )


def test_duplicate_fillers_are_rejected() -> None:
    """Two OBRs with one filler number (here via a shared ORC-3) are AE 205 on the second."""
    second = _fields(ORU_OBR, f1="2", f2="SQ2", f3="")
    excinfo = _reject(PID, "ORC|RE|SQ1|F1", ORU_OBR, second, mtype="ORU^R01")
    rejected(excinfo, ack="AE", segment="OBR", position=3, code="205", sequence=2)


def test_result_variants_that_are_accepted() -> None:
    """Empty placer → None; MSH-7 stands in for OBR-22; SN, CE, TX, DT and empty values read."""
    raw_obr = _fields(ORU_OBR, f2="", f22="")
    (res,) = _results(
        PID,
        raw_obr,
        "OBX|1|SN|CRP^C反应蛋白^L||<^0.5|mg/L|||||F",
        "OBX|2|SN|ALB^白蛋白^L||^42|g/L|||||F",
        "OBX|3|CWE|HBSAG^乙肝表面抗原^L||NEG^阴性^HL70078||||||F",
        "OBX|4|TX|NOTE^备注^L||第一行~第二行||||||F",
        "OBX|5|DT|NEXT^复查日期^L||20240601||||||F",
        "OBX|6|NM|X^未测^L||||||||X",
    )
    assert res.placer is None
    assert res.issued == "2024-05-01T08:30:15+08:00"  # MSH-7, +08:00 assumed
    values = [i.value for i in res.items]
    assert values[0] == Value("text", text="<0.5")
    assert values[1] == Value("quantity", number="42", unit="g/L")
    assert values[2] == Value(
        "coded", code=Coded("http://terminology.hl7.org/CodeSystem/v2-0078", "NEG", "阴性")
    )
    assert values[3] == Value("text", text="第一行\n第二行")
    assert values[4] == Value("text", text="20240601")
    assert values[5] is None
    assert res.items[5].status == "cancelled"


def test_placer_institution_falls_back_and_may_be_unknown() -> None:
    """ORC-21 names the placer institution; else MSH-6; an unknown MSH-6 gives None."""
    (res,) = _results(PID, ORU_OBR, OBX)
    assert (res.sender, res.placer_institution) == (EAST, CENTRAL)
    raw = (
        message(PID, ORU_OBR, OBX, mtype="ORU^R01")
        .decode()
        .replace("|示例市第一人民医院|", "|外院|")
    )
    (res2,) = read_message(raw.encode(), SENDERS)  # type: ignore[misc]
    assert res2.placer_institution is None
    only_east = SenderMap({"示例区中医院": EAST})
    (res3,) = read_message(message(PID, ORU_OBR, OBX, mtype="ORU^R01"), only_east)  # type: ignore[misc]
    assert res3.placer_institution is None


def test_loinc_sections_and_partial_items() -> None:
    """LOINC 18782-3 / 19005-8 are findings / conclusion; a partial report's items preliminary."""
    (res,) = _results(
        PID,
        _fields(ORU_OBR, f24="RAD", f25="A"),
        "OBX|1|TX|18782-3^影像所见^LN||所见一",
        "OBX|2|FT|18782-3^影像所见^LN||所见二\\.br\\第二行",
        "OBX|3|ST|19005-8^印象^LN||结论",
        "OBX|4|NM|SIZE^结节大小^L||8|mm",
    )
    assert res.findings == "所见一\n所见二\n第二行"
    assert res.conclusion == "结论"
    assert (res.status, res.items[0].status) == ("partial", "preliminary")
    assert res.items[0].code.code == "SIZE"


def test_partial_withdrawal_is_not_a_recall() -> None:
    """Only some OBX marked W: the report keeps its status, those items are entered-in-error."""
    (res,) = _results(
        PID,
        _fields(ORU_OBR, f25="C"),
        _fields(OBX, f11="W"),
        _fields(OBX, f1="2", f3="RBC^红细胞^L"),
    )
    assert res.status == "corrected"
    assert [i.status for i in res.items] == ["entered-in-error", "final"]
