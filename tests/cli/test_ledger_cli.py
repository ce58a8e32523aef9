"""The ledger commands end to end, and their answers to bad input."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.cli.conftest import Run

ENTRY = '{"v":1,"type":"record.put","inst":"hosp-a","ref":"Observation/1/_history/1"}'


def _receipts(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _count(data: Path) -> int:
    from medledger.ledger.node import LedgerNode

    with LedgerNode.open(data) as n, n.reader() as r:
        return r.entry_count()


def test_init_writes_private_key_and_public_trust(ledger_dir: Path) -> None:
    """init writes node.key with mode 0600 and a keys.json with one validator."""
    mode = stat.S_IMODE(os.stat(ledger_dir / "node.key").st_mode)
    assert mode == 0o600
    bundle = json.loads((ledger_dir / "keys.json").read_text())
    assert bundle["format"] == "medledger-keys/1"
    assert len(bundle["keys"]) == 1
    assert "private" not in json.dumps(bundle)


def test_init_twice_is_refused(ledger_dir: Path, run: Run) -> None:
    """A second init on the same directory exits 2 and leaves the key untouched."""
    before = (ledger_dir / "node.key").read_bytes()
    result = run("init", "--data", ledger_dir)
    assert result.exit_code == 2
    assert "already holds a ledger" in result.output
    assert (ledger_dir / "node.key").read_bytes() == before


def test_unknown_suite_is_usage_error(tmp_path: Path, run: Run) -> None:
    """An unknown suite exits 2, names the field, and creates nothing."""
    result = run("init", "--data", tmp_path / "x", "--suite", "rot13")
    assert result.exit_code == 2
    assert "rot13" in result.output
    assert "intl-v1" in result.output
    assert not (tmp_path / "x").exists()


def test_append_cert_verify_round_trip(ledger_dir: Path, run: Run, tmp_path: Path) -> None:
    """Appended entries get receipts in order; their certificates verify offline."""
    lines = "\n".join(ENTRY.replace('"1/', f'"{i}/') for i in range(5)) + "\n"
    result = run("append", "--data", ledger_dir, input=lines)
    assert result.exit_code == 0, result.output
    receipts = _receipts(result.output)
    assert [r["index"] for r in receipts] == [0, 1, 2, 3, 4]
    assert all(set(r) == {"index", "entry_hash", "height"} for r in receipts)
    cert = run("cert", "--data", ledger_dir, "3")
    assert cert.exit_code == 0
    path = tmp_path / "c.json"
    path.write_text(cert.output)
    ok = run("verify", path, "--trust", ledger_dir / "keys.json")
    assert ok.exit_code == 0, ok.output
    assert "VALID" in ok.output


def test_verify_names_failed_check(ledger_dir: Path, run: Run, tmp_path: Path) -> None:
    """A certificate whose entry was changed exits 1 and names the inclusion check."""
    run("append", "--data", ledger_dir, input=ENTRY + "\n")
    cert = json.loads(run("cert", "--data", ledger_dir, "0").output)
    cert["entry"]["inst"] = "hosp-b"
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cert))
    result = run("verify", path, "--trust", ledger_dir / "keys.json")
    assert result.exit_code == 1
    assert "INVALID: inclusion" in result.output


def test_verify_with_wrong_trust_key_fails(ledger_dir: Path, run: Run, tmp_path: Path) -> None:
    """A certificate checked against another chain's trust bundle exits 1."""
    run("append", "--data", ledger_dir, input=ENTRY + "\n")
    path = tmp_path / "c.json"
    path.write_text(run("cert", "--data", ledger_dir, "0").output)
    other = tmp_path / "other"
    run("init", "--data", other)
    result = run("verify", path, "--trust", other / "keys.json")
    assert result.exit_code == 1
    assert "header" in result.output


@pytest.mark.parametrize(
    ("stdin", "needle"),
    [
        ('{"v":1,"type":"a.b"\n', "not valid JSON"),
        ("[1,2,3]\n", "not an object"),
        ('"just a string"\n', "not an object"),
        ('{"v":2,"type":"a.b"}\n', "stdin:2.v"),
        ('{"v":1,"type":"NoDots"}\n', "stdin:2.type"),
        ('{"v":1,"type":"a.b","v":1}\n', "duplicate key"),
        ('{"v":1,"type":"a.b","patient_name":"x"}\n', "unknown member"),
        ('{"v":1,"type":"a.b","meta":{"x":NaN}}\n', "NaN"),
        ('{"v":1,"type":"a.b","meta":{"blob":"' + "x" * 70000 + '"}}\n', "limit is 65536"),
    ],
)
def test_append_bad_input_writes_nothing(
    ledger_dir: Path, run: Run, stdin: str, needle: str
) -> None:
    """One bad line, even after good ones, exits 2 with a clear message and writes nothing."""
    result = run("append", "--data", ledger_dir, input=ENTRY + "\n" + stdin)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
    assert _count(ledger_dir) == 0


