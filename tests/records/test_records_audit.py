"""medledger audit --records: every stored version matches the ledger entry certifying it."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from medledger.cli.main import app
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService

PATIENT = {"resourceType": "Patient", "gender": "female", "name": [{"family": "孙"}]}


def _setup(tmp_path: Path) -> tuple[Path, list[str]]:
    data = tmp_path / "d"
    LedgerNode.init(data, node="hosp-central", block_max_wait_ms=1).close()
    with LedgerNode.open(data) as node:
        s = RecordService.open(node)
        rids = [s.create("Patient", PATIENT).version.rid for _ in range(3)]
        s.update("Patient", rids[0], {**PATIENT, "id": rids[0], "gender": "male"})
    return data, rids


def _audit(data: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "--records", "--data", str(data)])
    return result.exit_code, result.output


def _sql(data: Path, stmt: str, **params: object) -> None:
    with LedgerNode.open(data) as node, node.store.engine.begin() as conn:
        conn.execute(text(stmt), params)


def test_intact_records_audit_clean(tmp_path: Path) -> None:
    """An untouched store: every version decrypts and matches its entry."""
    data, _ = _setup(tmp_path)
    code, out = _audit(data)
    assert code == 0, out
    assert "4 versions, 4 decrypted and matched" in out


def test_altered_ciphertext_is_found(tmp_path: Path) -> None:
    """A flipped byte in a stored payload is named by its version ref."""
    data, rids = _setup(tmp_path)
    with LedgerNode.open(data) as node, node.store.engine.begin() as conn:
        blob = conn.execute(
            text("SELECT blob FROM record_versions WHERE rid = :r AND vid = 1"), {"r": rids[1]}
        ).scalar_one()
        conn.execute(
            text("UPDATE record_versions SET blob = :b WHERE rid = :r AND vid = 1"),
            {"b": blob[:-1] + bytes([blob[-1] ^ 1]), "r": rids[1]},
        )
    code, out = _audit(data)
    assert code == 1
    assert f"Patient/{rids[1]}/_history/1" in out
    assert "altered" in out


def test_missing_version_is_found(tmp_path: Path) -> None:
    """A version deleted from the database is reported from its ledger entry."""
    data, rids = _setup(tmp_path)
    _sql(data, "DELETE FROM record_versions WHERE rid = :r AND vid = 2", r=rids[0])
    code, out = _audit(data)
    assert code == 1
    assert f"Patient/{rids[0]}/_history/2" in out
    assert "does not hold" in out


def test_audit_does_not_write(tmp_path: Path) -> None:
    """Auditing a store with a pending version reports it and appends nothing."""
    data, rids = _setup(tmp_path)
    _sql(data, "UPDATE record_versions SET state = 'pending' WHERE rid = :r", r=rids[2])
    with LedgerNode.open(data) as node, node.reader() as r:
        before = r.entry_count()
    code, out = _audit(data)
    assert "1 pending" in out
    with LedgerNode.open(data) as node, node.reader() as r:
        assert r.entry_count() == before
        assert json.loads(r.get_entry(before - 1))["type"] == "record.put"
    assert code == 1
    assert "anchoring mark was removed" in out
