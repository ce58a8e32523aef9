"""``make demo-ledger``: the ledger-only demo on the embedded default (SQLite, solo orderer).

Run as ``python -m medledger.demo_ledger``. Create a ledger, append 10,000 realistic entries,
issue and verify a certificate offline, prove the old certificate against a newer head, then
tamper with one row in a copy of the store and show the audit locating it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from medledger.crypto.trust import load_trust_bundle
from medledger.demo_data import sample_entries
from medledger.ledger.audit import Auditor
from medledger.ledger.config import HEAD_FILE, SQLITE_FILE, TRUST_FILE
from medledger.ledger.node import LedgerNode
from medledger.verify.certificate import (
    parse_certificate,
    parse_consistency,
    verify_certificate,
)

DEMO_DIR = Path("medledger-demo")
MARKER = ".medledger-demo"
COUNT = 10_000
CERT_INDEX = 4242
TAMPER_INDEX = 1234

console = Console(highlight=False)


def fresh_dir(path: Path) -> None:
    """Create ``path`` afresh, deleting an old one only if a demo created it (marker file)."""
    if path.exists():
        if not (path / MARKER).exists():
            sys.exit(f"{path} exists and is not a demo directory; move it away first")
        shutil.rmtree(path)
    path.mkdir()
    (path / MARKER).write_text("created by `make run` or `make demo-ledger`; safe to delete\n")


def _audit(node: LedgerNode, data: Path) -> list[dict[str, object]]:
    with node.reader() as reader:
        report = Auditor(reader, node.suite, node.trust, head_file=data / HEAD_FILE).run()
    console.print(
        f"    audited {report.entries:,} entries, {report.nodes:,} nodes, {report.blocks} blocks "
        f"in {report.seconds:.2f}s"
    )
    return report.findings


def main() -> None:
    fresh_dir(DEMO_DIR)
    data = DEMO_DIR / "ledger"
    console.print(Panel.fit("MedLedger ledger demo  ·  账本演示", style="bold"))

    node = LedgerNode.init(data, suite="intl-v1", node="hosp-central")
    console.print(
        f"1. init: chain {node.config.chain}, suite {node.suite.name}, "
        f"node key {node.key_id} (mode 0600), trust bundle {data / TRUST_FILE}"
    )

    t0 = time.perf_counter()
    receipts = node.append(sample_entries(COUNT))
    took = time.perf_counter() - t0
    head = node.head()
    console.print(
        f"2. appended {len(receipts):,} entries in {took:.2f}s "
        f"({len(receipts) / took:,.0f}/s durable) into {head.height} blocks; "
        f"head root {head.root.hex()[:16]}…"
    )

    cert = node.certificate(CERT_INDEX)
    cert_path = DEMO_DIR / f"cert-{CERT_INDEX}.json"
    cert_path.write_text(json.dumps(cert, indent=2, ensure_ascii=False))
    trust = load_trust_bundle(data / TRUST_FILE)
    report = verify_certificate(parse_certificate(cert), trust)
    console.print(f"3. certificate for entry {CERT_INDEX} ({cert['entry']['ref']}) → {cert_path}")
    for line in report.passed:
        console.print(f"     [green]✓[/] {line}")

    node.append(sample_entries(500, seed=7))
    doc = node.consistency(cert["header"]["tree_size"])
    doc_path = DEMO_DIR / "consistency.json"
    doc_path.write_text(json.dumps(doc, indent=2))
    newer = verify_certificate(parse_certificate(cert), trust, newer=parse_consistency(doc))
    console.print(
        f"4. 500 more entries; the old certificate still proves against today's head: "
        f"{newer.passed[-1]}"
    )

    console.print("5. audit of the live store:")
    findings = _audit(node, data)
    console.print("     [green]OK: intact[/]" if not findings else f"     {findings}")
    node.close()

    copy = DEMO_DIR / "tampered"
    shutil.copytree(data, copy)
    with sqlite3.connect(copy / SQLITE_FILE) as db:
        raw = db.execute(
            "SELECT data FROM ledger_entries WHERE idx = ?", (TAMPER_INDEX,)
        ).fetchone()[0]
        forged = raw.replace(b'"record.put"', b'"record.del"', 1)
        if forged == raw:
            forged = raw[:-2] + (b"0" if raw[-2:-1] != b"0" else b"1") + raw[-1:]
        db.execute("UPDATE ledger_entries SET data = ? WHERE idx = ?", (forged, TAMPER_INDEX))
    console.print(f"6. copied the store to {copy} and altered entry {TAMPER_INDEX} with sqlite3")
    with LedgerNode.open(copy) as tampered:
        findings = _audit(tampered, copy)
    for f in findings:
        console.print(f"     [red]✗ {f['kind']} {f['at']}[/]: {f['problem']}")

    console.print(
        Panel.fit(
            "Try it yourself:\n"
            f"  .venv/bin/medledger verify {cert_path} --trust {data / TRUST_FILE}\n"
            f"  .venv/bin/medledger verify {cert_path} --trust {data / TRUST_FILE} "
            f"--consistency {doc_path}\n"
            f"  .venv/bin/medledger audit --data {copy}   # exits 1, names entry {TAMPER_INDEX}\n"
            f"  .venv/bin/medledger log --data {data}\n"
            f"  .venv/bin/medledger bench ledger --entries 100000",
            title="summary",
            style="cyan",
        )
    )
    if not findings:
        sys.exit("demo failed: the audit did not catch the tampering")


if __name__ == "__main__":
    main()
