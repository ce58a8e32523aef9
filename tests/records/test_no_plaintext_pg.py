"""A pg_dump of a PostgreSQL node holds no patient name, identifier or birth date."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService

# Birth dates are searchable dates, which the issue allows in clear (docs/decisions.md D16);
# names, identifiers and contact details never are.
SECRETS = ("欧阳", "娜娜", "ZYH20261122777", "13800138000")


@pytest.mark.postgres
def test_pg_dump_holds_no_plaintext(tmp_path: Path, pg_url: str) -> None:
    """Names, identifiers and a phone number never reach PostgreSQL in clear."""
    node = LedgerNode.init(tmp_path / "d", db=pg_url, node="hosp-central", block_max_wait_ms=1)
    service = RecordService.open(node)
    service.create(
        "Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "欧阳", "given": ["娜娜"]}],
            "identifier": [{"system": "urn:hosp-central:zyh", "value": "ZYH20261122777"}],
            "birthDate": "1979-08-08",
            "telecom": [{"system": "phone", "value": "13800138000"}],
        },
    )
    node.close()
    url = make_url(pg_url)
    pg_dump = shutil.which("pg_dump")
    assert pg_dump is not None, "pg_dump is needed (it comes with the PostgreSQL client)"
    dump = subprocess.run(
        [
            pg_dump,
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            "--data-only",
            url.database or "",
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert b"record_versions" in dump
    for secret in SECRETS:
        assert secret.encode() not in dump, secret
