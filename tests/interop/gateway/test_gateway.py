"""The gateway in process: edge cases of identity, answers and linking."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from medledger.interop.config import parse_gateway
from medledger.interop.gateway import Gateway
from medledger.interop.hl7.ack import parse_ack
from medledger.interop.hl7.outbound import order_message, result_message
from medledger.interop.model import Coded, OrderItem, Patient, Requisition, Result, code_system
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService

CST = timezone(timedelta(hours=8))
NOW = datetime(2024, 5, 1, 9, 0, tzinfo=CST)
M, C, OTHER = "hosp-member", "hosp-central", "hosp-other"
FACILITIES = {"示例区中医院": M, "示例市第一人民医院": C, "另一医院": OTHER}
PATIENT = Patient(id="MZ0001", name="王芳", sex="female", birth_date="1980-02-03")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    node = LedgerNode.init(tmp_path / "d", node=C, block_max_wait_ms=1)
    try:
        service = RecordService.open(node)
        yield Gateway(service, parse_gateway({"facilities": FACILITIES}))
    finally:
        node.close()


def _order(control: str = "ORM1", performer: str | None = None) -> bytes:
    req = Requisition(
        sender=M,
        performer=performer,
        patient=PATIENT,
        items=(
            OrderItem(placer="SQ1", code=Coded(code_system(M), "JY1", "血糖"), kind="radiology"),
        ),
        authored="2024-05-01T08:00:00+08:00",
    )
    receiving = ("RIS", "示例市第一人民医院" if performer else "")
    return order_message(
        req, control_id=control, sending=("HIS", "示例区中医院"), receiving=receiving, now=NOW
    )


def _result(control: str, sender_facility: str, *, patient: Patient = PATIENT) -> bytes:
    res = Result(
        sender=FACILITIES[sender_facility],
        placer_institution=M,
        patient=patient,
        placer="SQ1",
        filler=f"F-{control}",
        code=Coded(code_system(C), "300101", "胸部CT平扫"),
        kind="radiology",
        status="final",
        issued="2024-05-01T15:00:00+08:00",
        conclusion="未见异常",
    )
    return result_message(
        res,
        control_id=control,
        sending=("PACS", sender_facility),
        receiving=("HIS", "示例区中医院"),
        now=NOW,
    )


def test_an_overlong_control_id_is_refused_not_dropped(gateway: Gateway) -> None:
    """MSH-10 past 199 characters gets AR naming MSH-10 (not a dropped connection), and the
    message is journalled as rejected."""
    raw = _order().replace(b"|ORM1|", b"|" + b"X" * 300 + b"|", 1)
    ack = parse_ack(gateway.handle_hl7(raw))
    assert ack.code == "AR"
    assert ack.error_location == "MSH-10"
    assert [m.status for m in gateway.journal.by_status("rejected")] == ["rejected"]


def test_a_result_from_another_performer_is_a_mismatch(gateway: Gateway) -> None:
    """An order sent to the central hospital cannot be reported on by a third hospital: AE,
    quarantined as performer-mismatch; the central hospital's report is stored."""
    gateway.service.create(
        "ConceptMap",
        {
            "resourceType": "ConceptMap",
            "status": "active",
            "group": [
                {
                    "source": code_system(M),
                    "target": code_system(C),
                    "element": [
                        {"code": "JY1", "target": [{"code": "300101", "equivalence": "equal"}]}
                    ],
                }
            ],
        },
    )
    assert parse_ack(gateway.handle_hl7(_order(performer=C))).code == "AA"
    assert gateway.journal.get(1).status == "stored"
    other = parse_ack(gateway.handle_hl7(_result("ORU-O", "另一医院")))
    assert other.code == "AE"
    quarantined = gateway.journal.by_status("quarantined")
    assert [m.mismatch for m in quarantined] == ["performer-mismatch"]
    assert parse_ack(gateway.handle_hl7(_result("ORU-C", "示例市第一人民医院"))).code == "AA"


def test_a_result_for_another_patient_is_a_mismatch(gateway: Gateway) -> None:
    """A report naming a different patient than its order is quarantined, not stored."""
    assert parse_ack(gateway.handle_hl7(_order())).code == "AA"
    stranger = replace(PATIENT, id="MZ9999", name="李雷")
    ack = parse_ack(gateway.handle_hl7(_result("ORU-X", "示例市第一人民医院", patient=stranger)))
    assert ack.code == "AE"
    assert [m.mismatch for m in gateway.journal.by_status("quarantined")] == ["patient-mismatch"]


def test_the_first_answer_stays_in_the_journal(gateway: Gateway) -> None:
    """A result held (answered AA) for its order keeps ack AA in the journal whatever its
    later outcome."""
    assert parse_ack(gateway.handle_hl7(_result("ORU-1", "示例市第一人民医院"))).code == "AA"
    held = gateway.journal.by_status("held")[0]
    done = gateway.journal.finish(held.id, status="quarantined", ack_code="AE", reason="x")
    assert done.ack_code == "AA"


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.1.2.3", True),
        ("10.1.2.3:2575", True),
        ("10.9.9.9", False),
        ("::1", True),
        ("[::1]:2575", True),
        ("fe80::2", False),
        ("not-an-address", False),
    ],
)
def test_peer_lists_take_v4_v6_and_ports(address: str, allowed: bool) -> None:
    """``peers:`` matches IPv4 and IPv6 senders, with or without a port."""
    cfg = parse_gateway({"facilities": FACILITIES, "peers": {M: ["10.1.0.0/16", "::1"]}})
    assert cfg.peer_allowed(M, address) is allowed
    assert cfg.peer_allowed(C, address)  # no list: any address
