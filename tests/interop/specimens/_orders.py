"""Test requisitions: 示例区中医院 (hosp-member-east) orders lab work from the central hospital.

The people are fictitious. Codes are each hospital's own dictionary (基础字典) codes.
"""

from __future__ import annotations

from dataclasses import replace

from medledger.interop.model import Coded, OrderItem, Patient, Requisition, code_system

CENTRAL, MEMBER, OTHER = "hosp-central", "hosp-member", "hosp-other"
EAST, EAST_NAME = "hosp-member-east", "示例区中医院"
V2_0487 = "http://terminology.hl7.org/CodeSystem/v2-0487"  # HL7 specimen type table
AUTHORED = "2026-11-23T08:05:00+08:00"
COLLECTED = "2026-11-23T08:30:00+08:00"
BLOOD = Coded(V2_0487, "BLD", "全血")
TISSUE = Coded(V2_0487, "TISS", "组织")
URINE = Coded(V2_0487, "UR", "尿液")


def east(code: str, name: str) -> Coded:
    """An item code of the member hospital's dictionary."""
    return Coded(code_system(EAST), code, name)


XCG = east("XCG", "血常规")
TRANSLATIONS = {
    (XCG.system, XCG.code): [Coded(code_system(CENTRAL), "1001", "血细胞分析（五分类）")]
}
ZHANG = Patient("MZ0001", name="张三", sex="male", birth_date="1980-05-01")
LI = Patient("MZ0002", name="李四", sex="female", birth_date="1975-02-14")
WANG = Patient("MZ0003", name="王五", sex="male", birth_date="1990-09-09")
ZHAO = Patient("MZ9001", name="赵六", sex="female", birth_date="1969-12-31")


def requisition(
    patient: Patient, *items: OrderItem, sender: str = EAST, performer: str = CENTRAL
) -> Requisition:
    """A requisition of ``items`` for ``patient``, ordered at 08:05 on 2026-11-23."""
    control = f"MSG-{items[0].placer}"
    return Requisition(sender, performer, patient, items, AUTHORED, "王医生", control, "V001")


def lab(placer: str, code: Coded, barcode: str | None, **extra: object) -> OrderItem:
    """A lab item in a blood tube collected at 08:30, unless ``extra`` says otherwise."""
    item = OrderItem(placer, code, "lab", barcode=barcode, specimen_type=BLOOD, collected=COLLECTED)
    return replace(item, **extra)  # type: ignore[arg-type]


BLOOD_WORK = requisition(
    ZHANG,
    lab("SQ-0001", XCG, "E0001"),
    lab("SQ-0002", east("GGN", "肝功能"), "E0001"),
    OrderItem("SQ-0003", east("CT01", "胸部CT平扫"), "radiology", body_site="胸部"),
)
BIOPSY = requisition(
    LI,
    OrderItem(
        "SQ-0004", east("BL01", "组织病理检查"), "pathology", barcode="E0002",
        specimen_type=TISSUE, collected="2026-11-23T09:10:00+08:00",
    ),
)  # fmt: skip
URINE_TEST = lab("SQ-0005", east("NCG", "尿常规"), "E0003", specimen_type=URINE)
NOT_LABELLED = requisition(WANG, URINE_TEST)
CRP = east("CRP", "C反应蛋白")
ELSEWHERE = requisition(
    ZHAO,
    lab("SQ-9001", Coded(code_system(MEMBER), "XCG", "血常规"), "M0001"),
    sender=MEMBER,
    performer=EAST,
)
