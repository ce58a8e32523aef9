"""Verify RFC 9162 inclusion (§2.1.3.2) and consistency (§2.1.4.2) proofs.

Needs only a ``MerkleHasher``, so the offline verifier can ship without the rest of the ledger.
A proof is split where the path meets the tree's right edge: below that point (``inner``) each
hash is a sibling on the left or the right as the index bit says; above it (``border``) each is
a left sibling, because a right-edge node has no right sibling. Knowing that split up front
gives the exact proof length, so a short or long proof is refused before any hashing.
"""

from __future__ import annotations

from collections.abc import Sequence

from medledger.crypto.rfc6962 import MerkleHasher
from medledger.errors import ProofInvalid, RootMismatch

_NODE = b"\x01"

__all__ = [
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]


def root_from_inclusion_proof(
    hasher: MerkleHasher, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Return the root that ``proof`` leads to from leaf ``index`` of a tree of ``size`` leaves.

    Requires 0 ≤ index < size and every hash to be ``hasher.digest_size`` bytes.
    """
    if not 0 <= index < size:
        raise ProofInvalid(
            f"index {index} out of bounds for tree size {size}",
            check="inclusion",
            index=index,
            size=size,
        )
    _check_len(hasher, leaf_hash, "leaf hash", "inclusion")
    inner, border = _decompose(index, size)
    _check_proof(hasher, proof, inner + border, "inclusion")
    h = leaf_hash
    new = hasher.new
    if new is not None:  # the hot path: hash inline, one C call per node
        for i in range(inner):
            p = proof[i]
            h = new(_NODE + p + h).digest() if (index >> i) & 1 else new(_NODE + h + p).digest()
        for i in range(inner, inner + border):
            h = new(_NODE + proof[i] + h).digest()
        return h
    node_hash = hasher.node_hash
    for i in range(inner):
        h = node_hash(proof[i], h) if (index >> i) & 1 else node_hash(h, proof[i])
    for i in range(inner, inner + border):
        h = node_hash(proof[i], h)
    return h


def verify_inclusion(
    hasher: MerkleHasher,
    index: int,
    size: int,
    leaf_hash: bytes,
    proof: Sequence[bytes],
    root: bytes,
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Raise RootMismatch if the proof leads elsewhere, ProofInvalid if it is malformed.
    """
    _check_len(hasher, root, "root", "inclusion")
    calculated = root_from_inclusion_proof(hasher, index, size, leaf_hash, proof)
    if calculated != root:
        raise RootMismatch(check="inclusion", expected=root, calculated=calculated)


def root_from_consistency_proof(
    hasher: MerkleHasher, size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> bytes:
    """Return the root of the tree of ``size2`` leaves that ``proof`` leads to from ``root1``.

    Requires 0 < size1 < size2 and every hash to be ``hasher.digest_size`` bytes. Raise
    RootMismatch if the proof does not reproduce ``root1`` as well.
    """
    if not 0 < size1 < size2:
        raise ProofInvalid(
            f"size1 {size1} out of bounds for tree size {size2}, want 0 < size1 < {size2}",
            check="consistency",
            size1=size1,
            size2=size2,
        )
    _check_len(hasher, root1, "root1", "consistency")
    # The old tree's last perfect subtree is the proof's starting point; everything left of it
    # is shared by both trees.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 >> level) - 1
    inner, border = _decompose(index, ((size2 - 1) >> level) + 1)
    # A perfect old tree is its own starting subtree, and the verifier already holds its root.
    start = 0 if index == 0 else 1
    _check_proof(hasher, proof, start + inner + border, "consistency")
    seed = root1 if index == 0 else proof[0]
    node_hash = hasher.node_hash
    h1 = h2 = seed
    for i in range(inner):
        p = proof[start + i]
        if (index >> i) & 1:
            # A left sibling lies inside the old tree too.
            h1 = node_hash(p, h1)
            h2 = node_hash(p, h2)
        else:
            h2 = node_hash(h2, p)
    for i in range(start + inner, start + inner + border):
        h1 = node_hash(proof[i], h1)
        h2 = node_hash(proof[i], h2)
    if h1 != root1:
        raise RootMismatch(check="consistency.root1", expected=root1, calculated=h1)
    return h2


def verify_consistency(
    hasher: MerkleHasher,
    size1: int,
    size2: int,
    proof: Sequence[bytes],
    root1: bytes,
    root2: bytes,
) -> None:
    """Check that the tree of ``size1`` leaves with ``root1`` is a prefix of ``size2``'s.

    Requires 0 < size1 ≤ size2: a proof from the empty tree carries no evidence and is refused.
    When size1 == size2 the proof must be empty and the roots are only compared (their length
    is not checked, as in the shared RFC 6962 test vectors). Raise RootMismatch if a root does
    not match, ProofInvalid if the proof is malformed.
    """
    if not 0 < size1 <= size2:
        raise ProofInvalid(
            f"size1 {size1} out of bounds for tree size {size2}, want 0 < size1 <= {size2}",
            check="consistency",
            size1=size1,
            size2=size2,
        )
    if size1 == size2:
        if proof:
            raise ProofInvalid(
                f"proof has {len(proof)} hashes, want 0 for equal tree sizes {size1}",
                check="consistency",
                got=len(proof),
                want=0,
            )
        if root1 != root2:
            raise RootMismatch(check="consistency.root2", expected=root2, calculated=root1)
        return
    _check_len(hasher, root2, "root2", "consistency")
    calculated = root_from_consistency_proof(hasher, size1, size2, proof, root1)
    if calculated != root2:
        raise RootMismatch(check="consistency.root2", expected=root2, calculated=calculated)


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Return the (inner, border) proof lengths for ``index``. Requires 0 ≤ index < size."""
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def _check_len(hasher: MerkleHasher, h: bytes, what: str, check: str) -> None:
    if len(h) != hasher.digest_size:
        raise ProofInvalid(
            f"{what} has {len(h)} bytes, want {hasher.digest_size}",
            check=check,
            got=len(h),
            want=hasher.digest_size,
        )


def _check_proof(hasher: MerkleHasher, proof: Sequence[bytes], want: int, check: str) -> None:
    if len(proof) != want:
        raise ProofInvalid(
            f"proof has {len(proof)} hashes, want {want}", check=check, got=len(proof), want=want
        )
    size = hasher.digest_size
    for i, h in enumerate(proof):
        if len(h) != size:
            raise ProofInvalid(
                f"proof hash {i} has {len(h)} bytes, want {size}", check=check, index=i, got=len(h)
            )
