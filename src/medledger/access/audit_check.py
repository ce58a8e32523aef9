"""Audit the audit trail against the ledger: no event altered, deleted or moved, no batch lost.

The chain is the ground truth. For every ``audit.batch`` entry: its batch row exists and says
anchored at that index with the same range, count and root; the events ``first_seq..last_seq``
are all stored (seq numbers are gapless), belong to the batch, and their canonical bytes hash
to the anchored root; each event's searchable columns and entity index rows agree with its
bytes. Then: no batch row claims an anchoring the chain does not hold, and no seq number is
missing among the events not anchored yet. Each problem is named by seq or batch id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from medledger.access.audit_batches import batch_id_of
from medledger.access.audit_merkle import leaf_hashes, merkle_root
from medledger.crypto.rfc6962 import hasher_for
from medledger.crypto.suite import Suite
from medledger.errors import MedLedgerError, StorageError
from medledger.ledger.audit import Findings
from medledger.ledger.sqlstore import SqlReader
from medledger.store.engine import READ_ONLY
from medledger.store.migrate import first_line
from medledger.store.schema_audit import audit_batches, audit_entities, audit_events

__all__ = ["TrailAuditReport", "audit_trail"]

_LISTED = 20  # missing seq numbers named one by one; beyond that, as ranges
_E = audit_events.c
_R = audit_entities.c
_B = audit_batches.c


@dataclass(slots=True)
class TrailAuditReport(Findings):
    events: int = 0
    batches: int = 0
    pending: int = 0
    unbatched: int = 0


def audit_trail(engine: Engine, reader: SqlReader, suite: Suite) -> TrailAuditReport:
    """Check every anchored batch and event against the chain; return the findings."""
    try:
        with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return _Audit(conn, reader, suite).run()
    except SQLAlchemyError as exc:
        raise StorageError(f"audit trail: database error: {first_line(exc)}") from exc


class _Audit:
    def __init__(self, conn: Connection, reader: SqlReader, suite: Suite) -> None:
        self.conn = conn
        self.reader = reader
        self.hasher = hasher_for(suite)
        self.rep = TrailAuditReport()
        self.next_seq = 1  # the first seq the next anchored batch must start at
        self.matched = 0  # batch rows whose anchoring the chain confirmed

    def run(self) -> TrailAuditReport:
        size = self.reader.entry_count()
        for index, entry in _batch_entries(self.reader):
            self._batch(index, entry)
        self._unconfirmed_rows(size)
        self._tail()
        self.rep.events = int(
            self.conn.execute(select(func.count()).select_from(audit_events)).scalar() or 0
        )
        return self.rep

    def _batch(self, index: int, entry: dict[str, Any]) -> None:
        rep = self.rep
        batch = batch_id_of(entry)
        meta = entry.get("meta")
        if batch is None or not isinstance(meta, dict) or not _meta_ok(meta):
            rep.add("audit-batch", f"entry {index}", "an audit.batch entry that names no batch")
            return
        rep.batches += 1
        first, last, count, root = meta["first_seq"], meta["last_seq"], meta["count"], meta["root"]
        row = self.conn.execute(select(audit_batches).where(_B.batch_id == batch)).first()
        if row is None:
            rep.add(
                "audit-batch", batch, f"ledger entry {index} anchors it, but its row was deleted"
            )
        elif row.state != "anchored" or row.ledger_index != index:
            rep.add(
                "audit-batch",
                batch,
                f"ledger entry {index} anchors it, but its row says {row.state} at "
                f"{row.ledger_index} (the row was altered)",
            )
        elif (row.first_seq, row.last_seq, row._mapping["count"], row.root) != (
            first,
            last,
            count,
            root,
        ):
            rep.add("audit-batch", batch, f"its row differs from ledger entry {index} (altered)")
        else:
            self.matched += 1
        if first > self.next_seq:
            rep.add(
                "audit-event",
                _span(self.next_seq, first - 1),
                "in no anchored batch: deleted before anchoring",
            )
        elif first < self.next_seq:
            rep.add("audit-batch", batch, f"overlaps the previous batch (starts at seq {first})")
        self.next_seq = last + 1
        self._events(batch, index, first, last, count, root)

    def _events(self, batch: str, index: int, first: int, last: int, count: int, root: str) -> None:
        rep = self.rep
        rows = self.conn.execute(
            select(audit_events).where(_E.seq.between(first, last)).order_by(_E.seq)
        ).all()
        refs: dict[int, set[str]] = {}
        for seq, ref in self.conn.execute(
            select(_R.seq, _R.ref).where(_R.seq.between(first, last))
        ):
            refs.setdefault(int(seq), set()).add(str(ref))
        present = [int(r.seq) for r in rows]
        self._missing(_gaps(present, first, last), f"batch {batch} had it")
        altered = []
        for r in rows:
            if r.batch_id != batch:
                rep.add(
                    "audit-event", f"seq {r.seq}", f"moved out of batch {batch} (now {r.batch_id})"
                )
            problem = _columns_problem(r, refs.get(int(r.seq), set()))
            if problem is not None:
                altered.append(int(r.seq))
                rep.add("audit-event", f"seq {r.seq}", f"altered: {problem}")
        if len(rows) != count:
            rep.add(
                "audit-batch",
                batch,
                f"holds {len(rows)} events, ledger entry {index} anchored {count}",
            )
        leaves = leaf_hashes(self.hasher, [bytes(r.event) for r in rows])
        if merkle_root(self.hasher, leaves).hex() != root:
            which = f"; altered: seq {', '.join(map(str, altered))}" if altered else ""
            rep.add(
                "audit-batch",
                batch,
                f"events seq {first}..{last} no longer hash to the root anchored in ledger "
                f"entry {index} (an event was altered or deleted){which}",
            )

    def _missing(self, gaps: list[tuple[int, int]], why: str) -> None:
        for lo, hi in gaps[:_LISTED]:
            self.rep.add("audit-event", _span(lo, hi), f"deleted ({why})")

    def _unconfirmed_rows(self, size: int) -> None:
        """Find rows that claim an anchoring the chain does not hold (only if counts differ)."""
        counts: dict[str, int] = dict(
            self.conn.execute(select(_B.state, func.count()).group_by(_B.state)).all()
        )
        self.rep.pending = int(counts.get("pending", 0))
        claimed = select(_B.batch_id, _B.ledger_index).where(
            _B.state == "anchored", _B.ledger_index < size
        )
        total = int(
            self.conn.execute(select(func.count()).select_from(claimed.subquery())).scalar() or 0
        )
        if total == self.matched:
            return
        for row in self.conn.execute(claimed):
            try:
                entry = json.loads(self.reader.get_entry(int(row.ledger_index)))
            except (MedLedgerError, ValueError):
                entry = {}
            if not isinstance(entry, dict) or batch_id_of(entry) != row.batch_id:
                self.rep.add(
                    "audit-batch",
                    str(row.batch_id),
                    f"its row says anchored at ledger entry {row.ledger_index}, which does not "
                    "anchor it",
                )

    def _tail(self) -> None:
        """Events after the last anchored batch: gapless, unbatched or in a pending batch."""
        rows = self.conn.execute(
            select(_E.seq, _E.batch_id, _B.batch_id.label("row"))
            .select_from(audit_events.outerjoin(audit_batches, _E.batch_id == _B.batch_id))
            .where(_E.seq >= self.next_seq)
            .order_by(_E.seq)
        ).all()
        self.rep.unbatched = len(rows)
        if not rows:
            return
        self._missing(
            _gaps([int(r.seq) for r in rows], self.next_seq, int(rows[-1].seq)), "not anchored yet"
        )
        orphans = [int(r.seq) for r in rows if r.batch_id is not None and r.row is None]
        for lo, hi in _runs(orphans)[:_LISTED]:
            self.rep.add(
                "audit-event",
                _span(lo, hi),
                "its pending batch row was deleted, so it can never be anchored",
            )


def _batch_entries(reader: SqlReader) -> Iterator[tuple[int, dict[str, Any]]]:
    for batch in reader.entry_batches(0):
        for index, data in batch:
            if b'"type":"audit.batch"' in data:
                try:
                    parsed = json.loads(data)
                except ValueError:
                    continue
                if isinstance(parsed, dict):
                    yield int(index), parsed


def _meta_ok(meta: dict[str, Any]) -> bool:
    ints = [meta.get(k) for k in ("first_seq", "last_seq", "count")]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
        return False
    return isinstance(meta.get("root"), str) and 1 <= ints[0] <= ints[1]  # type: ignore[operator]


def _gaps(seqs: list[int], first: int, last: int) -> list[tuple[int, int]]:
    """Return the ranges of first..last missing from ``seqs`` (ascending)."""
    out: list[tuple[int, int]] = []
    expected = first
    for s in seqs:
        if s > expected:
            out.append((expected, s - 1))
        expected = max(expected, s + 1)
    if expected <= last:
        out.append((expected, last))
    return out


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Return ascending ``seqs`` as runs of consecutive numbers."""
    out: list[tuple[int, int]] = []
    for s in seqs:
        if out and out[-1][1] == s - 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def _span(lo: int, hi: int) -> str:
    return f"seq {lo}" if lo == hi else f"seq {lo}..{hi}"


