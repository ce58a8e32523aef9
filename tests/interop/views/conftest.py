"""Fixtures for the SQL-view tests: fresh MariaDB and source databases, a MedLedger store."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from tests.access._admin_fixtures import migrated_engine

MARIADB_HOST = os.environ.get("MEDLEDGER_TEST_MARIADB", "root@127.0.0.1:3306")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty utf8mb4 database on the real MariaDB server, dropped afterwards."""
    admin = create_engine(f"mysql+pymysql://{MARIADB_HOST}/?charset=utf8mb4")
    name = f"mltest_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"MariaDB not reachable at {MARIADB_HOST}: {exc}")
    try:
        yield f"mysql+pymysql://{MARIADB_HOST}/{name}?charset=utf8mb4"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture(params=["mariadb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def source_url(request: pytest.FixtureRequest) -> str:
    """Each real server in turn: a fresh MariaDB database, then a fresh PostgreSQL database."""
    fixture = "mariadb_url" if request.param == "mariadb" else "pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def source(source_url: str) -> Iterator[Engine]:
    """An engine on the fresh source database (the hospital system's side)."""
    engine = create_engine(source_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def ml_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated MedLedger store (embedded SQLite) holding the interop_watermarks table."""
    with migrated_engine(None, tmp_path) as engine:
        yield engine
