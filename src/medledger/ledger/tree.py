"""Build proofs and roots from stored complete subtrees: plan, fetch once, rehash.

This only relies on the small ``NodeReader`` interface, so it can be tested without a storage
backend (``MemoryNodes`` below is enough).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from medledger.crypto.rfc6962 import MerkleHasher
from medledger.errors import NotFound, StorageError
from medledger.ledger import proof
from medledger.ledger.proof import NodeID

__all__ = [
    "Memo",
    "MemoryNodes",
    "NodeReader",
    "consistency_proof",
    "inclusion_proof",
    "root_at",
]


class NodeReader(Protocol):
    """Anything that returns stored complete-subtree hashes by node id."""

    def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        """Return the hashes of ``ids`` in order; raise NotFound naming a missing node."""
        ...


def _fetch(reader: NodeReader, ids: Sequence[NodeID]) -> list[bytes]:
    if not ids:
        return []  # a one-leaf tree or an empty proof: no round trip to storage
    hashes = reader.get_nodes(ids)
    if len(hashes) != len(ids):
        # A backend that drops or adds rows would otherwise yield a wrong but plausible proof.
        raise StorageError(
            f"node store returned {len(hashes)} hashes for {len(ids)} ids",
            requested=len(ids),
            returned=len(hashes),
        )
    return hashes


Memo = dict[tuple[int, int, int], bytes]
_MEMO_MAX = 4096


def inclusion_proof(
    reader: NodeReader,
    hasher: MerkleHasher,
    index: int,
    size: int,
    *,
    memo: Memo | None = None,
) -> list[bytes]:
    """Return the inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Requires 0 ≤ index < size and every complete subtree of that tree to be stored.
    """
    nodes = proof.inclusion(index, size)
    if memo is None or nodes.end - nodes.begin <= 1:
        return nodes.rehash(_fetch(reader, nodes.ids), hasher.node_hash)
    # About half of all proofs fold the same incomplete right-edge subtree: at one tree size
    # its hash never changes, so ``memo`` keeps it by (size, node) and skips fetching its parts.
    key = (size, *nodes.ephem)
    ephem = memo.get(key)
    if ephem is None:
        out = nodes.rehash(_fetch(reader, nodes.ids), hasher.node_hash)
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[key] = out[nodes.begin]
        return out
    ids = nodes.ids
    hashes = _fetch(reader, [*ids[: nodes.begin], *ids[nodes.end :]])
    return [*hashes[: nodes.begin], ephem, *hashes[nodes.begin :]]


def consistency_proof(
    reader: NodeReader, hasher: MerkleHasher, size1: int, size2: int
) -> list[bytes]:
    """Return the consistency proof from the tree of ``size1`` leaves to the one of ``size2``.

    Requires 0 ≤ size1 ≤ size2 and the complete subtrees of the larger tree to be stored.
    """
    nodes = proof.consistency(size1, size2)
    return nodes.rehash(_fetch(reader, nodes.ids), hasher.node_hash)


def root_at(reader: NodeReader, hasher: MerkleHasher, size: int) -> bytes:
    """Return the root of the tree of ``size`` leaves. Requires size ≥ 0."""
    hashes = _fetch(reader, proof.compact_range_ids(size))
    if not hashes:
        return hasher.empty_root()
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = hasher.node_hash(h, acc)
    return acc


class MemoryNodes(NodeReader):
    """A dict of complete-subtree hashes: for tests, benchmarks and throwaway trees."""

    __slots__ = ("_nodes",)

    def __init__(self) -> None:
        self._nodes: dict[NodeID, bytes] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def put(self, level: int, index: int, hash: bytes) -> None:
        """Store the hash of node ``(level, index)``."""
        self._nodes[(level, index)] = hash

    def put_all(self, rows: Iterable[tuple[int, int, bytes]]) -> None:
        """Store every ``(level, index, hash)`` row, e.g. the output of ``Frontier.extend``."""
        self._nodes.update(((level, index), h) for level, index, h in rows)

    def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        """Return the hashes of ``ids`` in order; raise NotFound naming a missing node."""
        nodes = self._nodes
        try:
            return [nodes[i] for i in ids]
        except KeyError as exc:
            level, index = exc.args[0]
            raise NotFound(
                f"node ({level}, {index}) is not stored",
                field="node",
                value=f"({level}, {index})",
                expected="a stored complete subtree",
            ) from None
