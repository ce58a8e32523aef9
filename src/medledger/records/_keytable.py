"""The SQL behind the key ring: rows of ``record_keys``, with no cryptography here.

Every write is its own transaction. On SQLite writes run with ``secure_delete`` (freed cell
space is zeroed, so a replaced wrapped key does not linger in the page) and an erasure is
followed by a WAL checkpoint that truncates the WAL, which still holds the old page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from medledger.errors import StorageError
from medledger.store.engine import READ_ONLY, begin_write
from medledger.store.migrate import first_line
from medledger.store.schema import record_keys as T

__all__ = ["KeyRow", "KeyTable", "Rewrap"]

KeyRow = tuple[str, bytes | None, str | None]
"""(master_kid, wrapped or None once shredded, shredded_at)."""

Rewrap = Callable[[str, str, bytes], bytes]
"""(subject, old kid, wrapped) -> the key wrapped under the new master."""

_log = logging.getLogger(__name__)


class KeyTable:
    """Read and write ``record_keys`` rows on one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"

    def get(self, subject: str) -> KeyRow | None:
        """Return the subject's row, or None if it has none."""
        with self._conn(write=False) as conn:
            row = conn.execute(
                select(T.c.master_kid, T.c.wrapped, T.c.shredded_at).where(T.c.subject == subject)
            ).first()
        if row is None:
            return None
        kid, wrapped, shredded_at = row
        return str(kid), None if wrapped is None else bytes(wrapped), shredded_at

    def insert(self, subject: str, kid: str, wrapped: bytes) -> None:
        """Add the subject's first key; raise ``IntegrityError`` if a row exists already."""
        with self._conn(write=True) as conn:
            conn.execute(
                insert(T).values(subject=subject, master_kid=kid, wrapped=wrapped, created=now())
            )

    def shred(self, subject: str, reason: str, kid: str) -> tuple[str, bool]:
        """Null the subject's wrapped key (or add a tombstone under ``kid`` if it has no row).

        Return the erasure time and whether this call erased anything (False: done before).
        """
        for _ in range(3):
            try:
                return self._shred_once(subject, reason, kid)
            except IntegrityError:
                continue  # a key was created for the subject meanwhile: shred that row instead
        raise StorageError(f"could not record the erasure of subject {subject}")

    def _shred_once(self, subject: str, reason: str, kid: str) -> tuple[str, bool]:
        with self._conn(write=True) as conn:
            row = conn.execute(
                select(T.c.shredded_at).where(T.c.subject == subject).with_for_update()
            ).first()
            if row is not None and row.shredded_at is not None:
                return str(row.shredded_at), False
            when = now()
            gone = {"wrapped": None, "shredded_at": when, "shred_reason": reason}
            if row is None:
                conn.execute(
                    insert(T).values(subject=subject, master_kid=kid, created=when, **gone)
                )
            else:
                conn.execute(update(T).where(T.c.subject == subject).values(**gone))
        self._truncate_sqlite_wal()
        return when, True

    def count_not_under(self, kid: str) -> int:
        """Return how many live keys are wrapped under a master other than ``kid``."""
        with self._conn(write=False) as conn:
            return int(conn.execute(select(func.count()).where(_not_under(kid))).scalar_one())

    def rewrap_batch(self, kid: str, after: str, limit: int, rewrap: Rewrap) -> tuple[str, int]:
        """Re-wrap up to ``limit`` live keys not under ``kid``, subjects after ``after``.

        One transaction. Return the last subject seen ("" when none was left) and how many rows
        changed.
        """
        with self._conn(write=True) as conn:
            rows = conn.execute(
                select(T.c.subject, T.c.master_kid, T.c.wrapped)
                .where(_not_under(kid), T.c.subject > after)
                .order_by(T.c.subject)
                .limit(limit)
                .with_for_update()
            ).all()
            changed = 0
            for subject, old, wrapped in rows:
                new_wrapped = rewrap(subject, old, bytes(wrapped))
                # Compare-and-set on the old kid: a concurrent shred or rotation is never undone.
                result = conn.execute(
                    update(T)
                    .where(T.c.subject == subject, T.c.master_kid == old, T.c.wrapped.is_not(None))
                    .values(master_kid=kid, wrapped=new_wrapped)
                )
                changed += int(result.rowcount)
        return (str(rows[-1].subject) if rows else ""), changed

    def status(self) -> dict[str, int]:
        """Return the number of live (unshredded) keys under each master kid."""
        with self._conn(write=False) as conn:
            rows = conn.execute(
                select(T.c.master_kid, func.count())
                .where(T.c.wrapped.is_not(None))
                .group_by(T.c.master_kid)
            ).all()
        return {str(kid): int(n) for kid, n in rows}

    @contextmanager
    def _conn(self, *, write: bool) -> Iterator[Connection]:
        """Yield a connection in a transaction; translate driver errors except IntegrityError."""
        try:
            if write:
                with begin_write(self.engine) as conn:
                    if self._sqlite:
                        conn.exec_driver_sql("PRAGMA secure_delete=ON")
                    yield conn
            else:
                with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                    yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StorageError(f"database error: {first_line(exc)}") from exc

    def _truncate_sqlite_wal(self) -> None:
        if not self._sqlite:
            return
        driver_error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        try:
            # A raw connection runs the pragma outside any transaction, as SQLite requires.
            raw = self.engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                row = cur.fetchone()
                cur.close()
            finally:
                raw.close()
        except (SQLAlchemyError, driver_error) as exc:
            _log.warning("erasure committed, but the WAL checkpoint failed: %s", exc)
            return
        if row is None or row[0]:
            # The erasure itself is durable; only the old page's copy in the WAL outlives it.
            _log.warning(
                "erasure committed, but readers kept the SQLite WAL from being truncated; the "
                "erased wrapped key stays in the WAL file until the next checkpoint"
            )


def _not_under(kid: str) -> ColumnElement[bool]:
    return (T.c.master_kid != kid) & T.c.wrapped.is_not(None)


def now() -> str:
    """Return the current UTC time as RFC 3339 with microseconds (fits String(32))."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
