"""Group commit of audit events: many callers' events, one durable transaction.

A request's event must be durable before the request may complete, yet one transaction per
request would cost one fsync each. So callers queue their events and block; one committer
thread takes everything queued, writes it in a single ``begin_write`` transaction (a fresh
gapless run of ``seq`` numbers, the event rows and their entity index rows), commits, and only
then resolves every caller's future. While it commits, the next group gathers. If the
transaction fails, every caller of that group gets the StorageError: nothing is reported as
recorded unless it is committed.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from medledger.errors import MedLedgerError, StateError, StorageError
from medledger.store.engine import begin_write
from medledger.store.migrate import first_line
from medledger.store.schema_audit import audit_entities, audit_events

__all__ = ["GroupCommitter", "PendingEvent"]

log = logging.getLogger(__name__)

_INSERT_EVENTS = insert(audit_events)
_INSERT_REFS = insert(audit_entities)
_MAX_SEQ = select(func.max(audit_events.c.seq))
_ATTEMPTS = 3  # a seq race with another writer process (PostgreSQL) is retried, then failed


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """One event ready to store: its columns, canonical bytes and entity index refs."""

    id: str
    recorded: str
    principal: str
    institution: str
    action: str
    outcome: int
    break_glass: bool
    event: bytes
    refs: tuple[str, ...]


class GroupCommitter:
    """Write queued events in groups of at most ``max_group``, one transaction per group.

    ``on_commit(n)`` is called after each commit with the number of events it stored.
    ``transactions`` counts the commits (tests and metrics).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_group: int = 1000,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.transactions = 0
        self._max_group = max_group
        self._on_commit = on_commit
        self._queue: deque[tuple[PendingEvent, Future[str]]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name="medledger-audit-commit", daemon=True
        )
        self._thread.start()

    def submit(self, event: PendingEvent) -> Future[str]:
        """Queue ``event``; the future resolves with its id once it is committed."""
        fut: Future[str] = Future()
        with self._cond:
            if self._closed:
                raise StateError("the audit trail is closed")
            self._queue.append((event, fut))
            self._cond.notify()
        return fut

    def close(self, *, wait: bool = True) -> None:
        """Commit what is queued, then stop the committer thread (and wait for it)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if wait:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                n = min(len(self._queue), self._max_group)
                taken = [self._queue.popleft() for _ in range(n)]
            # A waiter that gave up (an asyncio request cancelled) still gets its event
            # written, since the request did happen; only its future is left alone.
            group = [(e, f) for e, f in taken if f.set_running_or_notify_cancel()]
            self._commit([e for e, _ in taken], group)

    def _commit(
        self, events: list[PendingEvent], group: list[tuple[PendingEvent, Future[str]]]
    ) -> None:
        try:
            self._write(events)
        except BaseException as exc:  # every waiter must hear of it, whatever it was
            err = exc if isinstance(exc, MedLedgerError) else StorageError(f"audit: {exc}")
            log.error("audit events not recorded: %s (%d waiting)", err.message, len(events))
            for _, fut in group:
                fut.set_exception(err)
            return
        self.transactions += 1
        for event, fut in group:
            fut.set_result(event.id)
        if self._on_commit is not None:
            try:
                self._on_commit(len(events))
            except Exception:  # a notification must never undo a durable commit
                log.exception("audit on_commit callback failed")

    def _write(self, events: Sequence[PendingEvent]) -> int:
        """Store ``events`` under fresh seq numbers in one transaction; return the first seq."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with begin_write(self.engine) as conn:
                    return _insert(conn, events)
            except IntegrityError as exc:
                # Only a second writer on the same database (PostgreSQL) can take our seq.
                if attempt == _ATTEMPTS:
                    raise StorageError(f"audit: seq conflict: {first_line(exc)}") from exc
            except SQLAlchemyError as exc:
                raise StorageError(f"audit: database error: {first_line(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover


def _insert(conn: Connection, events: Sequence[PendingEvent]) -> int:
    # Inside the write transaction (SQLite holds its write lock from BEGIN IMMEDIATE), so the
    # numbers follow on from the last committed event without a gap.
    first = int(conn.execute(_MAX_SEQ).scalar() or 0) + 1
    rows: list[dict[str, object]] = []
    refs: list[dict[str, object]] = []
    for i, e in enumerate(events):
        seq = first + i
        rows.append(
            {
                "seq": seq,
                "id": e.id,
                "recorded": e.recorded,
                "principal": e.principal,
                "institution": e.institution,
                "action": e.action,
                "outcome": e.outcome,
                "break_glass": e.break_glass,
                "event": e.event,
                "batch_id": None,
            }
        )
        refs.extend({"seq": seq, "ref": r} for r in e.refs)
    conn.execute(_INSERT_EVENTS, rows)
    if refs:
        conn.execute(_INSERT_REFS, refs)
    return first
