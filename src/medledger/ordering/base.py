"""The orderer interface and the receipt an acknowledged append returns."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from medledger.ledger.block import Block


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof of acceptance: the leaf index, the leaf hash and the block that holds it."""

    index: int
    entry_hash: str
    height: int

    def to_json(self) -> dict[str, int | str]:
        return {"index": self.index, "entry_hash": self.entry_hash, "height": self.height}


class Committer(Protocol):
    """Durably store a block; return only after it survives a crash."""

    def commit(self, block: Block) -> None: ...


class Orderer(Protocol):
    """Sequence entries into blocks. ``submit`` resolves once the entries' blocks are durable."""

    def submit(self, entries: Sequence[bytes]) -> Future[list[Receipt]]: ...

    def close(self) -> None: ...
