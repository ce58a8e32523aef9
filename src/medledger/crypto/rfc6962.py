"""RFC 6962 §2.1 Merkle tree hashing, parameterised by the suite's hash.

Leaves and interior nodes get different one-byte prefixes (0x00 and 0x01) so that a leaf can
never be passed off as an interior node (second-preimage resistance of the tree).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from medledger.crypto.suite import HashFn, Suite

__all__ = ["MerkleHasher", "hasher_for"]

_LEAF = b"\x00"
_NODE = b"\x01"


class MerkleHasher:
    """Hash empty trees, leaves and interior nodes as RFC 6962 §2.1 defines them.

    ``leaf_hash(data)`` is H(0x00 ‖ data) and ``node_hash(left, right)`` is
    H(0x01 ‖ left ‖ right). Both are plain closures over the hash function, not methods:
    they run once per leaf and once per interior node, and skipping the bound-method and
    attribute lookups is a measurable share of that cost.
    """

    __slots__ = ("digest_size", "empty_root", "hash", "leaf_hash", "new", "node_hash")

    hash: HashFn
    empty_root: Callable[[], bytes]
    leaf_hash: Callable[[bytes], bytes]
    node_hash: Callable[[bytes, bytes], bytes]
    new: Callable[[bytes], Any] | None  # hashlib-style constructor, for loops that inline it
    digest_size: int

    def __init__(self, hash_fn: HashFn, new: Callable[[bytes], Any] | None = None) -> None:
        """Bind ``hash_fn`` (a one-shot ``bytes -> digest`` callable) into the three hashes.

        ``new``, if given, is a hashlib-style constructor for the same hash (``new(data)
        .digest() == hash_fn(data)``); the leaf and node hashes then call it directly.
        """
        h = hash_fn
        empty = h(b"")

        def empty_root() -> bytes:
            """Return the root of the empty tree: H of the empty string."""
            return empty

        if new is not None:
            if new(b"abc").digest() != h(b"abc"):
                raise ValueError("new() and hash_fn disagree")

            def leaf_hash(data: bytes) -> bytes:
                """Return H(0x00 ‖ data)."""
                return new(_LEAF + data).digest()  # type: ignore[no-any-return]

            def node_hash(left: bytes, right: bytes) -> bytes:
                """Return H(0x01 ‖ left ‖ right)."""
                return new(_NODE + left + right).digest()  # type: ignore[no-any-return]

        else:

            def leaf_hash(data: bytes) -> bytes:
                """Return H(0x00 ‖ data)."""
                return h(_LEAF + data)

            def node_hash(left: bytes, right: bytes) -> bytes:
                """Return H(0x01 ‖ left ‖ right)."""
                return h(_NODE + left + right)

        self.hash = h
        self.new = new
        self.digest_size = len(empty)
        self.empty_root = empty_root
        self.leaf_hash = leaf_hash
        self.node_hash = node_hash


def hasher_for(suite: Suite) -> MerkleHasher:
    """Return the Merkle hasher of ``suite``, on its fastest hash entry point."""
    return MerkleHasher(suite.hash, getattr(suite, "hash_new", None))
