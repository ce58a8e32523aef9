"""Fixtures for the delivery tests: a migrated engine on each backend and a settable clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from medledger.store import migrate
from medledger.store.engine import make_engine

T0 = 1_795_400_000.0  # 2026-11-23 10:13:20 UTC+8


class Clock:
    """A clock the test sets by hand (the queue takes its clock as a parameter)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def engine(db_url: str | None, tmp_path: Path) -> Iterator[Engine]:
    """A fresh engine at the newest schema: SQLite in ``tmp_path`` or a fresh PostgreSQL."""
    eng = make_engine(db_url or f"sqlite:///{tmp_path / 'delivery.db'}")
    try:
        migrate.upgrade(eng)
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def clock() -> Clock:
    """A clock starting at T0."""
    return Clock()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh migrated SQLite engine, for checks that do not depend on the backend."""
    eng = make_engine(f"sqlite:///{tmp_path / 'delivery.db'}")
    try:
        migrate.upgrade(eng)
        yield eng
    finally:
        eng.dispose()
