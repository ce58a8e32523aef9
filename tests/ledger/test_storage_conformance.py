"""One storage conformance suite, run against SQLite and the real PostgreSQL server."""

from __future__ import annotations

import json

import pytest

from medledger.errors import NotFound, StateError
from medledger.ledger import tree
from medledger.ledger.node import LedgerNode, header_of
from medledger.ledger.proof import compact_range_ids
from medledger.verify.merkle import verify_consistency, verify_inclusion


def _entries(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"v": 1, "type": "test.entry", "meta": {"n": start + i}} for i in range(n)]


def test_genesis_is_a_signed_empty_head(node: LedgerNode) -> None:
    """A new ledger holds exactly the height-0 block over the empty tree."""
    head = node.head()
    assert (head.height, head.tree_size) == (0, 0)
    assert head.root == node.hasher.empty_root()
    assert head.prev == bytes(32)


def test_receipts_are_in_input_order_and_durable(node: LedgerNode) -> None:
    """Receipts number entries consecutively and every one is readable afterwards."""
    receipts = node.append(_entries(100))
    assert [r.index for r in receipts] == list(range(100))
    with node.reader() as r:
        for rc in receipts:
            data = r.get_entry(rc.index)
            assert node.hasher.leaf_hash(data).hex() == rc.entry_hash
            assert json.loads(data)["meta"]["n"] == rc.index
            assert r.block_covering(rc.index).height == rc.height


def test_every_leaf_proves_against_every_block_head(node: LedgerNode) -> None:
    """Inclusion proofs from the store verify against each later signed head."""
    node.append(_entries(40))
    node.append(_entries(9, 40))
    with node.reader() as r:
        heads = [header_of(b) for b in r.iter_blocks()]
        for h in heads:
            for i in range(h.tree_size):
                leaf = r.get_nodes([(0, i)])[0]
                proof = tree.inclusion_proof(r, node.hasher, i, h.tree_size)
                verify_inclusion(node.hasher, i, h.tree_size, leaf, proof, h.root)


def test_consistency_between_all_heads(node: LedgerNode) -> None:
    """Every earlier head is a prefix of every later one."""
    for k in range(5):
        node.append(_entries(7 + k, 100 * k))
    with node.reader() as r:
        heads = [header_of(b) for b in r.iter_blocks()][1:]
    for a in heads:
        for b in heads:
            if a.tree_size <= b.tree_size:
                with node.reader() as r:
                    proof = tree.consistency_proof(r, node.hasher, a.tree_size, b.tree_size)
                verify_consistency(node.hasher, a.tree_size, b.tree_size, proof, a.root, b.root)


def test_reader_is_narrow_and_reports_missing(node: LedgerNode) -> None:
    """Reads of absent items raise NotFound with exact bounds; readers cannot write."""
    node.append(_entries(3))
    with node.reader() as r:
        assert not hasattr(r, "add_entries")
        with pytest.raises(NotFound, match="index 3 out of bounds for tree size 3"):
            r.block_covering(3)
        with pytest.raises(NotFound):
            r.get_entry(99)
        with pytest.raises(NotFound, match="node level 5 index 0"):
            r.get_nodes([(5, 0)])
        with pytest.raises(NotFound):
            r.get_block(42)
        assert r.entry_count() == 3


def test_tip_reloads_from_store(node: LedgerNode, tmp_path: object) -> None:
    """A reopened node rebuilds the same tip and keeps appending on it."""
    node.append(_entries(21))
    before = node.load_tip()
    data, db = node.data_dir, node.config.db
    node.close()
    with LedgerNode.open(data) as again:
        tip = again.load_tip()
        assert tip.header == before.header
        assert tip.frontier.root() == before.frontier.root()
        r = again.append(_entries(2))
        assert r[0].index == 21
    assert db == again.config.db


def test_duplicate_rows_are_refused(node: LedgerNode) -> None:
    """Writing an index that already exists fails and leaves the store unchanged."""
    node.append(_entries(2))
    with pytest.raises(StateError), node.store.writer() as w:
        w.add_entries([(2, b"{}"), (0, b"{}")])
    with node.reader() as r:
        assert r.entry_count() == 2


def test_stored_frontier_matches_compact_range(node: LedgerNode) -> None:
    """The nodes a tip needs are exactly the compact range and they are all stored."""
    node.append(_entries(37))
    with node.reader() as r:
        assert len(r.get_nodes(compact_range_ids(37))) == len(compact_range_ids(37))
        assert r.node_count() == 2 * 37 - bin(37).count("1")


def test_open_reader_does_not_block_appends(node: LedgerNode) -> None:
    """A long-lived reader (an audit, a proof server) never blocks the writer or a reopen."""
    node.append(_entries(3))
    with node.reader() as r:
        assert r.entry_count() == 3
        receipts = node.append(_entries(2, 3))  # would wait for the busy timeout if blocked
        assert [x.index for x in receipts] == [3, 4]
        other = LedgerNode.open(node.data_dir)
        other.close()
        assert r.entry_count() == 3  # the reader keeps its snapshot


def test_commit_hooks_commit_with_the_block(node: LedgerNode) -> None:
    """A hook's writes commit with the block; a failing hook aborts the block entirely."""
    from sqlalchemy import text

    from medledger.errors import StorageError

    seen: list[int] = []

    def hook(conn: object, block: object) -> None:
        seen.append(block.header.height)  # type: ignore[attr-defined]
        conn.execute(  # type: ignore[attr-defined]
            text("INSERT INTO chain_meta (key, value) VALUES (:k, 'x')"),
            {"k": f"hook-{block.header.height}"},  # type: ignore[attr-defined]
        )
        if block.header.height == 2:  # type: ignore[attr-defined]
            raise StorageError("hook refused")

    node.add_commit_hook(hook)
    node.append(_entries(1))
    with pytest.raises(StorageError, match="hook refused"):
        node.append(_entries(1, 1))
    with node.reader() as r:
        assert r.get_meta("hook-1") == "x"
        assert r.get_meta("hook-2") is None
        assert r.entry_count() == 1
    assert seen == [1, 2]