def test_append_without_ledger(tmp_path: Path, run: Run) -> None:
    """Commands on a directory without a ledger exit 2 and say how to create one."""
    result = run("append", "--data", tmp_path / "none", input=ENTRY)
    assert result.exit_code == 2
    assert "medledger init" in result.output


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ("not json at all", 2),
        ("[]", 2),
        ('{"format":"medledger-cert/2"}', 2),
        ('{"format":"medledger-cert/1","suite":"rot13"}', 2),
    ],
)
def test_verify_corrupt_certificate(
    ledger_dir: Path, run: Run, tmp_path: Path, content: str, code: int
) -> None:
    """Unparseable or malformed certificates are input errors (exit 2), not crashes."""
    path = tmp_path / "c.json"
    path.write_text(content)
    result = run("verify", path, "--trust", ledger_dir / "keys.json")
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


def test_verify_missing_files(ledger_dir: Path, run: Run, tmp_path: Path) -> None:
    """A missing certificate or trust file exits 2 and names the path."""
    result = run("verify", tmp_path / "nope.json", "--trust", ledger_dir / "keys.json")
    assert result.exit_code == 2
    assert "nope.json" in result.output


def test_cert_out_of_range(ledger_dir: Path, run: Run) -> None:
    """A certificate for an index past the end exits 2 with exact bounds."""
    run("append", "--data", ledger_dir, input=ENTRY + "\n")
    result = run("cert", "--data", ledger_dir, "5")
    assert result.exit_code == 2
    assert "index 5 out of bounds for tree size 1" in result.output


def test_consistency_round_trip(ledger_dir: Path, run: Run, tmp_path: Path) -> None:
    """An old certificate verifies against a newer head with a consistency document."""
    first = _receipts(run("append", "--data", ledger_dir, input=ENTRY + "\n" + ENTRY + "\n").output)
    cert_path = tmp_path / "c.json"
    cert_path.write_text(run("cert", "--data", ledger_dir, "1").output)
    run("append", "--data", ledger_dir, input=(ENTRY + "\n") * 7)
    size = json.loads(cert_path.read_text())["header"]["tree_size"]
    doc = run("consistency", "--data", ledger_dir, "--from", str(size))
    assert doc.exit_code == 0, doc.output
    doc_path = tmp_path / "cons.json"
    doc_path.write_text(doc.output)
    assert run("verify-consistency", doc_path, "--trust", ledger_dir / "keys.json").exit_code == 0
    ok = run("verify", cert_path, "--trust", ledger_dir / "keys.json", "--consistency", doc_path)
    assert ok.exit_code == 0, ok.output
    assert first[1]["index"] == 1
    bad = json.loads(doc.output)
    bad["proof"] = list(reversed(bad["proof"]))
    doc_path.write_text(json.dumps(bad))
    fails = run("verify", cert_path, "--trust", ledger_dir / "keys.json", "--consistency", doc_path)
    assert fails.exit_code == 1
    assert "consistency" in fails.output


def test_consistency_from_unsigned_size(ledger_dir: Path, run: Run) -> None:
    """A --from size that is not a signed head exits 2 and explains heads."""
    run("append", "--data", ledger_dir, input=(ENTRY + "\n") * 3)
    result = run("consistency", "--data", ledger_dir, "--from", "2")
    assert result.exit_code == 2
    assert "no signed head at tree size 2" in result.output


def test_audit_and_log(ledger_dir: Path, run: Run) -> None:
    """audit exits 0 on an intact store; log shows the head."""
    run("append", "--data", ledger_dir, input=(ENTRY + "\n") * 3)
    audit = run("audit", "--data", ledger_dir)
    assert audit.exit_code == 0, audit.output
    assert "OK" in audit.output
    log = run("log", "--data", ledger_dir)
    assert log.exit_code == 0
    assert "tree size 3" in log.output


def test_payload_check(ledger_dir: Path, run: Run, tmp_path: Path) -> None:
    """A salted payload verifies with --payload; a different payload exits 1."""
    import hashlib

    salt = bytes(range(16))
    payload = b'{"resourceType":"Observation","valueQuantity":{"value":5.4}}'
    digest = hashlib.sha256(salt + payload).hexdigest()
    entry = json.dumps({"v": 1, "type": "record.put", "payload_hash": digest})
    run("append", "--data", ledger_dir, input=entry + "\n")
    cert = tmp_path / "c.json"
    cert.write_text(run("cert", "--data", ledger_dir, "0", "--salt", salt.hex()).output)
    good = tmp_path / "p.json"
    good.write_bytes(payload)
    trust = ledger_dir / "keys.json"
    assert run("verify", cert, "--trust", trust, "--payload", good).exit_code == 0
    bad = tmp_path / "q.json"
    bad.write_bytes(payload.replace(b"5.4", b"9.9"))
    result = run("verify", cert, "--trust", trust, "--payload", bad)
    assert result.exit_code == 1
    assert "payload" in result.output


