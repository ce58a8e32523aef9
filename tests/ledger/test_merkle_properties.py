"""Property tests: the fast Merkle code agrees with the RFC 6962 reference on random trees."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto.rfc6962 import MerkleHasher
from medledger.errors import InputError, ProofInvalid
from medledger.ledger.compact import Frontier
from medledger.ledger.tree import MemoryNodes, consistency_proof, inclusion_proof, root_at
from medledger.verify.merkle import verify_consistency, verify_inclusion
from tests import reference_merkle as ref

HASHER = MerkleHasher(lambda data: hashlib.sha256(data).digest())

entries = st.lists(st.binary(max_size=8), min_size=1, max_size=300)
small_entries = st.lists(st.binary(max_size=4), min_size=1, max_size=40)
# Distinct entries, so that a changed index really points at a different leaf hash.
distinct_entries = st.lists(st.binary(max_size=8), min_size=1, max_size=300, unique=True)


class Tree:
    """A tree built the production way: leaf hashes through a Frontier into MemoryNodes."""

    def __init__(self, data: list[bytes]) -> None:
        self.data = data
        self.leaves = [HASHER.leaf_hash(d) for d in data]
        self.store = MemoryNodes()
        self.roots = [HASHER.empty_root()]
        frontier = Frontier(HASHER)
        for leaf in self.leaves:
            self.store.put_all(frontier.append(leaf))
            self.roots.append(frontier.root())


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    h = bytearray(out[i])
    h[bit // 8] ^= 1 << (bit % 8)
    out[i] = bytes(h)
    return out


@settings(deadline=None)
@given(entries, st.data())
def test_frontier_root_matches_reference(data: list[bytes], draw: st.DataObject) -> None:
    """(a) Frontier and stored-node roots equal the reference MTH, at the end and at any size."""
    tree = Tree(data)
    assert tree.roots[-1] == ref.mth(data)
    size = draw.draw(st.integers(0, len(data)))
    assert tree.roots[size] == root_at(tree.store, HASHER, size) == ref.mth(data[:size])


@settings(deadline=None, max_examples=50)
@given(small_entries)
def test_every_inclusion_proof_matches_reference(data: list[bytes]) -> None:
    """(b) Every leaf's proof at every size equals the reference PATH and verifies."""
    tree = Tree(data)
    for size in range(1, len(data) + 1):
        for index in range(size):
            proof = inclusion_proof(tree.store, HASHER, index, size)
            assert proof == ref.path(index, data[:size])
            verify_inclusion(HASHER, index, size, tree.leaves[index], proof, tree.roots[size])


@settings(deadline=None)
@given(entries, st.data())
def test_inclusion_proof_matches_reference_large(data: list[bytes], draw: st.DataObject) -> None:
    """(b) On trees up to 300 leaves a random leaf's proof equals PATH and verifies."""
    tree = Tree(data)
    size = draw.draw(st.integers(1, len(data)))
    index = draw.draw(st.integers(0, size - 1))
    proof = inclusion_proof(tree.store, HASHER, index, size)
    assert proof == ref.path(index, data[:size])
    verify_inclusion(HASHER, index, size, tree.leaves[index], proof, tree.roots[size])


@settings(deadline=None, max_examples=50)
@given(small_entries)
def test_every_consistency_proof_matches_reference(data: list[bytes]) -> None:
    """(c) The proof between every two sizes equals the reference SUBPROOF and verifies."""
    tree = Tree(data)
    for size2 in range(1, len(data) + 1):
        for size1 in range(1, size2 + 1):
            proof = consistency_proof(tree.store, HASHER, size1, size2)
            assert proof == ref.proof(size1, data[:size2])
            verify_consistency(HASHER, size1, size2, proof, tree.roots[size1], tree.roots[size2])


@settings(deadline=None)
@given(entries, st.data())
def test_consistency_proof_matches_reference_large(data: list[bytes], draw: st.DataObject) -> None:
    """(c) On trees up to 300 leaves a random pair's proof equals SUBPROOF and verifies."""
    tree = Tree(data)
    size2 = draw.draw(st.integers(1, len(data)))
    size1 = draw.draw(st.integers(1, size2))
    proof = consistency_proof(tree.store, HASHER, size1, size2)
    assert proof == ref.proof(size1, data[:size2])
    verify_consistency(HASHER, size1, size2, proof, tree.roots[size1], tree.roots[size2])


@settings(deadline=None)
@given(entries)
def test_consistency_from_empty_tree_is_refused(data: list[bytes]) -> None:
    """(c) The planner gives an empty proof from size 0, and the verifier refuses it."""
    tree = Tree(data)
    size2 = len(data)
    assert consistency_proof(tree.store, HASHER, 0, size2) == []
    with pytest.raises(
        ProofInvalid, match=f"size1 0 out of bounds for tree size {size2}, want 0 < size1"
    ):
        verify_consistency(HASHER, 0, size2, [], tree.roots[0], tree.roots[size2])


