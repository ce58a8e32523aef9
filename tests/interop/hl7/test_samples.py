"""Golden samples: each sample message maps to exactly the model a reader of it expects."""

from __future__ import annotations

import pytest

from medledger.errors import MessageRejected
from medledger.interop.hl7 import Ack, read_message, read_order, read_results
from medledger.interop.hl7.codec import decode
from medledger.interop.model import (
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
from tests.data.hl7.make_samples import REPORT_IMAGE_SHA256, TWINS, sample_bytes
from tests.interop.hl7._util import (
    CENTRAL,
    DATA,
    EAST,
    SENDERS,
    sample,
    sample_order,
    sample_results,
)

EAST_DICT = code_system(EAST)
CENTRAL_DICT = code_system(CENTRAL)
V2_0070 = "http://terminology.hl7.org/CodeSystem/v2-0070"
ZHANG = Patient("MZ20240001", "张伟", "male", "1978-03-15", "110101197803150017")
LIU = Patient("MZ20240005", "刘洋", "male", "1992-08-08")


def test_sample_files_are_current() -> None:
    """The .hl7 files hold exactly what make_samples.py writes."""
    for name, data in sample_bytes().items():
        assert (DATA / f"{name}.hl7").read_bytes() == data, name


def test_samples_use_carriage_returns_only() -> None:
    """Every sample ends its segments with \\r and holds no \\n."""
    for path in DATA.glob("*.hl7"):
        data = path.read_bytes()
        assert data.endswith(b"\r"), path.name
        assert b"\n" not in data, path.name


def test_chest_ct_order() -> None:
    """ORM^O01 chest CT: patient with national id, visit, ORC-21 sender, body site, note."""
    assert sample_order("orm_ct_chest") == Requisition(
        sender=EAST,
        performer=CENTRAL,
        patient=ZHANG,
        items=(
            OrderItem(
                placer="SQ202405010001",
                code=Coded(EAST_DICT, "CT0101", "胸部CT平扫"),
                kind="radiology",
                note="咳嗽两周，发热3天\n临床诊断：社区获得性肺炎",
                body_site="胸部",
            ),
        ),
        authored="2024-05-01T08:28:00+08:00",
        requester="李明",
        control_id="HIS20240501000123",
        visit="MZ20240501001",
    )


def test_ultrasound_order() -> None:
    """ORM^O01 ultrasound: OBR-24 US, priority U, sex 2 (GB/T 2261.1), a time with offset."""
    req = sample_order("orm_us_abdomen")
    assert req.patient == Patient("MZ20240002", "王芳", "female", "1985-06-20")
    (item,) = req.items
    assert (item.kind, item.priority, item.status) == ("ultrasound", "urgent", "active")
    assert item.code == Coded(EAST_DICT, "US0201", "腹部彩超（肝胆胰脾）")
    assert (item.body_site, item.note) == ("腹部", "右上腹痛待查")
    assert req.authored == "2024-05-01T09:05:00+08:00"
    assert req.requester == "陈静"


def test_gastroscopy_order() -> None:
    """ORM^O01 endoscopy: no ORC-21 so MSH-4 is the sender; sex 男; priority A."""
    req = sample_order("orm_gastroscopy")
    assert (req.sender, req.performer, req.visit) == (EAST, CENTRAL, None)
    assert req.patient.sex == "male"
    (item,) = req.items
    assert (item.kind, item.priority, item.placer) == ("endoscopy", "asap", "SQ202405010003")
    assert req.requester == "吴刚"


def test_pathology_order() -> None:
    """ORM^O01 pathology: placer from ORC-2, specimen + site from OBR-15, barcode OBR-18."""
    (item,) = sample_order("orm_pathology").items
    assert item == OrderItem(
        placer="SQ202405010004",
        code=Coded(EAST_DICT, "PA0401", "活检组织病理检查"),
        kind="pathology",
        barcode="BL2024050100012",
        specimen_type=Coded(V2_0070, "TISS", "组织"),
        collected="2024-05-01T10:15:00+08:00",
        note="胃镜下取材2块",
        body_site="胃窦",
    )


def test_lab_order_with_specimens() -> None:
    """OML^O21: two items, each with the SPM that follows its OBR (barcode, type, time)."""
    req = sample_order("oml_lab")
    assert (req.patient, req.visit, req.requester) == (LIU, "MZ20240501005", "周敏")
    assert req.items == (
        OrderItem(
            placer="SQ202405010005",
            code=Coded(EAST_DICT, "XCG", "血常规"),
            kind="lab",
            barcode="BC2024050100051",
            specimen_type=Coded(V2_0070, "BLD", "全血"),
            collected="2024-05-01T07:55:00+08:00",
            priority="stat",
            note="发热待查",
        ),
        OrderItem(
            placer="SQ202405010006",
            code=Coded(EAST_DICT, "SGN", "肾功能"),
            kind="lab",
            barcode="BC2024050100052",
            specimen_type=Coded(V2_0070, "SER", "血清"),
            collected="2024-05-01T07:56:00+08:00",
            note="发热待查",
        ),
    )


def test_lab_results() -> None:
    """ORU^R01 lab: two OBR groups become two Results with NM values and H/N/L flags."""
    first, second = sample_results("oru_lab")
    assert (first.sender, first.placer_institution, first.patient) == (CENTRAL, EAST, LIU)
    assert (first.placer, first.filler, first.status) == (
        "SQ202405010005",
        "F2024050100051",
        "final",
    )
    assert (first.kind, first.issued) == ("lab", "2024-05-01T11:25:00+08:00")
    assert (first.performer_name, first.barcode) == ("孙丽", "BC2024050100051")
    assert first.items[0] == ResultItem(
        Coded(CENTRAL_DICT, "WBC", "白细胞计数"),
        Value("quantity", number="11.2", unit="10*9/L"),
        reference_range="3.5-9.5",
        interpretation="H",
        observed="2024-05-01T11:10:00+08:00",
    )
    assert [i.interpretation for i in first.items] == ["H", "N", "L"]
    assert second.filler == "F2024050100052"
    assert [i.code.code for i in second.items] == ["CREA", "UREA", "UA", "GFR"]
    assert second.items[3].value == Value("text", text=">90")
    assert first.control_id == second.control_id == "LIS20240501003344"


def test_ct_report() -> None:
    """ORU^R01 CT: findings/conclusion from TX OBX, a WADO-RS study, a hashed image, a viewer."""
    (res,) = sample_results("oru_ct_report")
    assert res == Result(
        sender=CENTRAL,
        placer_institution=EAST,
        patient=ZHANG,
        placer="SQ202405010001",
        filler="CT20240501008",
        code=Coded(CENTRAL_DICT, "CT0101", "胸部CT平扫"),
        kind="radiology",
        status="final",
        issued="2024-05-01T14:55:00+08:00",
        conclusion="右肺下叶炎症，建议抗炎治疗后复查。",
        findings="双肺纹理增多、紊乱。右肺下叶见斑片状高密度影，边界模糊。\n纵隔内未见肿大淋巴结。",
        images=(
            ImageLink(
                "https://pacs.hosp-central.example/dicomweb/studies/"
                "1.2.840.113619.2.55.3.604688119.971.1714528800.1",
                "wado-rs",
                study_uid="1.2.840.113619.2.55.3.604688119.971.1714528800.1",
            ),
            ImageLink(
                "https://pacs.hosp-central.example/reports/CT20240501008.jpg",
                "report-image",
                content_hash=f"sha256:{REPORT_IMAGE_SHA256}",
                content_type="image/jpeg",
            ),
            ImageLink(
                "https://viewer.hosp-central.example/view?study=CT20240501008&token=t1",
                "viewer",
                content_type="text/html",
            ),
        ),
        performer_name="赵强",
        control_id="PACS20240501000777",
    )


def test_correction() -> None:
    """ORU^R01 correction: OBR-25 C → corrected, OBX-11 C on the changed item, NTE reason."""
    (res,) = sample_results("oru_correction")
    assert res.status == "corrected"
    assert [i.status for i in res.items] == ["corrected", "final", "final"]
    assert res.reason == "血钾结果复核后更正，原结果因标本放置过久偏高"


def test_recall() -> None:
    """ORU^R01 recall: every OBX W → the report and its items are entered-in-error."""
    (res,) = sample_results("oru_recall")
    assert (res.status, res.filler, res.reason) == (
        "entered-in-error",
        "F2024050100052",
        "标本溶血，报告召回",
    )
    assert {i.status for i in res.items} == {"entered-in-error"}


@pytest.mark.parametrize("twin", sorted(TWINS))
def test_chinese_charset_twins_give_the_same_model(twin: str) -> None:
    """Each GB18030/GBK sample (declared or not) decodes to the model of its UTF-8 twin."""
    base, label, codec = TWINS[twin]
    raw = sample(twin)
    assert raw != sample(base)
    decoded = decode(raw)
    assert decoded.charset == "gb18030"
    assert decoded.header.declared_charset == label
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert read_message(raw, SENDERS) == read_message(sample(base), SENDERS)
    assert raw == sample(base).decode("utf-8").replace(
        "|UNICODE UTF-8", f"|{label}" if label else ""
    ).encode(codec)


def test_type_specific_readers_refuse_other_types() -> None:
    """read_order refuses an ORU and read_results an ORM, AR 200 naming MSH-9."""
    with pytest.raises(MessageRejected) as excinfo:
        read_order(decode(sample("oru_lab")), SENDERS)
    assert (excinfo.value.ack_code, excinfo.value.hl7_error, excinfo.value.position) == (
        "AR",
        "200",
        9,
    )
    with pytest.raises(MessageRejected):
        read_results(decode(sample("orm_ct_chest")), SENDERS)
    assert not isinstance(read_message(sample("oru_lab"), SENDERS), Ack)
