"""The record store: encrypted append-only versions, anchored on the ledger atomically."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from medledger.crypto.canonical import canonical_bytes
from medledger.errors import Gone, NotFound, PreconditionFailed
from medledger.ledger.node import LedgerNode
from medledger.records.anchoring import AnchoredStore
from medledger.records.blind import pseudonym
from medledger.records.keyring import KeyRing
from medledger.records.masterkey import MasterKey
from medledger.records.store import IndexRow, RecordStore
from medledger.verify.certificate import parse_certificate, verify_certificate

GROUP = b"\x07" * 32


@pytest.fixture
def records(tmp_path: Path, db_url: str | None) -> Iterator[tuple[AnchoredStore, LedgerNode]]:
    node = LedgerNode.init(tmp_path / "d", db=db_url, node="central", block_max_wait_ms=1)
    master = MasterKey.from_bytes(node.suite, b"\x11" * node.suite.aead_key_size)
    ring = KeyRing(node.store.engine, node.suite, [master])
    anchored = AnchoredStore(RecordStore(node.store.engine, ring, node.suite), node)
    yield anchored, node
    node.close()


def _subject(node: LedgerNode, patient: str = "mzh-0001") -> str:
    return pseudonym(GROUP, "hosp-central", patient, node.suite)


OBS = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
    "valueQuantity": {"value": 135, "unit": "g/L"},
}


def test_write_anchor_load_and_certify(records: tuple[AnchoredStore, LedgerNode]) -> None:
    """A version is encrypted, anchored on the ledger, and its certificate verifies offline."""
    anchored, node = records
    subject = _subject(node)
    written = anchored.store.write("Observation", "o1", OBS, inst="hosp-central", subject=subject)
    version, receipt = anchored.anchor(written)
    assert receipt is not None
    assert version.ledger_index == receipt.index
    assert anchored.store.current("Observation", "o1").state == "anchored"
    loaded = anchored.store.load("Observation", "o1")
    assert loaded.resource["meta"]["versionId"] == "1"
    assert {k: v for k, v in loaded.resource.items() if k not in ("id", "meta")} == OBS
    cert = node.certificate(receipt.index, payload_salt=loaded.salt)
    assert cert["entry"]["ref"] == "Observation/o1/_history/1"
    assert cert["entry"]["subject"] == subject
    report = verify_certificate(
        parse_certificate(cert), node.trust, payload=canonical_bytes(loaded.resource)
    )
    assert "payload" in report.passed[-1]


def test_versions_are_append_only_with_if_match(records: tuple[AnchoredStore, LedgerNode]) -> None:
    """Updates add versions; a stale If-Match is refused; a delete is a tombstone version."""
    anchored, node = records
    s = _subject(node)
    anchored.anchor(anchored.store.write("Observation", "o2", OBS, inst="hosp-central", subject=s))
    amended = {**OBS, "status": "amended"}
    anchored.anchor(
        anchored.store.write(
            "Observation", "o2", amended, inst="hosp-central", subject=s, if_match=1
        )
    )
    with pytest.raises(PreconditionFailed):
        anchored.store.write("Observation", "o2", OBS, inst="hosp-central", subject=s, if_match=1)
    anchored.anchor(anchored.store.write("Observation", "o2", None, inst="hosp-central", subject=s))
    assert [v.vid for v in anchored.store.history("Observation", "o2")] == [3, 2, 1]
    with pytest.raises(Gone):
        anchored.store.load("Observation", "o2")
    assert anchored.store.load("Observation", "o2", 1).resource["status"] == "final"
    assert anchored.store.load("Observation", "o2", 2).resource["status"] == "amended"
    with pytest.raises(NotFound):
        anchored.store.load("Observation", "nope")


def test_no_plaintext_in_the_database_file(tmp_path: Path) -> None:
    """Names and identifiers written through the store never appear in the raw SQLite file."""
    node = LedgerNode.init(tmp_path / "d", node="central", block_max_wait_ms=1)
    ring = KeyRing(
        node.store.engine,
        node.suite,
        [MasterKey.from_bytes(node.suite, b"\x22" * node.suite.aead_key_size)],
    )
    anchored = AnchoredStore(RecordStore(node.store.engine, ring, node.suite), node)
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "欧阳", "given": ["娜娜"]}],
        "identifier": [{"system": "urn:hosp-central:mzh", "value": "MZH20261122042"}],
        "birthDate": "1987-03-14",
    }
    s = _subject(node, "MZH20261122042")
    token = IndexRow("identifier", "token", None, hashlib.sha256(b"opaque").hexdigest())
    anchored.anchor(
        anchored.store.write(
            "Patient", "p1", patient, inst="hosp-central", subject=s, index=[token]
        )
    )
    node.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "d").glob("ledger.db*"))
    for secret in ("欧阳", "娜娜", "MZH20261122042", "1987-03-14"):
        assert secret.encode() not in raw, secret


def test_concurrent_conditional_creates_yield_one_resource(
    records: tuple[AnchoredStore, LedgerNode],
) -> None:
    """Many identical conditional creates at once: exactly one resource, all get its id."""
    anchored, node = records
    s = _subject(node)
    criteria = hashlib.sha256(b"Observation?identifier=urn:lis|BC-1").hexdigest()
    ids: list[str] = []
    created: list[bool] = []
    lock = threading.Lock()

    def create(k: int) -> None:
        w = anchored.store.write(
            "Observation",
            f"cand-{k}",
            OBS,
            inst="hosp-central",
            subject=s,
            must_be_new=True,
            conditional=criteria,
        )
        anchored.anchor(w)
        with lock:
            ids.append(w.version.rid)
            created.append(w.created)

    threads = [threading.Thread(target=create, args=(k,)) for k in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1
    assert created.count(True) == 1
    with node.reader() as r:
        entries = [json.loads(r.get_entry(i)) for i in range(r.entry_count())]
    assert sum(e["type"] == "record.put" for e in entries) == 1


def test_recovery_anchors_pending_versions(records: tuple[AnchoredStore, LedgerNode]) -> None:
    """A version stored but never appended (a crash in between) is anchored by recovery."""
    anchored, node = records
    s = _subject(node)
    anchored.store.write("Observation", "o9", OBS, inst="hosp-central", subject=s)
    assert [v.ref for v, _ in anchored.store.pending()] == ["Observation/o9/_history/1"]
    assert anchored.recover() == 1
    assert anchored.store.pending() == []
    version = anchored.store.current("Observation", "o9")
    assert version.state == "anchored"
    with node.reader() as r:
        assert json.loads(r.get_entry(version.ledger_index))["ref"] == version.ref  # type: ignore[arg-type]


def test_one_writer_per_data_directory(records: tuple[AnchoredStore, LedgerNode]) -> None:
    """While one node writes a ledger, a second one (an admin command) is refused cleanly."""
    from medledger.errors import StateError

    _, node = records
    node.acquire_writer()
    other = LedgerNode.open(node.data_dir)
    try:
        with pytest.raises(StateError, match="another process is writing"):
            other.append([{"v": 1, "type": "test.entry"}])
    finally:
        other.close()


def test_stray_entries_never_move_an_anchor(records: tuple[AnchoredStore, LedgerNode]) -> None:
    """Entries that merely mention a version's ref cannot re-anchor it or break a block."""
    anchored, node = records
    s = _subject(node)
    version, _ = anchored.anchor(
        anchored.store.write("Observation", "o7", OBS, inst="hosp-central", subject=s)
    )
    node.append(
        [
            {"v": 1, "type": "lineage.event", "ref": version.ref, "meta": {"type": "record.put"}},
            {"v": 1, "type": "record.put", "ref": "Observation/o7/_history/one"},
            {"v": 1, "type": "record.put", "ref": version.ref},
        ]
    )
    assert anchored.store.current("Observation", "o7").ledger_index == version.ledger_index
