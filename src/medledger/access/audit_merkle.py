"""The RFC 6962 Merkle tree of one audit batch, held in memory (a batch has ≤ 65,536 events).

Built bottom up: each level pairs neighbours and carries an unpaired last node up unchanged.
That is the same tree as RFC 6962 §2.1's recursive split at the largest power of two below n,
so the root and the inclusion paths verify with ``verify.merkle.verify_inclusion``.
"""

from __future__ import annotations

from collections.abc import Sequence

from medledger.crypto.rfc6962 import MerkleHasher
from medledger.errors import InputError

__all__ = ["inclusion_path", "leaf_hashes", "merkle_root"]


def leaf_hashes(hasher: MerkleHasher, events: Sequence[bytes]) -> list[bytes]:
    """Return H(0x00 ‖ event) of each canonical event."""
    leaf = hasher.leaf_hash
    return [leaf(e) for e in events]


def merkle_root(hasher: MerkleHasher, leaves: Sequence[bytes]) -> bytes:
    """Return the root over ``leaves`` (leaf hashes); the empty tree's root if there are none."""
    if not leaves:
        return hasher.empty_root()
    level = list(leaves)
    while len(level) > 1:
        level = _up(hasher, level)
    return level[0]


def inclusion_path(hasher: MerkleHasher, leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Return the RFC 9162 inclusion proof of leaf ``index``. Requires 0 ≤ index < len(leaves)."""
    if not 0 <= index < len(leaves):
        raise InputError(
            f"index {index} out of bounds for batch size {len(leaves)}",
            field="index",
            value=index,
            expected=f"0 <= index < {len(leaves)}",
        )
    path: list[bytes] = []
    level = list(leaves)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = _up(hasher, level)
        index >>= 1
    return path


def _up(hasher: MerkleHasher, level: list[bytes]) -> list[bytes]:
    node = hasher.node_hash
    nxt = [node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        nxt.append(level[-1])
    return nxt
