"""A slow reference Merkle tree, transcribed straight from RFC 6962 §2.1, to check the fast code.

Every function takes the list of entries D[n] itself (not leaf hashes) and recurses exactly as
the RFC's definitions do, with k the largest power of two smaller than n. Never used by
production code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

HashFn = Callable[[bytes], bytes]


def sha256(data: bytes) -> bytes:
    """Return SHA-256(data)."""
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """Return the largest power of two smaller than n. Requires n > 1."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def mth(entries: list[bytes], h: HashFn = sha256) -> bytes:
    """Return MTH(D[n]) (RFC 6962 §2.1)."""
    n = len(entries)
    if n == 0:
        return h(b"")
    if n == 1:
        return h(b"\x00" + entries[0])
    k = _k(n)
    return h(b"\x01" + mth(entries[:k], h) + mth(entries[k:], h))


def path(m: int, entries: list[bytes], h: HashFn = sha256) -> list[bytes]:
    """Return PATH(m, D[n]), the audit path of entry m (RFC 6962 §2.1.1). Requires 0 ≤ m < n."""
    n = len(entries)
    assert 0 <= m < n
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, entries[:k], h), mth(entries[k:], h)]
    return [*path(m - k, entries[k:], h), mth(entries[:k], h)]


def proof(m: int, entries: list[bytes], h: HashFn = sha256) -> list[bytes]:
    """Return PROOF(m, D[n]), the consistency proof (RFC 6962 §2.1.2). Requires 0 < m ≤ n."""
    assert 0 < m <= len(entries)
    return subproof(m, entries, True, h)


def subproof(m: int, entries: list[bytes], b: bool, h: HashFn = sha256) -> list[bytes]:
    """Return SUBPROOF(m, D[n], b) (RFC 6962 §2.1.2)."""
    n = len(entries)
    if m == n:
        return [] if b else [mth(entries, h)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, entries[:k], b, h), mth(entries[k:], h)]
    return [*subproof(m - k, entries[k:], False, h), mth(entries[:k], h)]
