"""Proof planning, node keys, the Frontier and the one-fetch proof builders, case by case."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence

import pytest

from medledger.crypto.rfc6962 import MerkleHasher
from medledger.errors import InputError, NotFound, StorageError
from medledger.ledger import proof
from medledger.ledger.compact import Frontier
from medledger.ledger.proof import NodeID, Nodes
from medledger.ledger.tree import (
    MemoryNodes,
    consistency_proof,
    inclusion_proof,
    root_at,
)

HASHER = MerkleHasher(lambda data: hashlib.sha256(data).digest())


class CountingReader:
    """A NodeReader that records every batch it is asked for."""

    def __init__(self, store: MemoryNodes) -> None:
        self.store = store
        self.calls: list[list[NodeID]] = []

    def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        self.calls.append(list(ids))
        return self.store.get_nodes(ids)


def _store(size: int) -> MemoryNodes:
    store = MemoryNodes()
    store.put_all(Frontier(HASHER).extend(HASHER.leaf_hash(b"%d" % i) for i in range(size)))
    return store


@pytest.mark.parametrize(
    ("level", "index"),
    [(0, 0), (0, 1), (1, 0), (3, 12345), (14, 2**48 - 1), (0, 2**48 - 1), (48, 0)],
)
def test_node_key_round_trips(level: int, index: int) -> None:
    """node_from_key inverts node_key, and keys order level by level, left to right."""
    key = proof.node_key(level, index)
    assert key == (level << 48) | index
    assert proof.node_from_key(key) == (level, index)
    assert key < 2**63


@pytest.mark.parametrize(("level", "index"), [(0, 2**48), (0, -1), (-1, 0), (49, 0)])
def test_node_key_refuses_unrepresentable_nodes(level: int, index: int) -> None:
    """A node whose key would collide or overflow a signed 64-bit column is refused."""
    with pytest.raises(InputError, match="has no storage key"):
        proof.node_key(level, index)


@pytest.mark.parametrize(
    ("size", "ids"),
    [
        (0, []),
        (1, [(0, 0)]),
        (2, [(1, 0)]),
        (6, [(2, 0), (1, 2)]),
        (7, [(2, 0), (1, 2), (0, 6)]),
        (13, [(3, 0), (2, 2), (0, 12)]),
        (16, [(4, 0)]),
    ],
)
def test_compact_range_ids(size: int, ids: list[NodeID]) -> None:
    """A tree is the perfect subtrees of its size's set bits, largest and leftmost first."""
    assert proof.compact_range_ids(size) == ids


def test_inclusion_plan_with_ephemeral_node() -> None:
    """Leaf 0 of 7 needs the incomplete subtree [4, 7), planned as (1, 2) and (0, 6)."""
    nodes = proof.inclusion(0, 7)
    assert nodes == Nodes(ids=((0, 1), (1, 1), (1, 2), (0, 6)), begin=2, end=4, ephem=(2, 1))


def test_inclusion_plan_with_left_siblings_only() -> None:
    """The last leaf of 13 has only left siblings: the perfect subtrees before it."""
    nodes = proof.inclusion(12, 13)
    assert nodes.ids == ((2, 2), (3, 0))
    assert nodes.end - nodes.begin <= 1


def test_consistency_plan() -> None:
    """6 → 8 starts at the old tree's last perfect subtree (1, 2) and climbs from there."""
    assert proof.consistency(6, 8).ids == ((1, 2), (1, 3), (2, 0))
    # A perfect old tree is left out: the verifier holds its root already.
    nodes = proof.consistency(4, 13)
    assert nodes == Nodes(ids=((2, 1), (2, 2), (0, 12)), begin=1, end=3, ephem=(3, 1))


def test_consistency_plan_shifts_ephemeral_range() -> None:
    """The prepended start node shifts the ephemeral range by one."""
    nodes = proof.consistency(1, 7)
    assert nodes.ids[nodes.begin : nodes.end] == ((1, 2), (0, 6))
    nodes = proof.consistency(3, 7)
    assert nodes.ids[0] == (0, 2)
    assert nodes.ids[nodes.begin : nodes.end] == ((1, 2), (0, 6))


@pytest.mark.parametrize(("index", "size"), [(5, 5), (7, 5), (0, 0), (-1, 3)])
def test_inclusion_refuses_missing_leaf(index: int, size: int) -> None:
    """A leaf outside the tree raises NotFound naming the index and the bound."""
    with pytest.raises(NotFound, match=rf"^index {index} out of bounds for tree size {size}$") as e:
        proof.inclusion(index, size)
    assert e.value.field == "index"
    assert e.value.value == index
    assert e.value.expected == f"0 <= index < {size}"


@pytest.mark.parametrize(("size1", "size2"), [(6, 5), (1, 0), (-1, 4)])
def test_consistency_refuses_bad_sizes(size1: int, size2: int) -> None:
    """size1 outside [0, size2] raises InputError naming the field and the bound."""
    with pytest.raises(
        InputError, match=rf"size1 {size1} out of bounds for tree size {size2}"
    ) as e:
        proof.consistency(size1, size2)
    assert e.value.field == "size1"
    assert e.value.expected == f"0 <= size1 <= {size2}"


