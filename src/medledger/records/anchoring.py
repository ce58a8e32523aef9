"""Tie the record store to the ledger: append each version's entry, recover the unanchored.

A write is acknowledged only after its entry's block is durable, and the store marks the
version anchored inside that block's transaction (``anchor_hook`` below). What a crash
leaves pending, ``recover`` appends at startup (docs/decisions.md D15).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import replace

from sqlalchemy import Connection, and_, bindparam, update

from medledger.errors import MedLedgerError
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
    """A record store whose every new version is in the ledger before a write returns.

    If appending fails (a block commit that hit a locked or unreachable database), the writer
    gets the error, and its versions stay ``pending``. They are not left for the next start:
    a retry thread appends them again with back-off, so a client retrying the same
    conditional create, or reading the version, is not held up until a restart.
    """

    RETRY_FIRST = 0.5
    RETRY_MAX = 30.0
    RETRY_ATTEMPTS = 8

    def __init__(self, store: RecordStore, ledger: LedgerNode) -> None:
        self.store = store
        self.ledger = ledger
        ledger.add_commit_hook(anchor_hook)
        self._lock = threading.Lock()
        self._failed: list[Version] = []
        self._retrier: threading.Thread | None = None

    def anchor(self, written: Written) -> tuple[Version, Receipt | None]:
        """Append the entry of a fresh write and wait until it is durable.

        Returns the version as anchored and its receipt; a write that created nothing new
        (a conditional create that found its match, a repeated delete) returns it unchanged.
        """
        if written.entry is None:
            return written.version, None
        receipt = self.anchor_all([written])[0]
        version = replace(written.version, state="anchored", ledger_index=receipt.index)
        return version, receipt

    def anchor_all(self, written: list[Written]) -> list[Receipt]:
        """Append the entries of fresh writes together (a transaction) and wait for them."""
        entries = [w.entry for w in written if w.entry is not None]
        if not entries:
            return []
        try:
            return self.ledger.submit(entries).result()
        except MedLedgerError:
            self._retry_later([w.version for w in written if w.entry is not None])
            raise

    def recover(self) -> int:
        """Append the entries of every pending version (oldest first); return how many."""
        pending = self.store.pending()
        futures = [self.ledger.submit([entry]) for _, entry in pending]
        for fut in futures:
            fut.result()
        return len(pending)

    def _retry_later(self, versions: list[Version]) -> None:
        with self._lock:
            self._failed.extend(versions)
            if self._retrier is None:
                self._retrier = threading.Thread(
                    target=self._retry_loop, name="medledger-anchor-retry", daemon=True
                )
                self._retrier.start()

    def _retry_loop(self) -> None:
        delay, failures = self.RETRY_FIRST, 0
        while True:
            time.sleep(delay)
            with self._lock:
                batch, self._failed = self._failed, []
                if not batch or failures >= self.RETRY_ATTEMPTS:
                    # Nothing left, or the ledger keeps failing (closed, database gone): the
                    # versions stay pending and the next start appends them (recover).
                    self._retrier = None
                    return
            try:
                # Only what is still pending: a failed append whose block did commit after
                # all is anchored already, and appending it again would put it on twice.
                entries = self.store.pending_entries(batch)
                if entries:
                    self.ledger.submit(entries).result()
                delay, failures = self.RETRY_FIRST, 0
            except MedLedgerError:
                with self._lock:
                    self._failed[:0] = batch
                delay, failures = min(delay * 2, self.RETRY_MAX), failures + 1
