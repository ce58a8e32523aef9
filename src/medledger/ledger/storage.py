"""What the ledger needs from storage: a narrow read view and a wider write transaction.

Proof building, certificates and audit only ever see ``LedgerReader``; only the committer of a
block holds a ``LedgerWriter``. Backends implement both (see ``sqlstore``); one conformance suite
in tests/ledger/test_storage_conformance.py runs against every backend.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from medledger.ledger.proof import NodeID


@dataclass(frozen=True, slots=True)
class StoredBlock:
    """A block row: the canonical header bytes and the signatures stored beside them."""

    height: int
    tree_size: int
    header: bytes
    signatures: tuple[tuple[str, bytes], ...]


class LedgerReader(Protocol):
    """Read-only view of one consistent snapshot of a ledger."""

    def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        """Return the hashes of ``ids`` in order; raise NotFound naming a missing node."""
        ...

    def get_entry(self, index: int) -> bytes: ...

    def latest_block(self) -> StoredBlock | None: ...

    def get_block(self, height: int) -> StoredBlock: ...

    def block_covering(self, index: int) -> StoredBlock:
        """Return the first block whose tree contains leaf ``index``."""
        ...

    def block_at_size(self, tree_size: int) -> StoredBlock | None: ...

    def entry_count(self) -> int: ...

    def entry_range(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Return the stored ``(index, data)`` rows with start <= index < end, in order."""
        ...

    def node_rows(self, lo_key: int, hi_key: int) -> list[tuple[int, bytes]]:
        """Return ``(node_key, hash)`` rows with lo_key <= key <= hi_key, in key order."""
        ...

    def iter_blocks(self, start: int = 0) -> Iterator[StoredBlock]:
        """Yield blocks from height ``start`` on, in height order, with bounded memory."""
        ...

    def get_meta(self, key: str) -> str | None: ...


class LedgerWriter(Protocol):
    """One write transaction: everything written commits together or not at all."""

    def add_entries(self, rows: Sequence[tuple[int, bytes]]) -> None: ...

    def add_nodes(self, rows: Sequence[tuple[int, bytes]]) -> None: ...

    def add_block(
        self, height: int, tree_size: int, header: bytes, signatures: Sequence[tuple[str, bytes]]
    ) -> None: ...

    def add_signature(self, height: int, key_id: str, sig: bytes) -> None: ...

    def set_meta(self, key: str, value: str) -> None: ...
