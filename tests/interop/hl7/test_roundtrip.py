"""Write then read: result_message and order_message give back the model they were given."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.interop.hl7 import decode, order_message, read_order, read_results, result_message
from medledger.interop.hl7.observations import CONCLUSION, FINDINGS
from medledger.interop.model import (
    KINDS,
    LAB_KINDS,
    Coded,
    ImageLink,
    OrderItem,
    Patient,
    Requisition,
    Result,
    ResultItem,
    Value,
    code_system,
)
from tests.interop.hl7._util import CENTRAL, EAST, SENDERS

FHIR_CODE = re.compile(r"[^\s]+(\s[^\s]+)*")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=8)))
SPECIAL = '|^~&\\\n\r\t \u3000"#\x0b\x1c'
CJK = "张三李四王五赵六检查所见诊断意见血常规肾功能胸部超声内镜病理标本溶血报告召回（）：，。"
CHARS = st.one_of(
    st.sampled_from(SPECIAL + CJK),
    st.characters(blacklist_categories=("Cs",), max_codepoint=0x2FFFF),
)
TEXT = st.text(CHARS, min_size=1, max_size=12).filter(lambda s: s.strip() != "")
OPT = st.none() | TEXT
CODE = TEXT.map(lambda t: " ".join(t.split())).filter(lambda t: FHIR_CODE.fullmatch(t) is not None)
CHARSETS = st.sampled_from(["UTF-8", "UNICODE UTF-8", "GB18030"])
OTHER_SYSTEMS = [
    "http://loinc.org",
    "http://snomed.info/sct",
    "http://terminology.hl7.org/CodeSystem/v2-0078",
    "urn:oid:2.16.156.10011.2.3.3.4",
    code_system("hosp-north"),
]


@st.composite
def times(draw: st.DrawFn, *, date_only: bool = True) -> str:
    """A FHIR dateTime with an offset (or a date), as the readers write them."""
    when = draw(st.datetimes(datetime(1990, 1, 1), datetime(2035, 12, 31)))
    if date_only and draw(st.booleans()):
        return when.date().isoformat()
    hours = draw(st.integers(-12, 14))
    minutes = 0 if hours == 14 else draw(st.sampled_from([0, 30, 45]))  # FHIR: at most +14:00
    zone = UTC if draw(st.booleans()) else timezone(timedelta(hours=hours, minutes=minutes))
    spec = draw(st.sampled_from(["seconds", "milliseconds"]))
    return when.replace(tzinfo=zone).isoformat(timespec=spec)


@st.composite
def codes(draw: st.DrawFn, sender: str) -> Coded:
    """A code of the sender's dictionary or of another system; never a report section name."""
    system = draw(st.sampled_from([code_system(sender), *OTHER_SYSTEMS]))
    code = draw(CODE.filter(lambda t: t not in FINDINGS | CONCLUSION))
    display = draw(st.none() | TEXT.filter(lambda t: t not in FINDINGS | CONCLUSION))
    return Coded(system, code, display)


@st.composite
def patients(draw: st.DrawFn) -> Patient:
    """A patient with Chinese or escaped text in every field."""
    birth = draw(
        st.none() | st.dates().map(lambda d: d.isoformat()[: draw(st.sampled_from([4, 7, 10]))])
    )
    birth = None if birth is None or not birth[:4].isdigit() or int(birth[:4]) < 1 else birth
    return Patient(
        id=draw(TEXT),
        name=draw(OPT),
        sex=draw(st.sampled_from([None, "male", "female", "other", "unknown"])),
        birth_date=birth,
        national_id=draw(OPT),
    )


@st.composite
def values(draw: st.DrawFn, sender: str) -> Value | None:
    """A quantity, text or coded value, or none."""
    kind = draw(st.sampled_from(["quantity", "text", "coded", None]))
    if kind == "quantity":
        number = draw(st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{1,3})?", fullmatch=True))
        return Value("quantity", number=number, unit=draw(OPT))
    if kind == "text":
        return Value("text", text=draw(TEXT))
    if kind == "coded":
        return Value("coded", code=draw(codes(sender)))
    return None


@st.composite
def links(draw: st.DrawFn) -> ImageLink:
    """A WADO-RS study, a report image or a viewer link, with or without a hash."""
    kind = draw(st.sampled_from(["wado-rs", "report-image", "viewer"]))
    digest = draw(st.none() | st.sampled_from(["sha256:", "sm3:"]).map(lambda a: a + "ab" * 32))
    path = draw(TEXT.filter(lambda t: "/studies/" not in t))
    if kind == "wado-rs":
        uid = draw(st.from_regex(r"[1-9][0-9]{0,3}(\.[0-9]{1,5}){1,6}", fullmatch=True))
        ctype = draw(st.sampled_from([None, "application/dicom"]))
        return ImageLink(f"https://pacs.example/dicomweb/studies/{uid}", kind, uid, digest, ctype)
    types = (
        ["image/jpeg", "image/png", "application/pdf"] if kind == "report-image" else ["text/html"]
    )
    ctype = draw(st.sampled_from([None, *types]))
    return ImageLink(f"https://x.example/{path}", kind, None, digest, ctype)