def _columns_problem(row: Any, refs: set[str]) -> str | None:
    """Say how the row's columns or index rows disagree with its event bytes, if they do."""
    try:
        event = json.loads(row.event)
        agents = event["agent"]
        principal = agents[0]["who"]["identifier"]["value"]
        institution = next(
            (
                a["who"]["identifier"]["value"]
                for a in agents[1:]
                if a["who"]["identifier"]["system"] == "urn:medledger:institution"
            ),
            "",
        )
        purpose = event["purposeOfEvent"][0]["coding"][0]["code"]
        want = (
            event["id"],
            event["recorded"],
            event["action"],
            event["outcome"],
            principal,
            institution,
            purpose == "BTG",
        )
    except (ValueError, KeyError, IndexError, TypeError):
        return "its event is not a well-formed AuditEvent"
    have = (
        row.id,
        row.recorded,
        row.action,
        str(row.outcome),
        row.principal,
        row.institution,
        bool(row.break_glass),
    )
    if have != want:
        return "its columns disagree with its event"
    if refs != _event_refs(event):
        return "its entity index rows disagree with its event"
    return None


def _event_refs(event: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for entity in event.get("entity", []):
        what = entity.get("what", {})
        if "reference" in what:
            out.add(what["reference"])
        ident = what.get("identifier", {})
        if ident.get("system") == "urn:medledger:access":
            out.add(ident["value"])
        elif ident.get("system") == "urn:medledger:pseudonym":
            out.add(f"pseudonym:{ident['value']}")
    return out
