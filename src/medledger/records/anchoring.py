"""Tie the record store to the ledger: append each version's entry, recover the unanchored.

A write is acknowledged only after its entry's block is durable, and the store marks the
version anchored inside that block's transaction (``anchor_hook`` below). What a crash
leaves pending, ``recover`` appends at startup (docs/decisions.md D15).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

from sqlalchemy import Connection, and_, bindparam, update

from medledger.ledger.block import Block
from medledger.ledger.node import LedgerNode
from medledger.ordering.base import Receipt
from medledger.records.store import RecordStore, Version, Written
from medledger.store.schema_records import record_versions

_REF = re.compile(r"[A-Za-z]{1,40}/[A-Za-z0-9\-.]{1,64}/_history/[1-9][0-9]{0,9}")


def _ref_key(ref: str) -> tuple[str, str, int]:
    rtype, rid, _, vid = ref.split("/")
    return rtype, rid, int(vid)


def anchor_hook(conn: Connection, block: Block) -> None:
    """Mark the versions certified by ``block`` as anchored, in the block's transaction."""
    rows = []
    for i, entry in enumerate(block.entries):
        if b'"record.' not in entry:
            continue
        parsed = json.loads(entry)
        ref = parsed.get("ref")
        # A hook that raised would abort the whole block, so anything unexpected is skipped.
        if parsed.get("type") not in ("record.put", "record.delete"):
            continue
        if not isinstance(ref, str) or not _REF.fullmatch(ref):
            continue
        rtype, rid, vid = _ref_key(ref)
        rows.append({"r": rtype, "i": rid, "n": vid, "x": block.first_index + i, "e": entry})
    if rows:
        v = record_versions.c
        # Only the pending version whose own entry this is: a stray or repeated entry can
        # never move an anchored version's index.
        match = and_(
            v.rtype == bindparam("r"),
            v.rid == bindparam("i"),
            v.vid == bindparam("n"),
            v.state == "pending",
            v.entry == bindparam("e"),
        )
        conn.execute(
            update(record_versions)
            .where(match)
            .values(state="anchored", ledger_index=bindparam("x")),
            rows,
        )


class AnchoredStore:
    """A record store whose every new version is in the ledger before a write returns."""

    def __init__(self, store: RecordStore, ledger: LedgerNode) -> None:
        self.store = store
        self.ledger = ledger
        ledger.add_commit_hook(anchor_hook)

    def anchor(self, written: Written) -> tuple[Version, Receipt | None]:
        """Append the entry of a fresh write and wait until it is durable.

        Returns the version as anchored and its receipt; a write that created nothing new
        (a conditional create that found its match, a repeated delete) returns it unchanged.
        """
        if written.entry is None:
            return written.version, None
        receipt = self.ledger.submit([written.entry]).result()[0]
        version = replace(written.version, state="anchored", ledger_index=receipt.index)
        return version, receipt

    def recover(self) -> int:
        """Append the entries of every pending version (oldest first); return how many."""
        pending = self.store.pending()
        futures = [self.ledger.submit([entry]) for _, entry in pending]
        for fut in futures:
            fut.result()
        return len(pending)
