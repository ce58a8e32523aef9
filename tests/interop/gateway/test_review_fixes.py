"""Regressions found reviewing the gateway: a lost release, errors of the wrong type."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from medledger.errors import InputError, NotFound
from medledger.interop.config import parse_gateway
from medledger.interop.gateway import Gateway
from medledger.interop.hl7.ack import parse_ack
from medledger.interop.hl7.outbound import order_message, result_message
from medledger.interop.model import Coded, OrderItem, Patient, Requisition, Result, code_system
from medledger.interop.model_json import model_from_json
from medledger.interop.reconcile import resolve_days
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=CST)
EAST, CENTRAL = "hosp-member-east", "hosp-central"
FACILITIES = {"示例区中医院": EAST, "示例市第一人民医院": CENTRAL}
PATIENT = Patient(id="MZ2026001", name="赵晓梅", sex="female", birth_date="1975-06-12")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    node = LedgerNode.init(tmp_path / "d", node=CENTRAL, block_max_wait_ms=1)
    try:
        yield Gateway(RecordService.open(node), parse_gateway({"facilities": FACILITIES}))
    finally:
        node.close()


def _order() -> bytes:
    req = Requisition(
        sender=EAST,
        performer=None,
        patient=PATIENT,
        items=(
            OrderItem(
                placer="SQ2026001", code=Coded(code_system(EAST), "JC0101", "胸部CT平扫"),
                kind="radiology",
            ),
        ),
        authored="2026-11-20T08:00:00+08:00",
    )  # fmt: skip
    return order_message(
        req, control_id="ORM-R1", sending=("HIS", "示例区中医院"), receiving=("RIS", ""), now=NOW
    )


def _result() -> bytes:
    res = Result(
        sender=CENTRAL,
        placer_institution=EAST,
        patient=PATIENT,
        placer="SQ2026001",
        filler="JC2026001",
        code=Coded(code_system(CENTRAL), "300101", "胸部CT平扫"),
        kind="radiology",
        status="final",
        issued="2026-11-20T15:00:00+08:00",
        conclusion="双肺未见明显异常",
    )
    return result_message(
        res,
        control_id="ORU-R1",
        sending=("PACS", "示例市第一人民医院"),
        receiving=("HIS", "示例区中医院"),
        now=NOW,
    )


class _HookedLock:
    """A real lock that runs ``hook`` once, just before its first release."""

    def __init__(self, hook: Callable[[], object]) -> None:
        self._lock = threading.Lock()
        self._hook: Callable[[], object] | None = hook

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook()
        self._lock.release()


def test_a_release_asked_for_as_the_last_pass_ends_is_not_lost(gateway: Gateway) -> None:
    """An order stored after a release pass found nothing, but before that pass let go of the
    lock, still releases the result held for it: the releasing thread passes again."""
    assert parse_ack(gateway.handle_hl7(_result())).code == "AA"
    assert [m.mismatch for m in gateway.journal.by_status("held")] == ["order-unknown"]
    stored_order: list[str] = []

    def order_arrives() -> None:
        stored_order.append(parse_ack(gateway.handle_hl7(_order())).code)

    gateway._held._lock = _HookedLock(order_arrives)  # type: ignore[assignment]
    assert gateway.release_held() == 1
    assert stored_order == ["AA"]
    assert gateway.journal.by_status("held") == []
    assert [m.message_type for m in gateway.journal.by_status("stored")] == [
        "ORU^R01",
        "ORM^O01",
    ]


def test_an_unknown_journal_message_is_not_found(gateway: Gateway) -> None:
    """Asking for a message id the journal never gave out is NotFound (404), not a conflict."""
    with pytest.raises(NotFound) as info:
        gateway.journal.get(4242)
    assert (info.value.field, info.value.value, info.value.http_status) == ("id", 4242, 404)


@pytest.mark.parametrize("since", ["99999999999d", "1000000000d", "²d"])
def test_reconcile_days_out_of_range_are_input_errors(since: str) -> None:
    """A day count no calendar holds, or digits int() cannot read, is an InputError naming
    ``since`` (not an OverflowError or ValueError from the date arithmetic)."""
    with pytest.raises(InputError) as info:
        resolve_days(since, None)
    assert (info.value.field, info.value.value) == ("since", since)


def test_a_route_needs_a_port_to_send_to() -> None:
    """A push route on port 0 is refused when the configuration is read, naming the route's
    key; port 0 stays allowed for the listener (any free port)."""
    with pytest.raises(InputError) as info:
        parse_gateway({"routes": {EAST: {"mllp": "10.1.2.3:0"}}})
    assert info.value.field == f"routes.{EAST}.mllp"
    listening = parse_gateway({"mllp": {"listen": "127.0.0.1:0"}})
    assert listening.listen == ("127.0.0.1", 0)
    route = parse_gateway({"routes": {EAST: {"mllp": "10.1.2.3:2575"}}}).routes[EAST]
    assert (route.host, route.port, route.facility) == ("10.1.2.3", 2575, EAST)


def test_an_unknown_model_kind_says_what_is_expected() -> None:
    """Journalled JSON of another kind is an InputError naming the kind and the two it takes."""
    with pytest.raises(InputError) as info:
        model_from_json(b'{"kind": "invoice", "model": {}}')
    assert (info.value.field, info.value.value) == ("kind", "invoice")
    assert info.value.expected == "requisition or result"
