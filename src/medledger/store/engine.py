"""Create SQLAlchemy engines for the embedded default (SQLite, WAL) and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from medledger.errors import InputError

SUPPORTED = ("sqlite", "postgresql")


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL and synchronous=FULL for durable commits."""
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port raises here, not at connect time
    except (ArgumentError, ValueError) as exc:
        raise InputError(
            f"cannot parse database URL: {exc}",
            field="db",
            value=_redact(url),
            expected="sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise InputError(
            f"unsupported database backend {backend!r}",
            field="db",
            value=_redact(url),
            expected="sqlite or postgresql",
        )
    if backend == "sqlite":
        # Pool sized for the API's worker threads (40 by default) plus the sequencer.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=16,
            max_overflow=48,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        _WRITE_LOCKS[engine] = FairLock()
        return engine
    # At most 40 connections: the API's worker threads; PostgreSQL's default limit is 100.
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30)


READ_ONLY = "medledger_read_only"


class FairLock:
    """A re-entrant lock granted in arrival order.

    ``threading.RLock`` lets a thread that just released it take it straight back, so under
    load the ledger's block commit (one thread) can starve behind many request threads'
    record writes, which are themselves waiting for that block.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next = 0
        self._serving = 0
        self._owner: int | None = None
        self._depth = 0
        self._abandoned: set[int] = set()

    def __enter__(self) -> FairLock:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return self
            ticket = self._next
            self._next += 1
            try:
                while ticket != self._serving:
                    self._cond.wait()
            except BaseException:
                # Interrupted while queueing (KeyboardInterrupt, SystemExit from a signal
                # handler): give the place up, or every later writer would wait for it forever.
                self._abandoned.add(ticket)
                self._advance()
                raise
            self._owner, self._depth = me, 1
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._serving += 1
                self._advance()

    def _advance(self) -> None:
        """Skip abandoned tickets at the head of the queue and wake the waiters (lock held)."""
        while self._owner is None and self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1
        self._cond.notify_all()


# SQLite has one writer. Threads of this process queue for it on a lock instead of in SQLite's
# busy handler, which sleeps in steps of up to 100 ms and so turns contention into latency.
_WRITE_LOCKS: WeakKeyDictionary[Engine, FairLock] = WeakKeyDictionary()


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """``engine.begin()`` for a writer: on SQLite, one writing thread of this process at a time.

    The lock is released only after the commit (or rollback) has returned.
    """
    lock = _WRITE_LOCKS.get(engine)
    if lock is None:
        with engine.begin() as conn:
            yield conn
        return
    with lock, engine.begin() as conn:
        yield conn


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock up front, so two writers never deadlock on lock upgrade.
    # Readers begin deferred: in WAL mode they read a snapshot and never block the writer.
    # (The sqlite3 module's own implicit transactions are switched off in _sqlite_pragmas.)
    read_only = conn.get_execution_options().get(READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see make_engine)
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the single writer; FULL syncs the WAL on every commit, which
    # is what "acknowledged only after durable" means on power loss, not only on a crash.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # Proof reads hit random leaves: keep a larger page cache (32 MiB) than the 2 MiB default.
    # No mmap: mapped pages of a large store would count against the process's resident set.
    cur.execute("PRAGMA cache_size=-32768")
    cur.close()


def _redact(url: str) -> str:
    """Hide a password in a URL before it goes into an error message."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url.split("@")[-1]
