"""Helpers shared by the audit-trail tests: a ledger node with a trail, callers and records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner, Result

from medledger.access.audit_event import AuditRecord
from medledger.access.audit_trail import AuditTrail
from medledger.access.caller import Caller
from medledger.access.model import PrincipalKind
from medledger.cli.main import app
from medledger.ledger.node import LedgerNode

PSEUDONYM = "ab" * 32
DR_LI = Caller(
    kind=PrincipalKind.USER,
    principal="dr.li",
    institution="hosp-east",
    roles=("clinician",),
    token_id="tok-1",
    client_id="emr-01",
    address="10.1.2.3",
)
LIS = Caller(kind=PrincipalKind.CLIENT, principal="lis-01", institution="hosp-central")


@contextmanager
def trail_on(
    tmp_path: Path,
    db_url: str | None,
    *,
    suite: str = "intl-v1",
    batch_interval: float = 60.0,
    max_batch: int = 4096,
) -> Iterator[tuple[LedgerNode, AuditTrail]]:
    """A fresh ledger (SQLite in ``tmp_path`` or the given PostgreSQL) and its audit trail."""
    node = LedgerNode.init(
        tmp_path / "data",
        suite=suite,
        db=db_url,
        node="hosp-central",
        block_max_entries=64,
        block_max_wait_ms=1,
    )
    trail = AuditTrail(
        node.store.engine,
        node,
        node="hosp-central",
        batch_interval=batch_interval,
        max_batch=max_batch,
    )
    try:
        yield node, trail
    finally:
        trail.close()
        node.close()


def read_record(i: int, caller: Caller = DR_LI, *, status: int = 200) -> AuditRecord:
    """A read of Observation/o<i> version 1 for the test patient."""
    return AuditRecord(
        caller,
        "read",
        "R",
        status,
        "read Observation",
        entities=(f"Observation/o{i}/_history/1",),
        patients=(PSEUDONYM,),
        path="/fhir/R4/{rtype}/{rid}",
    )


def cli(*args: str | Path) -> Result:
    """Run ``medledger ARGS`` in-process; the result keeps the exit code and output."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
