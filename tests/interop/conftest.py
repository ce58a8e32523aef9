"""Fixtures shared by the interop tests: a migrated engine on each backend, or on SQLite only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from medledger.store import migrate
from medledger.store.engine import make_engine


@pytest.fixture
def engine(db_url: str | None, tmp_path: Path) -> Iterator[Engine]:
    """A fresh engine at the newest schema: SQLite in ``tmp_path`` or a fresh PostgreSQL."""
    eng = make_engine(db_url or f"sqlite:///{tmp_path / 'interop.db'}")
    try:
        migrate.upgrade(eng)
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh migrated SQLite engine, for checks that do not depend on the backend."""
    eng = make_engine(f"sqlite:///{tmp_path / 'interop.db'}")
    try:
        migrate.upgrade(eng)
        yield eng
    finally:
        eng.dispose()