@st.composite
def results(draw: st.DrawFn) -> Result:
    """A Result the ORU^R01 profile can carry exactly (see the outbound module docstring)."""
    sender = draw(st.sampled_from([CENTRAL, EAST]))
    kind = draw(st.sampled_from(KINDS))
    status = draw(
        st.sampled_from(
            [
                "registered",
                "partial",
                "preliminary",
                "final",
                "corrected",
                "cancelled",
                "entered-in-error",
            ]
        )
    )
    item_statuses = [
        "final",
        "corrected",
        "preliminary",
        "registered",
        "cancelled",
        "entered-in-error",
    ]
    items = [
        ResultItem(
            code=draw(codes(sender)),
            value=draw(values(sender)),
            status=draw(st.sampled_from(item_statuses)),
            reference_range=draw(OPT),
            interpretation=draw(OPT),
            observed=draw(st.none() | times()),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    images = tuple(draw(st.lists(links(), max_size=2)))
    findings, conclusion = draw(OPT), draw(OPT)
    recall = status == "entered-in-error"
    if recall:
        if not (items or images or findings or conclusion):
            items.append(ResultItem(draw(codes(sender)), None))
        items = [replace(i, status="entered-in-error") for i in items]
    elif (
        items
        and all(i.status == "entered-in-error" for i in items)
        and not (images or findings or conclusion)
    ):
        items[0] = replace(items[0], status="final")
    return Result(
        sender=sender,
        placer_institution=draw(st.sampled_from([CENTRAL, EAST])),
        patient=draw(patients()),
        placer=draw(OPT),
        filler=draw(TEXT),
        code=draw(codes(sender)),
        kind=kind,
        status=status,  # type: ignore[arg-type]
        issued=draw(times(date_only=False)),
        items=tuple(items),
        conclusion=conclusion,
        findings=findings,
        images=images,
        performer_name=draw(OPT),
        control_id=draw(TEXT),
        reason=draw(OPT),
        barcode=draw(OPT) if kind in LAB_KINDS else None,
    )


@st.composite
def requisitions(draw: st.DrawFn) -> Requisition:
    """A Requisition the ORM^O01 profile can carry exactly."""
    sender = draw(st.sampled_from([CENTRAL, EAST]))
    placers = draw(st.lists(TEXT, min_size=1, max_size=3, unique_by=lambda t: t.strip(" \t")))
    items = []
    for placer in placers:
        kind = draw(st.sampled_from(KINDS))
        lab = kind in LAB_KINDS
        items.append(
            OrderItem(
                placer=placer,
                code=draw(codes(sender)),
                kind=kind,
                filler=draw(OPT),
                barcode=draw(OPT) if lab else None,
                specimen_type=draw(st.none() | codes(sender)),
                collected=draw(st.none() | times()) if lab else None,
                priority=draw(st.sampled_from(["routine", "urgent", "asap", "stat"])),
                status=draw(st.sampled_from(["active", "revoked", "on-hold", "completed"])),
                note=draw(OPT),
                body_site=draw(OPT),
            )
        )
    return Requisition(
        sender=sender,
        performer=draw(st.sampled_from([None, CENTRAL, EAST])),
        patient=draw(patients()),
        items=tuple(items),
        authored=draw(times()),
        requester=draw(OPT),
        control_id=draw(TEXT),
        visit=draw(OPT),
    )


@settings(max_examples=150)
@given(results(), CHARSETS)
def test_result_message_round_trips(res: Result, charset: str) -> None:
    """read_results(decode(result_message(r))) == [r], with Chinese text and delimiters."""
    raw = result_message(
        res,
        control_id=res.control_id or "",
        sending=("LIS", res.sender),
        receiving=("HIS", res.placer_institution or ""),
        charset=charset,
        now=NOW,
    )
    decoded = decode(raw)
    assert decoded.header.declared_charset == charset
    assert read_results(decoded, SENDERS) == [res]


@settings(max_examples=150)
@given(requisitions(), CHARSETS)
def test_order_message_round_trips(req: Requisition, charset: str) -> None:
    """read_order(decode(order_message(q))) == q, with Chinese text and delimiters."""
    raw = order_message(
        req,
        control_id=req.control_id or "",
        sending=("HIS", req.sender),
        receiving=("RIS", req.performer or ""),
        charset=charset,
        now=NOW,
    )
    assert read_order(decode(raw), SENDERS) == req


def test_gb18030_output_is_gb18030() -> None:
    """A GB18030 message really is GB18030 bytes, with MSH-18 saying so."""
    res = Result(
        sender=CENTRAL,
        placer_institution=EAST,
        patient=Patient("P1", "张三"),
        placer="SQ1",
        filler="F1",
        code=Coded(code_system(CENTRAL), "CT01", "胸部CT"),
        kind="radiology",
        status="final",
        issued="2024-05-01T10:00:00+08:00",
        conclusion="未见异常",
        control_id="C1",
    )
    raw = result_message(
        res,
        control_id="C1",
        sending=("PACS", CENTRAL),
        receiving=("HIS", EAST),
        charset="GB18030",
        now=NOW,
    )
    assert "张三".encode("gb18030") in raw
    assert b"|GB18030\r" in raw
