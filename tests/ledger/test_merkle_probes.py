"""Golden probes: systematic mutations of our own proofs, each of which must be refused."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest

from medledger.crypto.rfc6962 import MerkleHasher
from medledger.errors import ProofInvalid, RootMismatch
from medledger.ledger.compact import Frontier
from medledger.ledger.tree import MemoryNodes, consistency_proof, inclusion_proof
from medledger.verify.merkle import (
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

HASHER = MerkleHasher(lambda data: hashlib.sha256(data).digest())
SIZE = 13
LEAVES = [HASHER.leaf_hash(b"entry-%d" % i) for i in range(SIZE)]
STORE = MemoryNodes()
ROOTS = [HASHER.empty_root()]
_frontier = Frontier(HASHER)
for _leaf in LEAVES:
    STORE.put_all(_frontier.append(_leaf))
    ROOTS.append(_frontier.root())

Args = tuple[int, int, bytes, list[bytes], bytes]


def _flip(h: bytes, bit: int = 3) -> bytes:
    return bytes([h[0] ^ (1 << bit), *h[1:]])


def _inclusion_probes(index: int, size: int) -> Iterator[tuple[str, Args]]:
    proof = inclusion_proof(STORE, HASHER, index, size)
    leaf, root = LEAVES[index], ROOTS[size]
    for i in range(len(proof)):
        yield (
            f"flipped-bit-proof[{i}]",
            (index, size, leaf, [*proof[:i], _flip(proof[i]), *proof[i + 1 :]], root),
        )
    yield "trailing-garbage", (index, size, leaf, [*proof, b""], root)
    yield "trailing-hash", (index, size, leaf, [*proof, b"\x00" * 32], root)
    yield "trailing-root", (index, size, leaf, [*proof, root], root)
    yield "preceding-garbage", (index, size, leaf, [b"", *proof], root)
    if proof:
        yield "truncated", (index, size, leaf, proof[:-1], root)
        yield "short-hash", (index, size, leaf, [*proof[:-1], proof[-1][:-1]], root)
    yield "wrong-leaf", (index, size, LEAVES[(index + 1) % SIZE], proof, root)
    yield "leaf-not-hashed", (index, size, b"entry-%d" % index, proof, root)
    yield "leaf-data-hash", (index, size, hashlib.sha256(b"entry-%d" % index).digest(), proof, root)
    yield "index-plus-1", (index + 1, size, leaf, proof, root)
    yield "index-minus-1", (index - 1, size, leaf, proof, root)
    yield "index-xor-2", (index ^ 2, size, leaf, proof, root)
    yield "size-zero", (index, 0, leaf, proof, root)
    yield "size-doubled", (index, size * 2, leaf, proof, root)
    yield "flipped-root", (index, size, leaf, proof, _flip(root))
    yield "empty-tree-root", (index, size, leaf, proof, ROOTS[0])
    yield "truncated-root", (index, size, leaf, proof, root[:-1])
    if size > 1:
        yield "previous-root", (index, size, leaf, proof, ROOTS[size - 1])


INCLUSION_CASES = [(0, 1), (0, 13), (5, 13), (12, 13), (6, 7), (7, 8), (3, 5), (8, 9)]
INCLUSION_PROBES = [
    pytest.param(*args, id=f"{index}-of-{size}-{name}")
    for index, size in INCLUSION_CASES
    for name, args in _inclusion_probes(index, size)
]


@pytest.mark.parametrize(("index", "size"), INCLUSION_CASES)
def test_inclusion_happy_path(index: int, size: int) -> None:
    """The unmutated proof that each probe starts from verifies."""
    proof = inclusion_proof(STORE, HASHER, index, size)
    verify_inclusion(HASHER, index, size, LEAVES[index], proof, ROOTS[size])


@pytest.mark.parametrize(("index", "size", "leaf", "proof", "root"), INCLUSION_PROBES)
def test_inclusion_probe_fails(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> None:
    """Each mutated inclusion proof is refused with ProofInvalid."""
    with pytest.raises(ProofInvalid):
        verify_inclusion(HASHER, index, size, leaf, proof, root)


def _consistency_probes(size1: int, size2: int) -> Iterator[tuple[str, Callable[[], None]]]:
    proof = consistency_proof(STORE, HASHER, size1, size2)
    root1, root2 = ROOTS[size1], ROOTS[size2]

    def check(s1: int, s2: int, p: list[bytes], r1: bytes, r2: bytes) -> Callable[[], None]:
        return lambda: verify_consistency(HASHER, s1, s2, p, r1, r2)

    for i in range(len(proof)):
        flipped = [*proof[:i], _flip(proof[i]), *proof[i + 1 :]]
        yield f"flipped-bit-proof[{i}]", check(size1, size2, flipped, root1, root2)
    yield "trailing-garbage", check(size1, size2, [*proof, b""], root1, root2)
    yield "trailing-root1", check(size1, size2, [*proof, root1], root1, root2)
    yield "preceding-garbage", check(size1, size2, [b"", *proof], root1, root2)
    yield "preceding-root1", check(size1, size2, [root1, *proof], root1, root2)
    yield "empty-proof", check(size1, size2, [], root1, root2)
    if proof:
        yield "truncated", check(size1, size2, proof[:-1], root1, root2)
    yield "swapped-roots", check(size1, size2, proof, root2, root1)
    yield "flipped-root1", check(size1, size2, proof, _flip(root1), root2)
    yield "flipped-root2", check(size1, size2, proof, root1, _flip(root2))
    yield "truncated-root1", check(size1, size2, proof, root1[:-1], root2)
    yield "size1-zero", check(0, size2, proof, ROOTS[0], root2)
    yield "size1-plus-1", check(size1 + 1, size2, proof, ROOTS[size1 + 1], root2)
    yield "size1-minus-1", check(size1 - 1, size2, proof, ROOTS[size1 - 1], root2)
    yield "size2-minus-1", check(size1, size2 - 1, proof, root1, ROOTS[size2 - 1])
    yield "size2-doubled", check(size1, size2 * 2, proof, root1, root2)
    yield "sizes-swapped", check(size2, size1, proof, root2, root1)


CONSISTENCY_CASES = [(1, 13), (4, 13), (6, 8), (7, 13), (12, 13), (8, 13), (3, 4), (2, 5)]
CONSISTENCY_PROBES = [
    pytest.param(probe, id=f"{size1}-to-{size2}-{name}")
    for size1, size2 in CONSISTENCY_CASES
    for name, probe in _consistency_probes(size1, size2)
]


@pytest.mark.parametrize(("size1", "size2"), CONSISTENCY_CASES)
def test_consistency_happy_path(size1: int, size2: int) -> None:
    """The unmutated proof that each probe starts from verifies."""
    proof = consistency_proof(STORE, HASHER, size1, size2)
    verify_consistency(HASHER, size1, size2, proof, ROOTS[size1], ROOTS[size2])


@pytest.mark.parametrize("probe", CONSISTENCY_PROBES)
def test_consistency_probe_fails(probe: Callable[[], None]) -> None:
    """Each mutated consistency proof is refused with ProofInvalid."""
    with pytest.raises(ProofInvalid):
        probe()


def test_index_error_names_bounds() -> None:
    """An out-of-range index is refused with the exact bounds in the message."""
    with pytest.raises(ProofInvalid, match=r"^index 7 out of bounds for tree size 5$") as info:
        verify_inclusion(HASHER, 7, 5, LEAVES[0], [], ROOTS[5])
    assert info.value.check == "inclusion"
    assert info.value.details["index"] == 7


def test_proof_length_error_names_counts() -> None:
    """A proof of the wrong length is refused before hashing, naming got and want."""
    proof = inclusion_proof(STORE, HASHER, 5, 13)
    with pytest.raises(ProofInvalid, match=r"^proof has 3 hashes, want 4$"):
        verify_inclusion(HASHER, 5, 13, LEAVES[5], proof[:3], ROOTS[13])
    with pytest.raises(ProofInvalid, match=r"^proof hash 1 has 31 bytes, want 32$"):
        verify_inclusion(HASHER, 5, 13, LEAVES[5], [proof[0], proof[1][:31], *proof[2:]], ROOTS[13])


def test_root_mismatch_carries_both_roots() -> None:
    """A well-formed proof to another root raises RootMismatch with expected and calculated."""
    proof = inclusion_proof(STORE, HASHER, 5, 13)
    with pytest.raises(RootMismatch) as info:
        verify_inclusion(HASHER, 5, 13, LEAVES[5], proof, ROOTS[12])
    assert info.value.expected == ROOTS[12]
    assert info.value.calculated == ROOTS[13]
    assert info.value.check == "inclusion"


def test_consistency_root1_mismatch_is_named() -> None:
    """A consistency proof that misses the old root names root1 as the failed check."""
    proof = consistency_proof(STORE, HASHER, 6, 13)
    with pytest.raises(RootMismatch) as info:
        verify_consistency(HASHER, 6, 13, proof, _flip(ROOTS[6]), ROOTS[13])
    assert info.value.check == "consistency.root1"
    assert info.value.calculated == ROOTS[6]


def test_size_is_bound_by_the_root_not_the_proof() -> None:
    """A proof fixes the size only through its root: leaf 0's 3-leaf proof also fits size 4."""
    # RFC 9162 has the same property; the signed tree head binds size and root together.
    proof = inclusion_proof(STORE, HASHER, 0, 3)
    assert root_from_inclusion_proof(HASHER, 0, 4, LEAVES[0], proof) == ROOTS[3]
    with pytest.raises(RootMismatch):
        verify_inclusion(HASHER, 0, 4, LEAVES[0], proof, ROOTS[4])
