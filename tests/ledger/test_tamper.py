"""Tamper with each stored table kind; the audit must catch and locate every change."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from medledger.ledger.audit import Auditor, AuditReport
from medledger.ledger.config import HEAD_FILE
from medledger.ledger.node import LedgerNode
from medledger.ledger.proof import node_key

N = 100


@pytest.fixture
def filled(tmp_path: Path, db_url: str | None) -> Iterator[LedgerNode]:
    n = LedgerNode.init(
        tmp_path / "data", db=db_url, node="t", block_max_entries=10, block_max_wait_ms=0
    )
    for k in range(0, N, 10):
        n.append([{"v": 1, "type": "test.entry", "meta": {"n": k + i}} for i in range(10)])
    yield n
    n.close()


def _audit(node: LedgerNode) -> AuditReport:
    with node.reader() as r:
        return Auditor(r, node.suite, node.trust, head_file=node.data_dir / HEAD_FILE).run()


def _sql(node: LedgerNode, stmt: str, **params: object) -> None:
    with node.store.engine.begin() as conn:
        conn.execute(text(stmt), params)


def _located(report: AuditReport) -> set[tuple[str, object]]:
    return {(f["kind"], f["at"]) for f in report.findings}


def test_intact_store_audits_clean(filled: LedgerNode) -> None:
    """An untouched store has no findings and every item was checked."""
    report = _audit(filled)
    assert report.ok, report.findings
    assert (report.entries, report.blocks) == (N, N // 10 + 1)
    assert report.nodes == 2 * N - bin(N).count("1")


def _flip(blob: bytes, at: int = 5) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1 :]


Tamper = Callable[[LedgerNode], set[tuple[str, object]]]


def entry_bytes(n: LedgerNode) -> set[tuple[str, object]]:
    _sql(
        n,
        "UPDATE ledger_entries SET data = :d WHERE idx = 37",
        d=b'{"meta":{"n":99},"type":"test.entry","v":1}',
    )
    return {("entry", 37)}


def node_hash(n: LedgerNode) -> set[tuple[str, object]]:
    with n.reader() as r:
        h = r.get_nodes([(3, 4)])[0]
    _sql(n, "UPDATE ledger_nodes SET hash = :h WHERE id = :k", h=_flip(h), k=node_key(3, 4))
    return {("node", "3/4")}


def leaf_hash(n: LedgerNode) -> set[tuple[str, object]]:
    with n.reader() as r:
        h = r.get_nodes([(0, 12)])[0]
    _sql(n, "UPDATE ledger_nodes SET hash = :h WHERE id = :k", h=_flip(h), k=node_key(0, 12))
    return {("entry", 12)}


def header_field(n: LedgerNode) -> set[tuple[str, object]]:
    _sql(
        n,
        "UPDATE ledger_blocks SET header = :h WHERE height = 4",
        h=_block_header(n, 4).replace(b'"tree_size":40', b'"tree_size":41'),
    )
    return {("signature", 4), ("block", 4)}


def signature(n: LedgerNode) -> set[tuple[str, object]]:
    with n.reader() as r:
        _key, sig = r.get_block(6).signatures[0]
    _sql(n, "UPDATE ledger_signatures SET sig = :s WHERE height = 6", s=_flip(sig, 10))
    return {("signature", 6)}


def delete_entry(n: LedgerNode) -> set[tuple[str, object]]:
    _sql(n, "DELETE FROM ledger_entries WHERE idx = 55")
    return {("entry", 55)}


def delete_node(n: LedgerNode) -> set[tuple[str, object]]:
    _sql(n, "DELETE FROM ledger_nodes WHERE id = :k", k=node_key(2, 9))
    return {("node", "2/9")}


def delete_block(n: LedgerNode) -> set[tuple[str, object]]:
    _sql(n, "DELETE FROM ledger_signatures WHERE height = 3")
    _sql(n, "DELETE FROM ledger_blocks WHERE height = 3")
    return {("block", 3)}


def swap_entries(n: LedgerNode) -> set[tuple[str, object]]:
    with n.reader() as r:
        a, b = r.get_entry(20), r.get_entry(71)
    _sql(n, "UPDATE ledger_entries SET data = :d WHERE idx = 20", d=b)
    _sql(n, "UPDATE ledger_entries SET data = :d WHERE idx = 71", d=a)
    return {("entry", 20), ("entry", 71)}


def truncate_entries(n: LedgerNode) -> set[tuple[str, object]]:
    _sql(n, "DELETE FROM ledger_entries WHERE idx >= 95")
    return {("entry", i) for i in range(95, 100)}


def truncate_everything(n: LedgerNode) -> set[tuple[str, object]]:
    # A consistent rollback of every table: only the last-head file outside the DB can tell.
    _sql(n, "DELETE FROM ledger_entries WHERE idx >= 90")
    _sql(
        n,
        "DELETE FROM ledger_nodes WHERE (id & 281474976710655) >= "
        "(CAST(90 AS BIGINT) >> CAST(id >> 48 AS INTEGER))",
    )
    _sql(n, "DELETE FROM ledger_signatures WHERE height = 10")
    _sql(n, "DELETE FROM ledger_blocks WHERE height = 10")
    return {("head", 10)}


def _block_header(n: LedgerNode, height: int) -> bytes:
    with n.reader() as r:
        return r.get_block(height).header


@pytest.mark.parametrize(
    "tamper",
    [
        entry_bytes,
        node_hash,
        leaf_hash,
        header_field,
        signature,
        delete_entry,
        delete_node,
        delete_block,
        swap_entries,
        truncate_entries,
        truncate_everything,
    ],
)
def test_audit_locates_tampering(filled: LedgerNode, tamper: Tamper) -> None:
    """Each kind of tampering is found, and the finding names where it happened."""
    expected = tamper(filled)
    report = _audit(filled)
    assert not report.ok
    assert expected <= _located(report), report.findings


def test_audit_streams_many_small_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With blocks read a few at a time, audit still checks every block and link."""
    from medledger.ledger import sqlstore

    monkeypatch.setattr(sqlstore, "_BLOCK_PAGE", 7)
    n = LedgerNode.init(tmp_path / "d", node="t", block_max_entries=1, block_max_wait_ms=0)
    try:
        for k in range(30):
            n.append([{"v": 1, "type": "test.entry", "meta": {"n": k}}])
        report = _audit(n)
        assert report.ok, report.findings
        assert (report.blocks, report.entries) == (31, 30)
        _sql(n, "DELETE FROM ledger_signatures WHERE height = 14")
        _sql(n, "DELETE FROM ledger_blocks WHERE height = 14")  # the last row of page two
        assert ("block", 14) in _located(_audit(n))
    finally:
        n.close()


