"""A failed block commit does not strand its versions until the next start."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from medledger.errors import MedLedgerError
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService

SPEC = {"resourceType": "Specimen", "identifier": [{"system": "urn:lis", "value": "BC-1"}]}
CRITERIA = "identifier=urn:lis|BC-1"


def test_versions_of_a_failed_append_are_appended_again(tmp_path: Path, db_url: str | None) -> None:
    """The first commit fails (503 to the client); a retry finds the version anchored, once."""
    node = LedgerNode.init(tmp_path / "d", db=db_url, node="n1", block_max_wait_ms=1)
    try:
        service = RecordService.open(node)
        fail = {"on": True}

        def flaky(_conn: Any, _block: Any) -> None:
            if fail["on"]:
                fail["on"] = False
                raise OSError("transient: database is locked")

        node.add_commit_hook(flaky)
        with pytest.raises(MedLedgerError):
            service.create("Specimen", SPEC, if_none_exist=CRITERIA)
        started = time.monotonic()
        again = service.create("Specimen", SPEC, if_none_exist=CRITERIA)
        assert time.monotonic() - started < 10
        assert again.created is False
        assert again.ledger_index is not None
        assert service.store.pending() == []
        with node.reader() as r:
            refs = [json.loads(r.get_entry(i)).get("ref") for i in range(r.entry_count())]
        assert refs.count(again.version.ref) == 1
    finally:
        node.close()
