"""Kill -9 at random instants: every acknowledged entry survives and the store audits clean."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import pytest

from medledger.ledger.audit import Auditor
from medledger.ledger.config import HEAD_FILE
from medledger.ledger.node import LedgerNode
from tests.crashloop import kill_while_writing

WRITER = r"""
import sys, threading
from medledger.ledger.node import LedgerNode
from tests.crashloop import kill_while_writing

node = LedgerNode.open(sys.argv[1], block_max_entries=50, block_max_wait_ms=2)
lock = threading.Lock()
out = sys.stdout

def worker(tag):
    n = 0
    while True:
        batch = [{"v": 1, "type": "crash.test", "meta": {"w": tag, "n": n + i}} for i in range(7)]
        n += 7
        receipts = node.append(batch)
        text = "".join(
            f'{{"index":{r.index},"entry_hash":"{r.entry_hash}","height":{r.height}}}\n'
            for r in receipts)
        with lock:
            out.write(text)
            out.flush()

for t in range(3):
    threading.Thread(target=worker, args=(t,), daemon=True).start()
threading.Event().wait()
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_sigkill_loses_no_acknowledged_entry(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Across repeated SIGKILLs, every printed receipt is in the store and the audit is clean."""
    db = None if backend == "sqlite" else request.getfixturevalue("pg_url")
    data = tmp_path / "data"
    LedgerNode.init(data, db=db, node="crash").close()
    rnd = random.Random(int(os.environ.get("CRASH_SEED", "1729")))
    lines = kill_while_writing([sys.executable, "-c", WRITER, str(data)], 6, rnd)
    receipts = [json.loads(x) for x in lines]
    assert len(receipts) > 50, "the writer acknowledged too little to test anything"
    with LedgerNode.open(data) as node, node.reader() as r:
        report = Auditor(r, node.suite, node.trust, head_file=data / HEAD_FILE).run()
        assert report.ok, report.findings
        size = r.entry_count()
        assert len({rc["index"] for rc in receipts}) == len(receipts)
        for rc in receipts:
            idx = int(rc["index"])  # type: ignore[call-overload]
            assert idx < size
            assert node.hasher.leaf_hash(r.get_entry(idx)).hex() == rc["entry_hash"]
            assert r.block_covering(idx).height == rc["height"]
