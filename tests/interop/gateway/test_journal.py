"""The message journal: durable before processing, duplicates counted, raw bytes sealed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from medledger.errors import InputError, StateError
from medledger.interop.journal import Journal, day_of
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService
from medledger.store.schema_interop import interop_messages

RAW = "MSH|^~\\&|HIS|示例区中医院|LIS|示例市第一人民医院|20261123||ORM^O01|C1|P|2.5\r".encode()


@pytest.fixture
def journal(tmp_path: Path, db_url: str | None) -> Iterator[Journal]:
    node = LedgerNode.init(tmp_path / "d", db=db_url, node="central", block_max_wait_ms=1)
    try:
        service = RecordService.open(node)
        yield Journal(node.store.engine, service.keyring, node.suite)
    finally:
        node.close()


def _begin(j: Journal, control_id: str = "C1", raw: bytes = RAW):  # type: ignore[no-untyped-def]
    return j.begin(
        interface="mllp",
        institution="hosp-member-east",
        source="HIS^示例区中医院",
        control_id=control_id,
        message_type="ORM^O01",
        raw=raw,
    )


def test_a_message_is_recorded_once_and_redeliveries_are_counted(journal: Journal) -> None:
    """The first arrival is new; the next ones return the same row with duplicates counted,
    and say whether the bytes were the same."""
    first = _begin(journal)
    assert first.new
    assert not first.finished
    assert first.message.status == "received"
    again = _begin(journal)
    assert not again.new
    assert again.same_bytes
    assert again.message.id == first.message.id
    assert again.message.duplicates == 1
    other = _begin(journal, raw=RAW + b"PID|1\r")
    assert not other.new
    assert not other.same_bytes
    assert other.message.duplicates == 2
    assert journal.count() == 1


def test_raw_bytes_are_sealed_and_dropped_once_stored(journal: Journal) -> None:
    """The stored blob is not the plaintext; it opens while held and is gone once stored."""
    begun = _begin(journal)
    with journal.engine.connect() as c:
        blob = c.execute(select(interop_messages.c.raw_sealed)).scalar_one()
    assert RAW not in blob
    assert "示例区中医院".encode() not in blob
    held = journal.finish(begun.message.id, status="held", ack_code="AA", unmapped=("x|JC9",))
    assert journal.raw(held) == RAW
    assert held.unmapped == ("x|JC9",)
    stored = journal.finish(
        held.id, status="stored", ack_code="AA", refs=("ServiceRequest/1/_history/1",)
    )
    assert stored.refs == ("ServiceRequest/1/_history/1",)
    with pytest.raises(StateError, match="no longer kept"):
        journal.raw(stored)
    assert _begin(journal).finished  # a redelivery of a finished message is not reprocessed


def test_concurrent_twins_make_one_row(journal: Journal) -> None:
    """Eight threads delivering the same control id at once: one is new, seven duplicates."""
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def go() -> None:
        barrier.wait()
        results.append(_begin(journal, control_id="TWIN").new)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert journal.between("2000-01-01", "2999-12-31")[0].duplicates == 7


def test_bad_identity_is_refused_naming_the_field(journal: Journal) -> None:
    """An empty or oversize control id is an InputError naming it; nothing is written."""
    with pytest.raises(InputError) as caught:
        _begin(journal, control_id="")
    assert caught.value.field == "control_id"
    with pytest.raises(InputError):
        _begin(journal, control_id="x" * 300)
    assert journal.count() == 0


def test_days_are_hospital_days() -> None:
    """Reconciliation days are UTC+8 calendar days."""
    assert day_of(1_700_000_000_000) == "2023-11-15"  # 2023-11-14T22:13:20Z
