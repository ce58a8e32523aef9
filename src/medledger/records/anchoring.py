"""Tie the record store to the ledger: append each version's entry, recover the unanchored.

A write is acknowledged only after its entry's block is durable, and the store marks the
version anchored inside that block's transaction (``RecordStore.anchor_hook``). What a crash
leaves pending, ``recover`` appends at startup (docs/decisions.md D15).
"""

from __future__ import annotations

from dataclasses import replace

from medledger.ledger.node import LedgerNode
from medledger.ordering.base import Receipt
from medledger.records.store import RecordStore, Version, Written


class AnchoredStore:
    """A record store whose every new version is in the ledger before a write returns."""

    def __init__(self, store: RecordStore, ledger: LedgerNode) -> None:
        self.store = store
        self.ledger = ledger
        ledger.add_commit_hook(store.anchor_hook)

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
