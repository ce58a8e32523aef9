"""Regressions for findings of the ledger-core review: each was a real failure once."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from medledger.ledger.node import LedgerNode
from tests.cli.conftest import Run

ENTRY = '{"v":1,"type":"record.put","inst":"hosp-a"}'


def _cert(run: Run, data: Path, tmp_path: Path) -> tuple[dict[str, object], Path]:
    run("append", "--data", data, input=ENTRY + "\n" + ENTRY + "\n")
    cert = json.loads(run("cert", "--data", data, "1").output)
    return cert, tmp_path / "c.json"


def test_float_that_reads_back_as_huge_int_is_refused(ledger_dir: Path, run: Run) -> None:
    """1e16 would be stored as an integer JCS refuses, so no certificate could verify it."""
    result = run("append", "--data", ledger_dir, input='{"v":1,"type":"a.b","meta":{"n":1e16}}\n')
    assert result.exit_code == 2
    assert "round trip" in result.output
    ok = run("append", "--data", ledger_dir, input='{"v":1,"type":"a.b","meta":{"n":1.5}}\n')
    assert ok.exit_code == 0


def test_corrupt_database_is_an_environment_error(ledger_dir: Path, run: Run) -> None:
    """A database file that is not a database exits 3 with one line, not a traceback."""
    (ledger_dir / "ledger.db").write_bytes(b"this is not an sqlite file" * 100)
    for wal in ("ledger.db-wal", "ledger.db-shm"):
        (ledger_dir / wal).unlink(missing_ok=True)
    for args in (["cert", "0"], ["audit"], ["log"]):
        result = run(*args, "--data", ledger_dir)
        assert result.exit_code == 3, result.output
        assert "Traceback" not in result.output


def test_duplicate_keys_in_certificate_are_malformed(
    ledger_dir: Path, run: Run, tmp_path: Path
) -> None:
    """A certificate with a duplicated member is refused, so a forged value cannot hide."""
    _, path = _cert(run, ledger_dir, tmp_path)
    text = run("cert", "--data", ledger_dir, "1").output
    path.write_text(text.replace('"leaf_index": 1', '"leaf_index": 7, "leaf_index": 1', 1))
    result = run("verify", path, "--trust", ledger_dir / "keys.json")
    assert result.exit_code == 2
    assert "duplicate key" in result.output


def test_header_without_signatures_is_malformed(ledger_dir: Path, run: Run, tmp_path: Path) -> None:
    """A header missing its signatures member is bad input (2), not an invalid proof (1)."""
    cert, path = _cert(run, ledger_dir, tmp_path)
    del cert["header"]["signatures"]  # type: ignore[attr-defined]
    path.write_text(json.dumps(cert))
    assert run("verify", path, "--trust", ledger_dir / "keys.json").exit_code == 2


def test_trailing_newline_in_time_is_refused(ledger_dir: Path, run: Run, tmp_path: Path) -> None:
    """Patterns match whole values: a timestamp with a trailing newline is malformed."""
    cert, path = _cert(run, ledger_dir, tmp_path)
    cert["header"]["ts"] += "\n"  # type: ignore[index]
    path.write_text(json.dumps(cert))
    assert run("verify", path, "--trust", ledger_dir / "keys.json").exit_code == 2
    bad = run("append", "--data", ledger_dir, input='{"v":1,"type":"a.b","payload_hash":"ab\\n"}\n')
    assert bad.exit_code == 2


def test_consistency_checks_the_older_heads_signature(
    ledger_dir: Path, run: Run, tmp_path: Path
) -> None:
    """verify --consistency rejects a document whose older head is not validly signed."""
    cert, path = _cert(run, ledger_dir, tmp_path)
    path.write_text(json.dumps(cert))
    run("append", "--data", ledger_dir, input=ENTRY + "\n")
    size = cert["header"]["tree_size"]  # type: ignore[index]
    doc = json.loads(run("consistency", "--data", ledger_dir, "--from", str(size)).output)
    doc["from"]["signatures"] = []
    cons = tmp_path / "cons.json"
    cons.write_text(json.dumps(doc))
    result = run("verify", path, "--trust", ledger_dir / "keys.json", "--consistency", cons)
    assert result.exit_code == 1


@pytest.mark.parametrize(
    "args",
    [["cert", "100000000000000000000"], ["consistency", "--from", "1", "--to", str(10**20)]],
)
def test_huge_numbers_are_input_errors(ledger_dir: Path, run: Run, args: list[str]) -> None:
    """Indices beyond the key space exit 2 with a message, not an overflow traceback."""
    run("append", "--data", ledger_dir, input=ENTRY + "\n")
    result = run(*args, "--data", ledger_dir)
    assert result.exit_code == 2, result.output
    assert "out of range" in result.output


def test_bad_port_in_database_url(tmp_path: Path, run: Run) -> None:
    """A non-numeric port exits 2 and never echoes the password."""
    result = run("init", "--data", tmp_path / "d", "--db", "postgresql://u:hunter2@host:abc/db")
    assert result.exit_code == 2
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("setting", "value"),
    [("block_max_entries", 0), ("block_max_entries", "5"), ("max_entry_bytes", None)],
)
def test_bad_config_settings(ledger_dir: Path, run: Run, setting: str, value: object) -> None:
    """A hand-edited config with a bad setting exits 2 naming the setting."""
    path = ledger_dir / "medledger.json"
    config = json.loads(path.read_text())
    config[setting] = value
    path.write_text(json.dumps(config))
    result = run("append", "--data", ledger_dir, input=ENTRY + "\n")
    assert result.exit_code == 2
    assert setting in result.output


def test_explicit_db_beats_environment(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init --db puts the chain where the config says, and later opens look there too."""
    monkeypatch.setenv("MEDLEDGER_DB", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    target = tmp_path / "chosen.db"
    assert run("init", "--data", tmp_path / "d", "--db", f"sqlite:///{target}").exit_code == 0
    assert target.exists()
    assert run("append", "--data", tmp_path / "d", input=ENTRY + "\n").exit_code == 0
    assert not (tmp_path / "elsewhere.db").exists()


def test_concurrent_first_appends_share_one_sequencer(ledger_dir: Path) -> None:
    """Threads appending to a freshly opened node all succeed, on one orderer."""
    node = LedgerNode.open(ledger_dir)
    errors: list[BaseException] = []
    got: list[int] = []

    def work() -> None:
        try:
            got.extend(r.index for r in node.append([json.loads(ENTRY)] * 5))
        except BaseException as exc:  # collect, so the assertion below can show it
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    node.close()
    assert not errors
    assert sorted(got) == list(range(20))
    sequencers = [t for t in threading.enumerate() if t.name == "medledger-solo"]
    assert not sequencers