def test_compact_range_refuses_negative_size() -> None:
    """A negative tree size is an input error."""
    with pytest.raises(InputError, match="tree size -1 is negative"):
        proof.compact_range_ids(-1)


@pytest.mark.parametrize(("size1", "size2"), [(0, 0), (0, 5), (5, 5)])
def test_trivial_consistency_is_empty(size1: int, size2: int) -> None:
    """Nothing needs fetching from size 0 or between equal sizes."""
    assert proof.consistency(size1, size2).ids == ()


def test_rehash_refuses_wrong_hash_count() -> None:
    """rehash needs one hash per planned id."""
    with pytest.raises(InputError, match="got 1 node hashes, want 4"):
        proof.inclusion(0, 7).rehash([b"x" * 32], HASHER.node_hash)


@pytest.mark.parametrize(
    "build",
    [
        lambda r: inclusion_proof(r, HASHER, 3, 13),
        lambda r: consistency_proof(r, HASHER, 3, 13),
        lambda r: root_at(r, HASHER, 13),
    ],
    ids=["inclusion", "consistency", "root"],
)
def test_one_fetch_per_proof(build: Callable[[CountingReader], object]) -> None:
    """Each builder fetches all the nodes it needs in exactly one get_nodes call."""
    reader = CountingReader(_store(13))
    build(reader)
    assert len(reader.calls) == 1


def test_no_fetch_when_nothing_is_needed() -> None:
    """A one-leaf tree's proof and the empty tree's root need no storage round trip."""
    reader = CountingReader(MemoryNodes())
    assert inclusion_proof(reader, HASHER, 0, 1) == []
    assert consistency_proof(reader, HASHER, 4, 4) == []
    assert root_at(reader, HASHER, 0) == HASHER.empty_root()
    assert reader.calls == []


def test_missing_node_is_named() -> None:
    """A proof past the stored tree raises NotFound naming the first missing node."""
    with pytest.raises(NotFound, match=r"node \(0, 13\) is not stored"):
        inclusion_proof(_store(13), HASHER, 12, 14)


def test_reader_returning_wrong_count_is_a_storage_error() -> None:
    """A backend that returns too few rows fails loudly instead of yielding a wrong proof."""

    class Lossy:
        def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
            return [b"\x00" * 32] * (len(ids) - 1)

    with pytest.raises(StorageError, match="returned 4 hashes for 5 ids"):
        inclusion_proof(Lossy(), HASHER, 5, 13)


def test_frontier_empty_root() -> None:
    """An empty Frontier's root is the hash of the empty string."""
    assert Frontier(HASHER).root() == hashlib.sha256(b"").digest()


def test_append_reports_leaf_then_parents() -> None:
    """Appending leaf 3 completes the leaf, (1, 1) and (2, 0), in that order."""
    frontier = Frontier(HASHER)
    leaves = [HASHER.leaf_hash(b"%d" % i) for i in range(4)]
    frontier.extend(leaves[:3])
    rows = frontier.append(leaves[3])
    assert [(level, index) for level, index, _ in rows] == [(0, 3), (1, 1), (2, 0)]
    assert rows[0][2] == leaves[3]
    assert rows[-1][2] == frontier.root()
    assert frontier.size == 4
    assert frontier.hashes == (frontier.root(),)


def test_extend_is_all_or_nothing() -> None:
    """A wrong-length hash in a batch leaves the Frontier exactly as it was."""
    frontier = Frontier(HASHER)
    frontier.extend(HASHER.leaf_hash(b"%d" % i) for i in range(5))
    before = (frontier.size, frontier.hashes)
    batch = [HASHER.leaf_hash(b"a"), HASHER.leaf_hash(b"b"), b"short"]
    with pytest.raises(InputError, match=r"leaf_hashes\[2\] has 5 bytes, want 32"):
        frontier.extend(batch)
    assert (frontier.size, frontier.hashes) == before


def test_extend_is_all_or_nothing_when_the_input_fails() -> None:
    """An iterable that raises midway leaves the Frontier exactly as it was."""
    frontier = Frontier(HASHER)
    frontier.extend(HASHER.leaf_hash(b"%d" % i) for i in range(5))
    before = (frontier.size, frontier.hashes)

    def failing() -> Iterator[bytes]:
        yield HASHER.leaf_hash(b"a")
        yield HASHER.leaf_hash(b"b")
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError, match="source failed"):
        frontier.extend(failing())
    assert (frontier.size, frontier.hashes) == before


def test_copy_is_independent() -> None:
    """Appending to a copy leaves the original untouched."""
    frontier = Frontier(HASHER)
    frontier.append(HASHER.leaf_hash(b"a"))
    copy = frontier.copy()
    copy.append(HASHER.leaf_hash(b"b"))
    assert (frontier.size, copy.size) == (1, 2)
    assert frontier.root() == HASHER.leaf_hash(b"a")


def test_from_hashes_refuses_wrong_length_hash() -> None:
    """A stored frontier hash of the wrong length is refused on load."""
    with pytest.raises(InputError, match=r"hashes\[1\] has 31 bytes, want 32"):
        Frontier.from_hashes(HASHER, 3, [b"\x00" * 32, b"\x00" * 31])
