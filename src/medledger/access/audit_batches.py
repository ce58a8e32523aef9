"""Anchor audit events on the ledger in batches: cut, append, mark anchored, recover.

Cutting a batch is one transaction (an outbox): take the oldest unbatched events in seq order,
compute the RFC 6962 root over their canonical bytes, store an ``audit_batches`` row in state
``pending`` holding the ``audit.batch`` ledger entry, and give the events its ``batch_id``.
The entry is then appended to the ledger; ``anchor_hook`` marks the batch ``anchored`` with
its ledger index inside the block's own transaction, so a batch is anchored exactly when its
entry is durably on the chain. A crash between the two leaves the batch pending, and the next
``flush`` (or ``recover``) appends it: a batch still pending was never committed to the chain.

All cutting and appending runs under one lock and appends pending batches first, so batches
reach the chain in seq order and none is appended twice.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from medledger.access.audit_merkle import leaf_hashes, merkle_root
from medledger.access.lockout import rfc3339
from medledger.errors import StateError, StorageError
from medledger.ledger.block import Block
from medledger.ledger.node import LedgerNode
from medledger.store.engine import READ_ONLY, begin_write
from medledger.store.migrate import first_line
from medledger.store.schema_audit import audit_batches, audit_events

__all__ = ["AUDIT_BATCH", "BATCH_REF", "Batcher", "anchor_hook", "batch_id_of"]

log = logging.getLogger(__name__)

AUDIT_BATCH = "audit.batch"
BATCH_REF = "audit-batch/"
_BATCH_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_E = audit_events.c
_B = audit_batches.c


def batch_id_of(entry: dict[str, Any]) -> str | None:
    """Return the batch id an ``audit.batch`` entry names, or None if it is not one."""
    ref = entry.get("ref")
    if entry.get("type") != AUDIT_BATCH or not isinstance(ref, str):
        return None
    found = ref.removeprefix(BATCH_REF)
    return found if ref.startswith(BATCH_REF) and _BATCH_ID.fullmatch(found) else None


def anchor_hook(conn: Connection, block: Block) -> None:
    """Mark the batches certified by ``block`` as anchored, in the block's transaction."""
    rows = []
    for i, entry in enumerate(block.entries):
        if b'"audit.batch"' not in entry:
            continue
        # A hook that raised would abort the whole block: anything unexpected is skipped.
        try:
            parsed = json.loads(entry)
        except ValueError:
            continue
        batch = batch_id_of(parsed) if isinstance(parsed, dict) else None
        if batch is not None:
            rows.append({"b": batch, "x": block.first_index + i, "e": entry})
    if rows:
        # Only the pending batch whose own entry this is: a stray or repeated entry can never
        # move an anchored batch's index.
        match = and_(
            _B.batch_id == bindparam("b"), _B.state == "pending", _B.entry == bindparam("e")
        )
        conn.execute(
            update(audit_batches)
            .where(match)
            .values(state="anchored", ledger_index=bindparam("x")),
            rows,
        )


class Batcher:
    """Cut batches of at most ``max_batch`` events and append them to ``ledger``."""

    def __init__(
        self,
        engine: Engine,
        ledger: LedgerNode,
        *,
        node: str,
        max_batch: int,
        clock: Callable[[], float],
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.node = node
        self.max_batch = max_batch
        self.clock = clock
        self._lock = threading.Lock()

    def flush(self) -> int:
        """Append pending batches, then batch and append every unbatched event; return how many
        events were newly anchored (those of pending batches included)."""
        with self._lock:
            done = self._append_pending()[1]
            while True:
                cut = self._cut()
                if cut is None:
                    return done
                entry, count = cut
                self._append(entry)
                done += count

    def recover(self) -> int:
        """Append the batches a crash left pending (oldest first); return how many."""
        with self._lock:
            return self._append_pending()[0]

    def _append_pending(self) -> tuple[int, int]:
        """Append every pending batch in seq order; return (batches, events)."""
        pending = self._pending()
        for _, entry, _ in pending:
            self._append(entry)
        return len(pending), sum(count for _, _, count in pending)

    def _append(self, entry: bytes) -> None:
        # Waits until the block is durable; the hook has marked the batch anchored by then.
        self.ledger.submit([entry]).result()

    def _pending(self) -> list[tuple[str, bytes, int]]:
        query = (
            select(_B.batch_id, _B.entry, _B.count.label("n"))
            .where(_B.state == "pending")
            .order_by(_B.first_seq)
        )
        try:
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                return [(r.batch_id, bytes(r.entry), int(r.n)) for r in conn.execute(query)]
        except SQLAlchemyError as exc:
            raise StorageError(f"audit: database error: {first_line(exc)}") from exc

    def _cut(self) -> tuple[bytes, int] | None:
        """Store the next batch and its entry in one transaction; None if nothing waits."""
        try:
            with begin_write(self.engine) as conn:
                return self._cut_in(conn)
        except SQLAlchemyError as exc:
            raise StorageError(f"audit: database error: {first_line(exc)}") from exc

    def _cut_in(self, conn: Connection) -> tuple[bytes, int] | None:
        rows = conn.execute(
            select(_E.seq, _E.event)
            .where(_E.batch_id.is_(None))
            .order_by(_E.seq)
            .limit(self.max_batch)
        ).all()
        if not rows:
            return None
        first, last = int(rows[0].seq), int(rows[-1].seq)
        root = merkle_root(
            self.ledger.hasher, leaf_hashes(self.ledger.hasher, [bytes(r.event) for r in rows])
        )
        batch_id = str(uuid.uuid4())
        meta = {"first_seq": first, "last_seq": last, "count": len(rows), "root": root.hex()}
        entry = self.ledger.encode(
            [
                {
                    "v": 1,
                    "type": AUDIT_BATCH,
                    "inst": self.node,
                    "ts": rfc3339(self.clock()),
                    "ref": f"{BATCH_REF}{batch_id}",
                    "meta": meta,
                }
            ]
        )[0]
        if last - first + 1 != len(rows):
            # Gapless numbering means events were deleted before they could be anchored: the
            # batch still anchors what is left, and the audit reports the hole.
            log.error("audit events missing between seq %d and %d", first, last)
        conn.execute(
            insert(audit_batches).values(
                batch_id=batch_id,
                first_seq=first,
                last_seq=last,
                count=len(rows),
                root=root.hex(),
                entry=entry,
                state="pending",
                ledger_index=None,
            )
        )
        marked = conn.execute(
            update(audit_events)
            .where(and_(_E.seq.between(first, last), _E.batch_id.is_(None)))
            .values(batch_id=batch_id)
        ).rowcount
        if marked != len(rows):
            raise StateError(
                f"audit batch {batch_id}: {marked} events marked, {len(rows)} selected; retry"
            )
        return entry, len(rows)
