"""Master-key rotation and patient erasure, through the service and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medledger.cli.main import app
from medledger.errors import Gone, StateError
from medledger.ledger.audit import Auditor
from medledger.ledger.config import HEAD_FILE
from medledger.ledger.node import LedgerNode
from medledger.records.service import MASTER_FILE, NEXT_MASTER_FILE, RecordService

PATIENT = {"resourceType": "Patient", "name": [{"family": "王", "given": ["五"]}]}


def _obs(pid: str) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": f"Patient/{pid}"},
    }


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "d"
    LedgerNode.init(d, node="hosp-central", block_max_wait_ms=1).close()
    return d


def _populate(data: Path) -> tuple[str, str]:
    with LedgerNode.open(data) as node:
        s = RecordService.open(node)
        pid = s.create("Patient", PATIENT).version.rid
        oid = s.create("Observation", _obs(pid)).version.rid
    return pid, oid


def _audit_ok(node: LedgerNode) -> bool:
    with node.reader() as r:
        return Auditor(r, node.suite, node.trust, head_file=node.data_dir / HEAD_FILE).run().ok


def test_rotation_rewraps_keys_and_keeps_every_record_readable(data: Path) -> None:
    """After rotation the old master key is retired and every version still decrypts."""
    pid, oid = _populate(data)
    old_key = (data / MASTER_FILE).read_text()
    result = CliRunner().invoke(app, ["keys", "rotate", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "re-wrapped" in result.output
    assert (data / MASTER_FILE).read_text() != old_key
    assert not (data / NEXT_MASTER_FILE).exists()
    retired = list(data.glob(f"{MASTER_FILE}.retired-*"))
    assert len(retired) == 1
    assert retired[0].read_text() == old_key
    with LedgerNode.open(data) as node:
        s = RecordService.open(node)
        assert s.read("Patient", pid).resource["name"][0]["family"] == "王"
        assert s.read("Observation", oid).resource["status"] == "final"
        with node.reader() as r:
            types = [json.loads(r.get_entry(i))["type"] for i in range(r.entry_count())]
        assert types[-1] == "key.rotate"
        assert _audit_ok(node)


def test_interrupted_rotation_resumes(data: Path) -> None:
    """A rotation stopped half-way keeps everything readable and finishes on the next run."""
    with LedgerNode.open(data) as node:
        s = RecordService.open(node)
        pids = [s.create("Patient", PATIENT).version.rid for _ in range(7)]

        seen: list[tuple[int, int]] = []

        def stop(done: int, total: int) -> None:
            seen.append((done, total))
            raise KeyboardInterrupt("simulated crash after the first batch")

        with pytest.raises(KeyboardInterrupt):
            s.rotate_master(progress=stop, batch=3)
        assert seen == [(3, 7)]  # three of seven keys re-wrapped when it stopped
    assert (data / NEXT_MASTER_FILE).exists()
    with LedgerNode.open(data) as node:
        s = RecordService.open(node)  # opens with both keys
        for pid in pids:
            assert s.read("Patient", pid).resource["resourceType"] == "Patient"
        s.rotate_master()
        assert not (data / NEXT_MASTER_FILE).exists()
        assert set(s.keyring.rotation_status()) == {s.master.kid}


def test_erasure_respects_the_retention_floor(data: Path) -> None:
    """Erasing recent records needs --force; then reads are Gone and the ledger records it."""
    pid, oid = _populate(data)
    runner = CliRunner()
    refused = runner.invoke(
        app, ["patient", "erase", pid, "--reason", "REQ-2026-118", "--data", str(data)]
    )
    assert refused.exit_code == 2
    assert "retention floor" in refused.output
    done = runner.invoke(
        app, ["patient", "erase", pid, "--reason", "REQ-2026-118", "--force", "--data", str(data)]
    )
    assert done.exit_code == 0, done.output
    with LedgerNode.open(data) as node:
        s = RecordService.open(node)
        for rtype, rid in (("Patient", pid), ("Observation", oid)):
            with pytest.raises(Gone):
                s.read(rtype, rid)
        with node.reader() as r:
            last = json.loads(r.get_entry(r.entry_count() - 1))
        assert last["type"] == "record.erase"
        assert last["meta"]["forced"] is True
        assert "REQ-2026-118" not in json.dumps(last)
        assert _audit_ok(node)


def test_erasing_unknown_patient(data: Path) -> None:
    """Erasing a patient with no records on this node is an input error that changes nothing."""
    with LedgerNode.open(data) as node:
        s = RecordService.open(node)
        with pytest.raises(Exception, match="no records"):
            s.erase_patient("nobody", "REQ-1", force=True)
        pid = s.create("Patient", PATIENT).version.rid
        with pytest.raises(StateError):
            s.erase_patient(pid, "REQ-2")