@settings(deadline=None, max_examples=50)
@given(distinct_entries, st.data())
def test_mutated_inclusion_proof_fails(data: list[bytes], draw: st.DataObject) -> None:
    """(d) Any bit flip in any proof hash, index±1, or another size's root fails verification."""
    tree = Tree(data)
    size = draw.draw(st.integers(1, len(data)))
    index = draw.draw(st.integers(0, size - 1))
    leaf, root = tree.leaves[index], tree.roots[size]
    proof = inclusion_proof(tree.store, HASHER, index, size)
    for i in range(len(proof)):
        for bit in range(8 * len(proof[i])):
            with pytest.raises(ProofInvalid):
                verify_inclusion(HASHER, index, size, leaf, _flip(proof, i, bit), root)
    for wrong in (index - 1, index + 1):
        with pytest.raises(ProofInvalid):
            verify_inclusion(HASHER, wrong, size, leaf, proof, root)
    # A proof binds the size only through the root it must reach (see the probe tests), so a
    # wrong size is checked against that size's own root.
    for wrong in {size - 1, size + 1, size * 2, size // 2} - {size}:
        if wrong <= len(data):
            with pytest.raises(ProofInvalid):
                verify_inclusion(HASHER, index, wrong, leaf, proof, tree.roots[wrong])


@settings(deadline=None, max_examples=50)
@given(distinct_entries, st.data())
def test_mutated_consistency_proof_fails(data: list[bytes], draw: st.DataObject) -> None:
    """(d) Any bit flip in a consistency proof hash, or either size off by one, fails."""
    tree = Tree(data)
    size2 = draw.draw(st.integers(1, len(data)))
    size1 = draw.draw(st.integers(1, size2))
    root1, root2 = tree.roots[size1], tree.roots[size2]
    proof = consistency_proof(tree.store, HASHER, size1, size2)
    for i in range(len(proof)):
        for bit in range(8 * len(proof[i])):
            with pytest.raises(ProofInvalid):
                verify_consistency(HASHER, size1, size2, _flip(proof, i, bit), root1, root2)
    for s1, s2 in ((size1 - 1, size2), (size1 + 1, size2), (size1, size2 - 1), (size1, size2 + 1)):
        if 0 <= s1 <= len(data) and s2 <= len(data):
            with pytest.raises(ProofInvalid):
                verify_consistency(HASHER, s1, s2, proof, tree.roots[s1], tree.roots[s2])


def _perfect_subtrees(size: int) -> set[tuple[int, int]]:
    return {(level, index) for level in range(size.bit_length()) for index in range(size >> level)}


@settings(deadline=None)
@given(entries, st.lists(st.integers(1, 50)))
def test_frontier_emits_every_complete_node_once(data: list[bytes], cuts: list[int]) -> None:
    """(e) append emits each complete node once; extend in any batches emits the same rows."""
    leaves = [HASHER.leaf_hash(d) for d in data]
    one_by_one = Frontier(HASHER)
    rows = [row for leaf in leaves for row in one_by_one.append(leaf)]
    ids = [(level, index) for level, index, _ in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == _perfect_subtrees(len(data))
    batched = Frontier(HASHER)
    batched_rows: list[tuple[int, int, bytes]] = []
    start = 0
    for cut in [*cuts, len(leaves)]:
        batched_rows += batched.extend(leaves[start : start + cut])
        start += cut
    assert batched_rows == rows
    assert batched.root() == one_by_one.root()
    # Every emitted hash is the reference MTH of the leaves that node covers.
    for level, index, h in rows[:: max(1, len(rows) // 20)]:
        assert h == ref.mth(data[index << level : (index + 1) << level])


@settings(deadline=None)
@given(entries, st.data())
def test_frontier_resumes_from_hashes(data: list[bytes], draw: st.DataObject) -> None:
    """A Frontier rebuilt from another's hashes continues to the same root and rows."""
    leaves = [HASHER.leaf_hash(d) for d in data]
    split = draw.draw(st.integers(0, len(leaves)))
    whole = Frontier(HASHER)
    head = whole.extend(leaves[:split])
    emitted = {(level, index): h for level, index, h in head}
    assert [emitted[i] for i in whole.ids()] == list(whole.hashes)
    resumed = Frontier.from_hashes(HASHER, whole.size, whole.hashes)
    assert resumed.extend(leaves[split:]) == whole.extend(leaves[split:])
    assert resumed.root() == whole.root() == ref.mth(data)


@settings(deadline=None)
@given(st.integers(0, 2**20), st.data())
def test_from_hashes_rejects_wrong_count(size: int, draw: st.DataObject) -> None:
    """from_hashes refuses a hash list whose length is not the popcount of the size."""
    want = size.bit_count()
    count = draw.draw(st.integers(0, 25).filter(lambda n: n != want))
    with pytest.raises(InputError, match=f"has {count} hashes, want {want}"):
        Frontier.from_hashes(HASHER, size, [b"\x00" * 32] * count)
