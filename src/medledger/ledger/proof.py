"""Plan RFC 9162 inclusion and consistency proofs as lists of stored node ids.

Planning is pure: it names the complete (perfect) subtrees a proof needs and never touches
storage, so a caller fetches them in one batch and then calls ``Nodes.rehash``.

A node id is ``(level, index)``: level 0 holds the leaves, and node ``(l, i)`` covers leaves
``[i·2^l, (i+1)·2^l)``. Only complete subtrees are stored. A proof element that covers an
incomplete subtree on the tree's right edge (the "ephemeral" node) is rebuilt from the complete
subtrees that make it up.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from medledger.errors import InputError, NotFound

__all__ = [
    "MAX_INDEX",
    "NodeID",
    "Nodes",
    "compact_range_ids",
    "consistency",
    "inclusion",
    "node_from_key",
    "node_key",
]

NodeID = tuple[int, int]

_KEY_SHIFT = 48
# 2^48 leaves is far beyond any ledger we run, and it keeps keys inside a signed 64-bit column.
MAX_INDEX = (1 << _KEY_SHIFT) - 1
# A tree of at most 2^48 leaves has levels 0..48; (48 << 48) still fits a signed 64-bit key.
_MAX_LEVEL = _KEY_SHIFT + 1


def node_key(level: int, index: int) -> int:
    """Return the storage key ``(level << 48) | index`` of a node. Requires 0 ≤ index < 2^48."""
    if not (0 <= index <= MAX_INDEX and 0 <= level < _MAX_LEVEL):
        raise InputError(
            f"node ({level}, {index}) has no storage key",
            field="node",
            value=f"({level}, {index})",
            expected=f"0 <= level < {_MAX_LEVEL} and 0 <= index <= {MAX_INDEX}",
        )
    return (level << _KEY_SHIFT) | index


def node_from_key(key: int) -> NodeID:
    """Return the ``(level, index)`` that ``node_key`` maps to ``key``. Requires key ≥ 0."""
    return key >> _KEY_SHIFT, key & MAX_INDEX


@dataclass(frozen=True, slots=True)
class Nodes:
    """The complete subtrees a proof needs, in fetch order, and how to turn them into the proof.

    ``ids[begin:end]``, when it holds more than one id, is the right-edge decomposition (largest
    subtree first) of the incomplete subtree ``ephem``; ``rehash`` folds it into one hash. When
    ``end - begin <= 1`` nothing is folded and ``ephem`` means nothing.
    """

    ids: tuple[NodeID, ...]
    begin: int
    end: int
    ephem: NodeID

    def rehash(
        self, hashes: Sequence[bytes], node_hash: Callable[[bytes, bytes], bytes]
    ) -> list[bytes]:
        """Return the proof from the fetched hashes. Requires len(hashes) == len(self.ids)."""
        if len(hashes) != len(self.ids):
            raise InputError(
                f"got {len(hashes)} node hashes, want {len(self.ids)}",
                field="hashes",
                value=len(hashes),
                expected=str(len(self.ids)),
            )
        begin, end = self.begin, self.end
        if end - begin <= 1:
            return list(hashes)
        # MTH of a non-power-of-two range splits off its largest left subtree first, so the
        # decomposition folds from the right (RFC 9162 §2.1.1).
        acc = hashes[end - 1]
        for i in range(end - 2, begin - 1, -1):
            acc = node_hash(hashes[i], acc)
        return [*hashes[:begin], acc, *hashes[end:]]


@functools.lru_cache(maxsize=4096)
def _compact(size: int) -> tuple[NodeID, ...]:
    return tuple(
        (level, (size >> level) - 1)
        for level in range(size.bit_length() - 1, -1, -1)
        if (size >> level) & 1
    )


def compact_range_ids(size: int) -> list[NodeID]:
    """Return the perfect subtrees that make up a tree of ``size`` leaves, largest first.

    Requires size ≥ 0; the empty tree has none.
    """
    if size < 0:
        raise InputError(f"tree size {size} is negative", field="size", value=size, expected=">= 0")
    return list(_compact(size))


def _path(index: int, size: int, level: int) -> Nodes:
    """Plan the path from node ``(level, index)`` up to the root of a tree of ``size`` leaves.

    Requires the node to be complete and to hold a leaf below ``size``.
    """
    last = (size - 1) >> level
    # Below ``inner`` the node and the last leaf sit in different subtrees, so every sibling
    # exists; at and above it the node is on the right edge and has only left siblings.
    inner = (index ^ last).bit_length()
    # Siblings below the top inner one lie wholly left of the last leaf, so are complete.
    ids = [(level + i, (index >> i) ^ 1) for i in range(inner - 1)]
    begin = end = 0
    ephem: NodeID = (0, 0)
    if inner:
        # The top inner sibling holds the last leaf, so it may be incomplete ("ephemeral"); then
        # it is rebuilt from the perfect subtrees that make it up.
        lvl, sibling = level + inner - 1, (index >> (inner - 1)) ^ 1
        start = sibling << lvl
        if size - start >= 1 << lvl:
            ids.append((lvl, sibling))
        else:
            begin = len(ids)
            ids.extend((lv, (start >> lv) + j) for lv, j in _compact(size - start))
            end = len(ids)
            ephem = (lvl, sibling)
    ids.extend(
        (level + i, (index >> i) - 1) for i in range(inner, last.bit_length()) if (index >> i) & 1
    )
    return Nodes(tuple(ids), begin, end, ephem)


def inclusion(index: int, size: int) -> Nodes:
    """Plan the inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Requires 0 ≤ index < size.
    """
    if not 0 <= index < size:
        raise NotFound(
            f"index {index} out of bounds for tree size {size}",
            field="index",
            value=index,
            expected=f"0 <= index < {size}",
        )
    return _path(index, size, 0)


def consistency(size1: int, size2: int) -> Nodes:
    """Plan the proof that the tree of ``size1`` leaves is a prefix of the one of ``size2``.

    Requires 0 ≤ size1 ≤ size2. The proof is empty when size1 == size2 or size1 == 0 (there is
    nothing to prove; the verifier rejects size1 == 0 because such a proof carries no evidence).
    """
    if not 0 <= size1 <= size2:
        raise InputError(
            f"size1 {size1} out of bounds for tree size {size2}",
            field="size1",
            value=size1,
            expected=f"0 <= size1 <= {size2}",
        )
    if size1 == 0 or size1 == size2:
        return Nodes((), 0, 0, (0, 0))
    # Start from the old tree's last perfect subtree: everything left of it is shared by both
    # trees, so the path from it reproduces the old root and the new one.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 >> level) - 1
    path = _path(index, size2, level)
    if index == 0:
        # The old tree is itself perfect; the verifier already holds its root.
        return path
    shift = 1 if path.end > path.begin else 0
    return Nodes(((level, index), *path.ids), path.begin + shift, path.end + shift, path.ephem)
