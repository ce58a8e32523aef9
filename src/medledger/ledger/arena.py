"""Packed in-memory copies of whole tree levels, so proofs skip the database.

A stored node never changes once written, so a copy needs no invalidation. Each level is one
``bytearray`` of 32-byte hashes in index order: no per-node Python object, so a million-entry
tree (two million nodes) costs 64 MiB. Levels are loaded from the top of the tree down until a
byte budget is spent; the committer appends each new block's nodes, so the copy stays current.
Everything not in the arena is read from the store as usual.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol

DEFAULT_BUDGET = 96 * 1024 * 1024
_CHUNK = 16_384


class RangeReader(Protocol):
    def node_rows(self, lo_key: int, hi_key: int) -> list[tuple[int, bytes]]: ...


class NodeArena:
    """Whole levels ``low .. top`` of a tree, each a packed array of hashes."""

    def __init__(self, digest_size: int = 32) -> None:
        self._size = digest_size
        self._levels: dict[int, bytearray] = {}
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self._levels.values())

    @property
    def active(self) -> bool:
        """True once any level has been loaded."""
        return bool(self._levels)

    def levels(self) -> list[int]:
        return sorted(self._levels)

    def load(self, reader: RangeReader, tree_size: int, budget: int = DEFAULT_BUDGET) -> int:
        """Load the highest levels of the tree of ``tree_size`` leaves that fit ``budget`` bytes.

        Requires every complete subtree of that tree to be stored. Returns the node count.
        """
        d = self._size
        top = tree_size.bit_length()
        low, spent = top, 0
        while low > 0 and spent + (tree_size >> (low - 1)) * d <= budget:
            low -= 1
            spent += (tree_size >> low) * d
        loaded = 0
        for level in range(low, top):
            count = tree_size >> level
            buf = bytearray()
            base = level << 48
            for start in range(0, count, _CHUNK):
                rows = reader.node_rows(base + start, base + min(start + _CHUNK, count) - 1)
                run = 0
                while run < len(rows) and rows[run][0] == base + start + run:
                    run += 1
                buf += b"".join(h for _, h in rows[:run])
                if run < min(_CHUNK, count - start):
                    break  # a gap: keep only the contiguous prefix; the store serves the rest
            with self._lock:
                self._levels[level] = buf
            loaded += len(buf) // d
        return loaded

    def get(self, level: int, index: int) -> bytes | None:
        """Return the hash of node ``(level, index)`` if the arena holds it."""
        buf = self._levels.get(level)
        if buf is None:
            return None
        d = self._size
        start = index * d
        if start + d > len(buf):
            return None
        return bytes(buf[start : start + d])

    def get_many(self, ids: Iterable[tuple[int, int]]) -> list[bytes] | None:
        """Return the hashes of ``ids`` in order, or None unless the arena holds them all."""
        levels = self._levels
        d = self._size
        out = []
        for level, index in ids:
            buf = levels.get(level)
            start = index * d
            if buf is None or start + d > len(buf):
                return None
            out.append(bytes(buf[start : start + d]))
        return out

    def append_nodes(self, rows: Iterable[tuple[int, bytes]]) -> None:
        """Add newly committed ``(node_key, hash)`` rows that extend a held level at its end."""
        d = self._size
        with self._lock:
            for key, h in rows:
                buf = self._levels.get(key >> 48)
                if buf is not None and len(buf) == (key & ((1 << 48) - 1)) * d:
                    buf += h