def test_sm_suite_round_trip(tmp_path: Path, run: Run) -> None:
    """The sm-v1 chain appends, certifies, verifies and audits with SM3/SM2."""
    data = tmp_path / "sm"
    assert (
        run("init", "--data", data, "--suite", "sm-v1", "--block-max-wait-ms", "0").exit_code == 0
    )
    bundle = json.loads((data / "keys.json").read_text())
    assert bundle["suite"] == "sm-v1"
    assert bundle["keys"][0]["alg"] == "sm2-sm3"
    assert run("append", "--data", data, input=(ENTRY + "\n") * 4).exit_code == 0
    cert = json.loads(run("cert", "--data", data, "2").output)
    assert cert["suite"] == "sm-v1"
    assert len(cert["header"]["signatures"][0]["sig"]) == 128
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cert))
    assert run("verify", path, "--trust", data / "keys.json").exit_code == 0
    assert run("audit", "--data", data).exit_code == 0
    cert["entry"]["ref"] = "Observation/9/_history/1"
    path.write_text(json.dumps(cert))
    assert run("verify", path, "--trust", data / "keys.json").exit_code == 1


@pytest.mark.parametrize(
    ("db", "code", "needle"),
    [
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", 3, "database"),
        ("mysql://root@127.0.0.1/x", 2, "unsupported database backend"),
        ("::not a url::", 2, "cannot parse database URL"),
    ],
)
def test_init_with_bad_database_leaves_nothing(
    tmp_path: Path, run: Run, db: str, code: int, needle: str
) -> None:
    """An unreachable or unsupported database fails init cleanly and creates no files."""
    data = tmp_path / "n"
    result = run("init", "--data", data, "--db", db)
    assert result.exit_code == code, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
    assert not data.exists()


def test_init_over_orphaned_database_keeps_it(ledger_dir: Path, run: Run) -> None:
    """init refuses a directory whose database already holds a chain, and keeps that data."""
    run("append", "--data", ledger_dir, input=ENTRY + "\n")
    (ledger_dir / "node.key").unlink()
    (ledger_dir / "medledger.json").unlink()
    before = (ledger_dir / "ledger.db").stat().st_size
    result = run("init", "--data", ledger_dir)
    assert result.exit_code == 2
    assert "already holds chain" in result.output
    assert (ledger_dir / "ledger.db").stat().st_size == before
    assert not (ledger_dir / "node.key").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["append"],
        ["cert", "0"],
        ["consistency", "--from", "1"],
        ["audit"],
        ["log"],
    ],
)
def test_every_ledger_command_without_ledger(tmp_path: Path, run: Run, args: list[str]) -> None:
    """Each ledger command on a directory without a ledger exits 2 and says how to create one."""
    result = run(*args, "--data", tmp_path / "nothing", input="")
    assert result.exit_code == 2, result.output
    assert "medledger init" in result.output
    assert not (tmp_path / "nothing").exists()


def test_verify_consistency_corrupt(ledger_dir: Path, run: Run, tmp_path: Path) -> None:
    """A corrupt consistency document exits 2; a wrong format names the field."""
    path = tmp_path / "cons.json"
    path.write_text('{"format": "medledger-consistency/9"}')
    result = run("verify-consistency", path, "--trust", ledger_dir / "keys.json")
    assert result.exit_code == 2
    assert "format" in result.output


def test_cert_bad_salt(ledger_dir: Path, run: Run) -> None:
    """A salt that is not lowercase hex exits 2 and names the salt."""
    run("append", "--data", ledger_dir, input=ENTRY + "\n")
    result = run("cert", "0", "--data", ledger_dir, "--salt", "XYZ")
    assert result.exit_code == 2
    assert "salt" in result.output


def test_append_from_files_names_file_and_line(ledger_dir: Path, run: Run, tmp_path: Path) -> None:
    """Entries come from files in order; a bad line is named by file and line number."""
    good = tmp_path / "a.jsonl"
    good.write_text(ENTRY + "\n\n" + ENTRY + "\n")
    bad = tmp_path / "b.jsonl"
    bad.write_text(ENTRY + "\n" + "{oops\n")
    result = run("append", "--data", ledger_dir, good, bad)
    assert result.exit_code == 2
    assert "b.jsonl:2" in result.output
    assert _count(ledger_dir) == 0
    ok = run("append", "--data", ledger_dir, good, good)
    assert [r["index"] for r in _receipts(ok.output)] == [0, 1, 2, 3]
