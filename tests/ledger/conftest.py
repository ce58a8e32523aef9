"""Fixtures for ledger tests: a fresh node on each storage backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medledger.ledger.node import LedgerNode


@pytest.fixture
def node(tmp_path: Path, db_url: str | None) -> Iterator[LedgerNode]:
    """A new intl-v1 ledger with small blocks, on SQLite or PostgreSQL."""
    n = LedgerNode.init(
        tmp_path / "data",
        suite="intl-v1",
        db=db_url,
        node="test",
        block_max_entries=16,
        block_max_wait_ms=1,
    )
    yield n
    n.close()
