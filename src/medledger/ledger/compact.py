"""The append-side frontier of an RFC 6962 tree: the roots of its perfect subtrees.

A tree of ``size`` leaves is a row of perfect subtrees, one per set bit of ``size`` (largest and
leftmost first, as ``proof.compact_range_ids``). Appending a leaf merges equal-sized subtrees on
the right, like a binary counter carrying, and every merge completes exactly one node. Storing
every node that ``append`` reports therefore stores every complete subtree exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from medledger.crypto.rfc6962 import MerkleHasher
from medledger.errors import InputError
from medledger.ledger.proof import NodeID, compact_range_ids

__all__ = ["Frontier", "NodeRow"]

NodeRow = tuple[int, int, bytes]
"""A newly completed node: ``(level, index, hash)``."""


class Frontier:
    """The perfect-subtree hashes of a growing tree, enough to append and to compute its root."""

    __slots__ = ("_hasher", "_hashes", "_size")

    def __init__(self, hasher: MerkleHasher) -> None:
        """Start an empty tree."""
        self._hasher = hasher
        self._hashes: list[bytes] = []
        self._size = 0

    @classmethod
    def from_hashes(cls, hasher: MerkleHasher, size: int, hashes: Sequence[bytes]) -> Frontier:
        """Resume a tree of ``size`` leaves from its perfect-subtree hashes, largest first.

        Requires size ≥ 0, one hash per set bit of ``size``, each ``hasher.digest_size`` long.
        """
        want = len(compact_range_ids(size))
        if len(hashes) != want:
            raise InputError(
                f"frontier of tree size {size} has {len(hashes)} hashes, want {want}",
                field="hashes",
                value=len(hashes),
                expected=str(want),
            )
        for i, h in enumerate(hashes):
            _check_hash(hasher, h, f"hashes[{i}]")
        frontier = cls(hasher)
        frontier._hashes = list(hashes)
        frontier._size = size
        return frontier

    @property
    def size(self) -> int:
        """Return the number of leaves."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Return the perfect-subtree hashes, largest (leftmost) first."""
        return tuple(self._hashes)

    def ids(self) -> list[NodeID]:
        """Return the node ids of ``hashes``, in the same order."""
        return compact_range_ids(self._size)

    def copy(self) -> Frontier:
        """Return an independent copy (to try a batch without touching this one)."""
        return Frontier.from_hashes(self._hasher, self._size, self._hashes)

    def root(self) -> bytes:
        """Return the tree's root (MTH); the empty tree's root is the hash of ``b""``."""
        hashes = self._hashes
        if not hashes:
            return self._hasher.empty_root()
        node_hash = self._hasher.node_hash
        acc = hashes[-1]
        for h in reversed(hashes[:-1]):
            acc = node_hash(h, acc)
        return acc

    def append(self, leaf_hash: bytes) -> list[NodeRow]:
        """Append one leaf hash; return every node it completes, the leaf itself first."""
        return self.extend((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[NodeRow]:
        """Append leaf hashes in order; return every completed node, each in completion order.

        All or nothing: if a hash has the wrong length (or ``leaf_hashes`` raises), the frontier
        is left unchanged.
        """
        # The hot path of every append: bind everything to locals and allocate only the rows.
        node_hash = self._hasher.node_hash
        digest_size = self._hasher.digest_size
        stack = self._hashes
        saved = stack[:]
        pop, push = stack.pop, stack.append
        out: list[NodeRow] = []
        emit = out.append
        n = self._size
        try:
            for h in leaf_hashes:
                if len(h) != digest_size:
                    _check_hash(self._hasher, h, f"leaf_hashes[{n - self._size}]")
                emit((0, n, h))
                # Each trailing 1 bit of n is a same-sized subtree on the left awaiting a partner.
                i, level = n, 0
                while i & 1:
                    i >>= 1
                    level += 1
                    h = node_hash(pop(), h)
                    emit((level, i, h))
                push(h)
                n += 1
        except BaseException:
            self._hashes = saved
            raise
        self._size = n
        return out


def _check_hash(hasher: MerkleHasher, h: bytes, field: str) -> None:
    if len(h) != hasher.digest_size:
        raise InputError(
            f"{field} has {len(h)} bytes, want {hasher.digest_size}",
            field=field,
            value=h,
            expected=f"{hasher.digest_size} bytes",
        )