def test_audit_of_live_ledger_is_clean_while_it_grows(filled: LedgerNode) -> None:
    """A snapshot audit that starts before an append does not report the new head as a loss."""
    with filled.reader() as r:
        auditor = Auditor(r, filled.suite, filled.trust, head_file=filled.data_dir / HEAD_FILE)
        head = auditor._read_head_file()
        r.entry_count()  # the snapshot starts here
        filled.append([{"v": 1, "type": "test.entry"}])
        assert head is not None
        auditor._audit_head(head)
        assert auditor.report.ok, auditor.report.findings
    assert _audit(filled).ok


def test_missing_head_file_is_reported(filled: LedgerNode) -> None:
    """Deleting the last-head file cannot hide a rollback: audit says the file is missing."""
    (filled.data_dir / HEAD_FILE).unlink()
    report = _audit(filled)
    assert [f["kind"] for f in report.findings] == ["head"]
    assert "missing" in report.findings[0]["problem"]


def test_audit_flags_rows_outside_the_key_space(filled: LedgerNode) -> None:
    """Rows at negative indices or impossible node keys are reported, not ignored."""
    _sql(filled, "INSERT INTO ledger_entries (idx, data) VALUES (-1, :d)", d=b"{}")
    _sql(filled, "INSERT INTO ledger_nodes (id, hash) VALUES (:k, :h)", k=50 << 48, h=bytes(32))
    located = _located(_audit(filled))
    assert ("entry", -1) in located
    assert ("node", 50 << 48) in located


def test_audit_caps_an_absurd_tree_size(filled: LedgerNode) -> None:
    """A block row claiming 10^15 entries is reported and does not make audit walk forever."""
    _sql(filled, "UPDATE ledger_blocks SET tree_size = 1000000000000000 WHERE height = 10")
    report = _audit(filled)
    assert ("block", "tree_size") in _located(report)
    assert ("block", 10) in _located(report)
