"""Connections for the access tables, with driver errors translated at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from medledger.errors import StateError, StorageError
from medledger.store.engine import READ_ONLY, begin_write
from medledger.store.migrate import first_line

__all__ = ["SqlTables", "utc_now"]


def utc_now() -> str:
    """Return the current UTC time as RFC 3339 with microseconds (fits String(32))."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SqlTables:
    """Base for classes that read and write access tables on one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Yield a read-only connection; raise StorageError if the database fails."""
        try:
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"database error: {first_line(exc)}") from exc

    @contextmanager
    def write(
        self, conflict: str = "the change conflicts with existing data"
    ) -> Iterator[Connection]:
        """Yield a connection in a durable write transaction.

        A constraint violation (a duplicate id, a missing institution) becomes StateError with
        the message ``conflict``; any other driver error becomes StorageError.
        """
        try:
            with begin_write(self.engine) as conn:
                yield conn
        except IntegrityError as exc:
            raise StateError(conflict, cause=first_line(exc)) from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"database error: {first_line(exc)}") from exc

    @property
    def postgres(self) -> bool:
        """True on PostgreSQL (``SELECT … FOR UPDATE`` matters there; SQLite has one writer)."""
        return self.engine.dialect.name == "postgresql"
