"""Tampering with the stored audit trail is found by the audit and breaks certificates."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from medledger.access.audit_check import TrailAuditReport, audit_trail
from medledger.access.audit_trail import AuditTrail
from medledger.errors import StorageError, VerificationFailed
from medledger.ledger.node import LedgerNode
from medledger.store.schema_audit import audit_batches, audit_entities, audit_events
from medledger.verify.audit import verify_audit_certificate
from tests.access._audit_fixtures import DR_LI, cli, read_record, trail_on

E = audit_events.c


@pytest.fixture
def env(tmp_path: Path, db_url: str | None) -> Iterator[tuple[LedgerNode, AuditTrail, list[str]]]:
    """12 events anchored in batches of 5, 5 and 2, then 3 events not anchored yet."""
    with trail_on(tmp_path, db_url, max_batch=5) as (node, trail):
        other = replace(DR_LI, principal="dr.wu")
        ids = [trail.record(read_record(i, DR_LI if i % 2 else other)) for i in range(12)]
        assert trail.flush() == 12
        ids += [trail.record(read_record(i)) for i in range(12, 15)]
        yield node, trail, ids


def _audit(node: LedgerNode) -> TrailAuditReport:
    with node.reader() as reader:
        return audit_trail(node.store.engine, reader, node.suite)


def _sql(node: LedgerNode, statement: Any) -> None:
    with node.store.engine.begin() as conn:
        conn.execute(statement)


def _event(node: LedgerNode, seq: int) -> bytes:
    with node.store.engine.connect() as conn:
        return bytes(conn.execute(select(E.event).where(E.seq == seq)).scalar_one())


def _problems(report: TrailAuditReport) -> list[str]:
    return [f"{f['kind']} {f['at']}: {f['problem']}" for f in report.findings]


def test_an_intact_trail_has_no_findings(env: tuple[LedgerNode, AuditTrail, list[str]]) -> None:
    """Untouched: every batch matches its chain entry; three events wait to be anchored."""
    node, _, _ = env
    report = _audit(node)
    assert report.ok, _problems(report)
    assert (report.events, report.batches, report.pending, report.unbatched) == (15, 3, 0, 3)


def test_altered_event_bytes_break_the_root_and_its_certificate(
    env: tuple[LedgerNode, AuditTrail, list[str]],
) -> None:
    """An edited outcome text is a root mismatch naming the batch; the certificate fails."""
    node, trail, ids = env
    forged = _event(node, 3).replace(b"read Observation", b"read Obsrvation")
    _sql(node, update(audit_events).where(E.seq == 3).values(event=forged))
    problems = _problems(_audit(node))
    assert len(problems) == 1
    assert "no longer hash to the root" in problems[0]
    assert "seq 1..5" in problems[0]
    with pytest.raises(VerificationFailed) as info:
        verify_audit_certificate(trail.certificate(ids[2]), node.trust)
    assert info.value.check == "audit.root"
    verify_audit_certificate(trail.certificate(ids[7]), node.trust)  # other batches still hold


def test_altered_principal_is_named_by_seq(env: tuple[LedgerNode, AuditTrail, list[str]]) -> None:
    """Rewriting who did it in the event bytes names the seq, and the batch root breaks."""
    node, _, _ = env
    forged = _event(node, 2).replace(b'"value":"dr.li"', b'"value":"dr.xx"')
    _sql(node, update(audit_events).where(E.seq == 2).values(event=forged))
    problems = _problems(_audit(node))
    assert "audit-event seq 2: altered: its columns disagree with its event" in problems
    assert any("altered: seq 2" in p for p in problems)


def test_altered_columns_alone_are_found(env: tuple[LedgerNode, AuditTrail, list[str]]) -> None:
    """Hiding an event from agent search by editing its principal column is found."""
    node, _, _ = env
    _sql(node, update(audit_events).where(E.seq == 7).values(principal="nobody"))
    _sql(node, delete(audit_entities).where(audit_entities.c.seq == 9))
    problems = _problems(_audit(node))
    assert problems == [
        "audit-event seq 7: altered: its columns disagree with its event",
        "audit-event seq 9: altered: its entity index rows disagree with its event",
    ]


def test_deleted_event_is_found(env: tuple[LedgerNode, AuditTrail, list[str]]) -> None:
    """A deleted anchored event is named, and its batch no longer matches the chain."""
    node, _, _ = env
    _sql(node, delete(audit_events).where(E.seq == 8))
    problems = _problems(_audit(node))
    assert problems[0].startswith("audit-event seq 8: deleted")
    assert any("holds 4 events" in p for p in problems)
    assert any("no longer hash to the root" in p for p in problems)


def test_deleted_unanchored_event_leaves_a_hole(
    env: tuple[LedgerNode, AuditTrail, list[str]],
) -> None:
    """Gapless seq numbers expose an event deleted before it was anchored."""
    node, _, _ = env
    _sql(node, delete(audit_events).where(E.seq == 14))
    assert _problems(_audit(node)) == ["audit-event seq 14: deleted (not anchored yet)"]


def test_deleted_or_altered_batch_row_is_found(
    env: tuple[LedgerNode, AuditTrail, list[str]],
) -> None:
    """A deleted batch row and an edited one are both reported against the chain."""
    node, _, _ = env
    with node.store.engine.connect() as conn:
        first, second = (
            conn.execute(select(audit_batches.c.batch_id).order_by(audit_batches.c.first_seq))
            .scalars()
            .all()[:2]
        )
    _sql(node, delete(audit_batches).where(audit_batches.c.batch_id == first))
    _sql(node, update(audit_batches).where(audit_batches.c.batch_id == second).values(root="00"))
    problems = _problems(_audit(node))
    assert len(problems) == 2
    assert problems[0].startswith(f"audit-batch {first}: ledger entry")
    assert "its row was deleted" in problems[0]
    assert problems[1].startswith(f"audit-batch {second}: its row differs")


def test_cli_audit_reports_the_trail_and_exits_1(
    env: tuple[LedgerNode, AuditTrail, list[str]],
) -> None:
    """`medledger audit` covers the audit trail: intact exits 0, a deleted event exits 1."""
    node, _, _ = env
    ok = cli("audit", "--data", node.data_dir)
    assert ok.exit_code == 0, ok.output
    assert "audit trail: 15 events, 3 batches anchored" in ok.output
    _sql(node, delete(audit_events).where(E.seq == 4))
    bad = cli("audit", "--data", node.data_dir)
    assert bad.exit_code == 1, bad.output
    assert "TAMPERED audit-event seq 4: deleted" in bad.output
    as_json = cli("audit", "--data", node.data_dir, "--json")
    assert as_json.exit_code == 1
    assert '"kind": "audit-batch"' in as_json.output


def test_deleted_pending_batch_row_is_found(
    env: tuple[LedgerNode, AuditTrail, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events whose pending batch row is deleted could never be anchored: that is reported."""
    node, trail, _ = env

    def down(_entries: Any) -> Any:
        raise StorageError("ledger unavailable")

    monkeypatch.setattr(node, "submit", down)
    with pytest.raises(StorageError):
        trail.flush()
    monkeypatch.undo()
    assert _audit(node).ok
    _sql(node, delete(audit_batches).where(audit_batches.c.state == "pending"))
    assert _problems(_audit(node)) == [
        "audit-event seq 13..15: its pending batch row was deleted, so it can never be anchored"
    ]
