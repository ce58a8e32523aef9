"""Group processing (``interop.gateway_batch``): the same outcomes as one message at a time.

Two nodes get the same messages in the same order: one through ``handle_many`` in groups, the
other through ``handle_hl7`` one by one. Every message must end in the same journal status,
with the same ACK where the answer does not depend on what arrived at the same moment, and the
two nodes must hold the same resources and versions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from medledger.errors import WriteConflict
from medledger.interop.config import parse_gateway
from medledger.interop.gateway import Gateway
from medledger.interop.gateway_batch import handle_many
from medledger.interop.hl7.ack import parse_ack
from medledger.interop.hl7.outbound import order_message, result_message
from medledger.interop.model import Coded, OrderItem, Patient, Requisition, Result, code_system
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService
from tests.interop.gateway.test_gateway import FACILITIES, NOW, PATIENT, C, M

OTHER_PATIENT = Patient(id="MZ0002", name="李雷", sex="male", birth_date="1975-07-08")
PEER = "127.0.0.1:5000"


def _gateway(path: Path) -> Iterator[Gateway]:
    node = LedgerNode.init(path, node=C, block_max_wait_ms=1)
    try:
        yield Gateway(RecordService.open(node), parse_gateway({"facilities": FACILITIES}))
    finally:
        node.close()


@pytest.fixture
def grouped(tmp_path: Path) -> Iterator[Gateway]:
    yield from _gateway(tmp_path / "grouped")


@pytest.fixture
def alone(tmp_path: Path) -> Iterator[Gateway]:
    yield from _gateway(tmp_path / "alone")


def _order(control: str, placer: str, patient: Patient = PATIENT) -> bytes:
    req = Requisition(
        sender=M,
        performer=None,
        patient=patient,
        items=(
            OrderItem(placer=placer, code=Coded(code_system(M), "JC1", "胸部CT"), kind="radiology"),
        ),
        authored="2024-05-01T08:00:00+08:00",
    )
    return order_message(
        req, control_id=control, sending=("HIS", "示例区中医院"), receiving=("RIS", ""), now=NOW
    )


def _result(
    control: str,
    placer: str,
    filler: str,
    *,
    patient: Patient = PATIENT,
    status: str = "final",
    conclusion: str = "未见异常",
) -> bytes:
    res = Result(
        sender=C,
        placer_institution=M,
        patient=patient,
        placer=placer,
        filler=filler,
        code=Coded(code_system(C), "300101", "胸部CT平扫"),
        kind="radiology",
        status=status,
        issued="2024-05-01T15:00:00+08:00",
        conclusion=conclusion,
    )
    return result_message(
        res,
        control_id=control,
        sending=("PACS", "示例市第一人民医院"),
        receiving=("HIS", "示例区中医院"),
        now=NOW,
    )


ORDERS = [
    _order("ORM1", "SQ1"),
    _order("ORM2", "SQ2", OTHER_PATIENT),
    _order("ORM3", "SQ3"),  # same patient as ORM1: both create or find one Patient
    _order("ORM1", "SQ1"),  # the same message twice in one group
    _order("ORM1", "SQ1-other"),  # a control id reused for another message: AR
    b"MSH|^~\\&|HIS|\r",  # unreadable: AR
    _order("ORM4", "SQ4").replace("示例区中医院".encode(), "无名医院".encode(), 1),  # unknown: AR
]
RESULTS = [
    _result("ORU1", "SQ1", "F1"),
    _result("ORU2", "SQ1", "F2"),  # a second report of the same order
    _result("ORU3", "SQ2", "F3", patient=PATIENT),  # names another patient than its order: AE
    _result("ORU4", "SQ9", "F4"),  # its order is not there: held, AA
    _result("ORU5", "SQ1", "F1", status="corrected", conclusion="更正：少量积液"),  # F1 again
    _result("ORU6", "SQ3", "F6"),
]


def _codes(acks: list[bytes]) -> list[tuple[str, str | None]]:
    return [(a.code, a.hl7_error) for a in map(parse_ack, acks)]


def _state(gw: Gateway) -> tuple[list[tuple[str, str]], dict[str, int], list[int]]:
    """Journal statuses by control id, resources by type, DiagnosticReport versions."""
    journal = sorted(
        (m.control_id, m.status) for m in gw.journal.between("2000-01-01", "2999-01-01")
    )
    counts = {}
    for rtype in ("Patient", "ServiceRequest", "DiagnosticReport"):
        counts[rtype] = len(gw.service.search(rtype, [("_count", "100")]).resources)
    reports = gw.service.search("DiagnosticReport", [("_count", "100")]).resources
    versions = sorted(int(r["meta"]["versionId"]) for r in reports)
    return journal, counts, versions


def test_groups_end_as_messages_one_by_one_do(grouped: Gateway, alone: Gateway) -> None:
    group_acks = handle_many(grouped, [(raw, PEER) for raw in ORDERS])
    group_acks += handle_many(grouped, [(raw, PEER) for raw in RESULTS])
    assert all(isinstance(a, bytes) for a in group_acks), group_acks
    one_acks = [alone.handle_hl7(raw, peer=PEER) for raw in ORDERS + RESULTS]
    assert _codes(group_acks) == _codes(one_acks)  # type: ignore[arg-type]
    assert _codes(one_acks)[:7] == [
        ("AA", None),
        ("AA", None),
        ("AA", None),
        ("AA", None),
        ("AR", "207"),
        ("AR", "101"),
        ("AR", "103"),
    ]
    assert [c for c, _ in _codes(one_acks)[7:]] == ["AA", "AA", "AE", "AA", "AA", "AA"]
    assert _state(grouped) == _state(alone)
    journal, counts, versions = _state(grouped)
    assert counts == {"Patient": 2, "ServiceRequest": 3, "DiagnosticReport": 3}
    assert versions == [1, 1, 2]  # F1 corrected: a second version, nothing overwritten
    assert dict(journal)["ORU3"] == "quarantined"
    assert dict(journal)["ORU4"] == "held"
    assert grouped.journal.get(1).duplicates == 2  # ORM1 twice more: same bytes and reused


def test_a_result_with_its_order_in_one_group_is_stored(grouped: Gateway) -> None:
    """Planned before its order is written, the result is held, then released by the order
    in the same call: both stored, both AA."""
    acks = handle_many(
        grouped, [(_order("ORM1", "SQ1"), PEER), (_result("ORU1", "SQ1", "F1"), PEER)]
    )
    assert [parse_ack(a).code for a in acks] == ["AA", "AA"]  # type: ignore[arg-type]
    statuses = {m.control_id: m.status for m in grouped.journal.between("2000-01-01", "2999-01-01")}
    assert statuses == {"ORM1": "stored", "ORU1": "stored"}


def test_a_refused_group_write_falls_back_to_each_message(
    grouped: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the shared transaction is refused (here: a conflict), each message is processed
    on its own: nobody's message is lost or answered wrongly."""
    handle_many(grouped, [(_order("ORM1", "SQ1"), PEER)])
    calls = []

    def refuse(plans: object) -> object:
        calls.append(plans)
        raise WriteConflict("a resource in the transaction was written concurrently; retry")

    monkeypatch.setattr(grouped.ingest, "write_many", refuse)
    batch = [(_result(f"ORU{i}", "SQ1", f"F{i}"), PEER) for i in range(5)]
    acks = handle_many(grouped, batch)
    assert len(calls) == 1
    assert [parse_ack(a).code for a in acks] == ["AA"] * 5  # type: ignore[arg-type]
    reports = grouped.service.search("DiagnosticReport", [("_count", "100")]).resources
    assert len(reports) == 5


