"""The on-chain audit trail: every API request's AuditEvent, durable, batched onto the ledger.

``record`` returns only once the event's row is committed (group commit: ``audit_writer``).
A background thread (``start``) anchors what was recorded every ``batch_interval`` seconds, or
sooner once ``max_batch`` events wait, as ``audit.batch`` ledger entries holding the RFC 6962
root of the batch's events (``audit_batches``). An auditor reads events and searches them
(``audit_reads``) and gets a ``medledger-audit-cert/1`` certificate for any anchored event,
which ``medledger.verify.audit`` checks offline.

The engine must be the ledger's own database: the ledger's commit hook marks batches
anchored inside the block's transaction.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from sqlalchemy import Engine

from medledger.access.audit_batches import Batcher, anchor_hook
from medledger.access.audit_event import AuditRecord, access_record
from medledger.access.audit_reads import AuditReads
from medledger.access.audit_writer import GroupCommitter, PendingEvent
from medledger.access.lockout import rfc3339
from medledger.crypto.canonical import canonical_bytes
from medledger.errors import InputError, MedLedgerError, StateError
from medledger.ledger.node import LedgerNode

__all__ = ["AuditTrail"]

log = logging.getLogger(__name__)

MAX_BATCH = 65_536
RETRY_MAX = 30.0
_HOOKED: weakref.WeakSet[LedgerNode] = weakref.WeakSet()
_HOOKED_LOCK = threading.Lock()


class AuditTrail:
    """Record, anchor, read and certify audit events of one node."""

    def __init__(
        self,
        engine: Engine,
        ledger: LedgerNode,
        *,
        node: str,
        batch_interval: float = 1.0,
        max_batch: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not batch_interval > 0:
            raise InputError(
                "batch_interval must be positive",
                field="batch_interval",
                value=batch_interval,
                expected="seconds > 0",
            )
        if not 1 <= max_batch <= MAX_BATCH:
            raise InputError(
                "max_batch out of range",
                field="max_batch",
                value=max_batch,
                expected=f"1..{MAX_BATCH}",
            )
        self.engine = engine
        self.ledger = ledger
        self.node = node
        self.batch_interval = batch_interval
        self.max_batch = max_batch
        self.clock = clock
        with _HOOKED_LOCK:
            if ledger not in _HOOKED:  # one hook per ledger, however many trails it serves
                ledger.add_commit_hook(anchor_hook)
                _HOOKED.add(ledger)
        self._batcher = Batcher(engine, ledger, node=node, max_batch=max_batch, clock=clock)
        self._reads = AuditReads(engine, ledger, batch_interval=batch_interval)
        self._lock = threading.Lock()
        self._committer: GroupCommitter | None = None
        self._closed = False
        self._waiting = 0  # committed since the last cut (a hint for the batch thread)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- recording ---------------------------------------------------------------------------

    @property
    def transactions(self) -> int:
        """How many group-commit transactions have stored events so far."""
        return 0 if self._committer is None else self._committer.transactions

    def record(self, rec: AuditRecord) -> str:
        """Store the event of ``rec``; return its id once the row is durably committed.

        Raise StorageError (nothing recorded) if the commit fails.
        """
        return self._submit(rec).result()

    def record_many(self, recs: Sequence[AuditRecord]) -> list[str]:
        """``record`` for several events, committed together (one group commit when they
        arrive at once); return their ids once all are durable, or raise the first failure."""
        futures = [self._submit(rec) for rec in recs]
        return [f.result() for f in futures]

    async def record_async(self, rec: AuditRecord) -> str:
        """``record`` for asyncio callers: awaits the commit without blocking the loop."""
        return await asyncio.wrap_future(self._submit(rec))

    def record_access_event(self, event: Mapping[str, Any]) -> None:
        """Record a lockout/unlock or admin event (a ``Credentials`` ``on_event`` sink).

        Never raises into the caller: a failure (the database down) is logged instead.
        """
        try:
            self.record(access_record(event))
        except Exception as exc:
            message = exc.message if isinstance(exc, MedLedgerError) else type(exc).__name__
            log.error(
                "audit event %s of %s not recorded: %s",
                event.get("event"),
                event.get("principal") or event.get("by"),
                message,
            )

    def _submit(self, rec: AuditRecord) -> Future[str]:
        if not isinstance(rec, AuditRecord):
            raise InputError("expected an AuditRecord", field="record", expected="AuditRecord")
        event_id = str(uuid.uuid4())
        recorded = rfc3339(self.clock())
        data = canonical_bytes(rec.to_fhir(event_id, recorded, self.node))
        pending = PendingEvent(
            id=event_id,
            recorded=recorded,
            principal=rec.caller.principal,
            institution=rec.caller.institution,
            action=rec.action,
            outcome=int(rec.outcome),
            break_glass=rec.break_glass,
            event=data,
            refs=(*rec.entities, *(f"pseudonym:{p}" for p in rec.patients)),
        )
        return self._writer().submit(pending)

    def _writer(self) -> GroupCommitter:
        with self._lock:
            if self._closed:
                raise StateError("the audit trail is closed")
            if self._committer is None:
                hint = weakref.WeakMethod(self._committed)  # the thread must not pin the trail

                def on_commit(n: int) -> None:
                    method = hint()
                    if method is not None:
                        method(n)

                self._committer = GroupCommitter(self.engine, on_commit=on_commit)
                # A trail dropped without close(): stop its threads once it is collected.
                weakref.finalize(self, _abandon, self._committer, self._stop, self._wake)
            return self._committer

    def _committed(self, n: int) -> None:
        self._waiting += n
        if self._waiting >= self.max_batch:
            self._wake.set()

    # -- anchoring ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the batch thread (idempotent)."""
        with self._lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=_batch_loop,
                    args=(weakref.ref(self), self._stop, self._wake, self.batch_interval),
                    name="medledger-audit-batch",
                    daemon=True,
                )
                self._thread.start()

    def recover(self) -> int:
        """Append the batches a crash left pending; return how many (never one twice)."""
        return self._batcher.recover()

    def flush(self) -> int:
        """Anchor every unbatched event now; return how many events were anchored."""
        self._waiting = 0
        return self._batcher.flush()

    def close(self) -> None:
        """Stop the batch thread, commit queued events, anchor them, stop the committer."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
            committer, self._committer = self._committer, None
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join()
        if committer is not None:
            committer.close()
        try:
            self.flush()
        except MedLedgerError as exc:
            log.warning("audit events left unanchored at close (anchored later): %s", exc.message)

    def _flush_in_background(self, delay: float) -> float:
        """One round of the batch thread; return how long to wait before the next."""
        try:
            self.flush()
        except Exception as exc:  # never let the thread die: log, back off, retry
            message = exc.message if isinstance(exc, MedLedgerError) else repr(exc)
            log.warning("audit batch not anchored yet, retrying: %s", message)
            return min(max(delay * 2, self.batch_interval), RETRY_MAX)
        return self.batch_interval

    # -- reading -----------------------------------------------------------------------------

    def read(self, event_id: str) -> dict[str, Any]:
        """Return the AuditEvent ``event_id`` (with ``id`` and ``meta.lastUpdated``)."""
        return self._reads.read(event_id)

    def search(
        self,
        params: Sequence[tuple[str, str]],
        *,
        institutions: Collection[str] | None = None,
    ) -> tuple[list[dict[str, Any]], int | None, str | None]:
        """Search events newest first: (events, total or None, next page token or None).

        ``institutions`` (if not None) keeps only events made on behalf of those institutions.
        """
        return self._reads.search(params, institutions=institutions)

    def certificate(self, event_id: str) -> dict[str, Any]:
        """Return the ``medledger-audit-cert/1`` certificate of an anchored event."""
        return self._reads.certificate(event_id)

    def break_glass_events(self, since: str | None = None) -> list[dict[str, Any]]:
        """Return every break-glass event (newest first), from ``since`` on if given."""
        return self._reads.break_glass_events(since)

    def list_events(
        self,
        *,
        since: str | None = None,
        principal: str | None = None,
        break_glass: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return events newest first, narrowed by time, principal and break-glass."""
        return self._reads.list_events(
            since=since, principal=principal, break_glass=break_glass, limit=limit
        )


def _batch_loop(
    ref: weakref.ref[AuditTrail], stop: threading.Event, wake: threading.Event, delay: float
) -> None:
    """The batch thread. It holds the trail only weakly while it waits, so a trail dropped
    without ``close`` (its database gone) ends the thread instead of retrying forever."""
    while not stop.is_set():
        wake.wait(delay)
        wake.clear()
        trail = ref()
        if trail is None or stop.is_set():
            return
        delay = trail._flush_in_background(delay)
        del trail


def _abandon(committer: GroupCommitter, stop: threading.Event, wake: threading.Event) -> None:
    stop.set()
    wake.set()
    committer.close(wait=False)  # gc may run this on any thread, even the committer's own
