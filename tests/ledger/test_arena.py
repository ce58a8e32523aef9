"""The in-memory node arena serves exactly what the store holds, and stays current."""

from __future__ import annotations

from sqlalchemy import text

from medledger.ledger import tree
from medledger.ledger.arena import NodeArena
from medledger.ledger.node import LedgerNode
from medledger.ledger.proof import node_key


def _entries(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"v": 1, "type": "arena.test", "meta": {"n": start + i}} for i in range(n)]


def _proofs(node: LedgerNode, size: int) -> list[list[bytes]]:
    with node.reader() as r:
        return [tree.inclusion_proof(r, node.hasher, i, size) for i in range(size)]


def test_warm_arena_gives_the_same_proofs(node: LedgerNode) -> None:
    """Proofs served from the arena equal proofs read from the database."""
    node.append(_entries(75))
    cold = _proofs(node, 75)
    assert node.warm_cache() == 2 * 75 - bin(75).count("1")
    assert _proofs(node, 75) == cold


def test_arena_follows_new_blocks(node: LedgerNode) -> None:
    """After warming, nodes of later blocks are appended, and proofs stay correct."""
    node.append(_entries(40))
    node.warm_cache()
    node.append(_entries(37, 40))
    warm = _proofs(node, 77)
    held = node.store.arena.get_many([(0, 76), (2, 18)])
    assert held is not None
    fresh = LedgerNode.open(node.data_dir)
    try:
        assert _proofs(fresh, 77) == warm
        with fresh.reader() as r:
            assert r.get_nodes([(0, 76), (2, 18)]) == held
    finally:
        fresh.close()


def test_budget_keeps_only_top_levels(node: LedgerNode) -> None:
    """With a small budget only the highest levels are held; the rest come from the store."""
    node.append(_entries(64))
    arena = NodeArena()
    with node.reader() as r:
        arena.load(r, 64, budget=32 * 7)  # levels 6, 5, 4 hold 1 + 2 + 4 nodes
    assert arena.levels() == [4, 5, 6]
    assert arena.get(3, 0) is None
    assert arena.get_many([(4, 0), (0, 0)]) is None


def test_gap_in_store_is_not_papered_over(node: LedgerNode) -> None:
    """A level with a missing row keeps only its contiguous prefix in the arena."""
    node.append(_entries(32))
    with node.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_nodes WHERE id = :k"), {"k": node_key(0, 10)})
    arena = NodeArena()
    with node.reader() as r:
        arena.load(r, 32)
    assert arena.get(0, 9) is not None
    assert arena.get(0, 10) is None


def test_memoized_right_edge_proofs_equal_plain_ones(node: LedgerNode) -> None:
    """Proofs that reuse the memoized right-edge hash equal proofs computed from scratch."""
    node.append(_entries(45))
    plain = _proofs(node, 45)
    with node.reader() as r:
        for _ in range(2):  # the second pass is served from the memo
            assert [
                tree.inclusion_proof(r, node.hasher, i, 45, memo=r.memo) for i in range(45)
            ] == plain
    assert node.certificate(44)["inclusion_proof"] == [h.hex() for h in plain[44]]