def test_a_failing_store_answers_nobody(grouped: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal cannot be written: every message of the group gets its exception (the
    listener drops the connection, no ACK), and nothing is stored."""
    from medledger.errors import StorageError

    def down(arrivals: object) -> object:
        raise StorageError("message journal: disk I/O error")

    monkeypatch.setattr(grouped.journal, "begin_many", down)
    answers = handle_many(grouped, [(_order(f"ORM{i}", f"SQ{i}"), PEER) for i in range(3)])
    assert all(isinstance(a, StorageError) for a in answers)
    monkeypatch.undo()
    assert grouped.journal.count() == 0
    assert grouped.service.search("ServiceRequest", []).resources == []


def test_group_keys_split_overlapping_plans(grouped: Gateway) -> None:
    """Two reports with one filler number never share a transaction: the second is a new
    version of the first, whatever the grouping."""
    handle_many(grouped, [(_order("ORM1", "SQ1"), PEER)])
    first = _result("ORU1", "SQ1", "F1")
    second = _result("ORU2", "SQ1", "F1", status="corrected", conclusion="更正：少量积液")
    acks = handle_many(grouped, [(first, PEER), (second, PEER)])
    assert [parse_ack(a).code for a in acks] == ["AA", "AA"]  # type: ignore[arg-type]
    (report,) = grouped.service.search("DiagnosticReport", []).resources
    assert (report["meta"]["versionId"], report["status"]) == ("2", "corrected")
    assert report["conclusion"] == "更正：少量积液"


def test_same_patient_orders_in_one_group_share_one_patient(grouped: Gateway) -> None:
    acks = handle_many(grouped, [(_order(f"ORM{i}", f"SQ{i}"), PEER) for i in range(4)])
    assert [parse_ack(a).code for a in acks] == ["AA"] * 4  # type: ignore[arg-type]
    assert len(grouped.service.search("Patient", []).resources) == 1
    assert len(grouped.service.search("ServiceRequest", []).resources) == 4
    other = replace(OTHER_PATIENT, id="MZ0003")
    acks = handle_many(grouped, [(_order("ORM9", "SQ9", other), PEER)])
    assert len(grouped.service.search("Patient", []).resources) == 2


def test_a_plan_made_stale_by_another_message_is_refused(grouped: Gateway) -> None:
    """A report planned as new, but created by another message before the plan is written
    (two connections, a correction racing its original), is a WriteConflict: planning again
    makes the correction a new version instead of dropping it as a duplicate."""
    from medledger.interop.hl7.codec import decode
    from medledger.interop.hl7.inbound import to_model

    grouped.handle_hl7(_order("ORM1", "SQ1"), peer=PEER)
    correction = _result("ORU2", "SQ1", "F1", status="corrected", conclusion="更正")
    results = to_model(decode(correction), grouped.senders)
    assert isinstance(results, list)
    stale = grouped.ingest.plan_results(results)
    assert parse_ack(grouped.handle_hl7(_result("ORU1", "SQ1", "F1"), peer=PEER)).code == "AA"
    with pytest.raises(WriteConflict):
        grouped.ingest.write(stale)  # type: ignore[arg-type]
    assert parse_ack(grouped.handle_hl7(correction, peer=PEER)).code == "AA"
    (report,) = grouped.service.search("DiagnosticReport", []).resources
    assert (report["meta"]["versionId"], report["conclusion"]) == ("2", "更正")
