"""Kill -9 while records are written: every acknowledged version survives, anchored."""

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
from medledger.records.service import RecordService
from tests.crashloop import kill_while_writing

WRITER = r"""
import json, sys, threading
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService
from tests.crashloop import kill_while_writing

node = LedgerNode.open(sys.argv[1], block_max_wait_ms=2)
service = RecordService.open(node)
lock = threading.Lock()

def work(tag):
    n = 0
    while True:
        body = {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                "subject": {"reference": f"Patient/p{tag}"},
                "valueQuantity": {"value": n, "unit": "g/L"}}
        saved = service.create("Observation", body)
        with lock:
            sys.stdout.write(json.dumps({"ref": saved.version.ref,
                                         "index": saved.ledger_index}) + "\n")
            sys.stdout.flush()
        n += 1

for t in range(3):
    threading.Thread(target=work, args=(t,), daemon=True).start()
threading.Event().wait()
"""


@pytest.mark.slow
def test_sigkill_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    """After repeated SIGKILLs and a restart, acked versions are readable and anchored."""
    data = tmp_path / "data"
    LedgerNode.init(data, node="hosp-central").close()
    rnd = random.Random(int(os.environ.get("CRASH_SEED", "42")))
    acks = [
        json.loads(x) for x in kill_while_writing([sys.executable, "-c", WRITER, str(data)], 4, rnd)
    ]
    assert len(acks) > 10
    with LedgerNode.open(data) as node:
        service = RecordService.open(node)  # recovery runs here
        assert service.store.pending() == []
        for ack in acks:
            rtype, rid, _, vid = str(ack["ref"]).split("/")
            loaded = service.read(rtype, rid, int(vid))
            assert loaded.version.state == "anchored"
            assert loaded.version.ledger_index == ack["index"]
        with node.reader() as r:
            report = Auditor(r, node.suite, node.trust, head_file=data / HEAD_FILE).run()
            assert report.ok, report.findings
            refs = [json.loads(r.get_entry(i)).get("ref") for i in range(r.entry_count())]
        assert len(refs) == len(set(refs)), "a version was anchored twice"
