"""Kill -9 while audit events are recorded and batched: no acknowledged event is lost."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import pytest

from medledger.access.audit_check import audit_trail
from medledger.access.audit_trail import AuditTrail
from medledger.ledger.node import LedgerNode
from medledger.verify.audit import verify_audit_certificate
from tests.crashloop import kill_while_writing

WRITER = r"""
import json, sys, threading
from medledger.access.audit_event import AuditRecord
from medledger.access.audit_trail import AuditTrail
from medledger.access.caller import Caller
from medledger.access.model import PrincipalKind
from medledger.ledger.node import LedgerNode

node = LedgerNode.open(sys.argv[1], block_max_wait_ms=2)
trail = AuditTrail(node.store.engine, node, node="hosp-central", batch_interval=0.02,
                   max_batch=40)
trail.recover()
trail.start()
lock = threading.Lock()

def work(tag):
    caller = Caller(kind=PrincipalKind.USER, principal=f"dr-{tag}", institution="hosp-east")
    n = 0
    while True:
        rec = AuditRecord(caller, "read", "R", 200, "read Observation",
                          entities=(f"Observation/o{tag}-{n}/_history/1",))
        event_id = trail.record(rec)
        with lock:
            sys.stdout.write(json.dumps({"id": event_id}) + "\n")
            sys.stdout.flush()
        n += 1

for t in range(4):
    threading.Thread(target=work, args=(t,), daemon=True).start()
threading.Event().wait()
"""


@pytest.mark.slow
def test_sigkill_keeps_every_acknowledged_audit_event(tmp_path: Path) -> None:
    """After SIGKILLs mid-stream and a restart, every printed id is stored, anchored, certified."""
    data = tmp_path / "data"
    LedgerNode.init(data, node="hosp-central").close()
    rnd = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    lines = kill_while_writing([sys.executable, "-c", WRITER, str(data)], 4, rnd)
    acked = [json.loads(x)["id"] for x in lines]
    assert len(acked) > 20
    with LedgerNode.open(data) as node:
        trail = AuditTrail(node.store.engine, node, node="hosp-central")
        trail.recover()
        trail.flush()
        for event_id in acked:
            assert trail.read(event_id)["id"] == event_id
            verify_audit_certificate(trail.certificate(event_id), node.trust)
        with node.reader() as reader:
            report = audit_trail(node.store.engine, reader, node.suite)
        assert report.ok, report.findings
        assert report.unbatched == 0
        trail.close()
