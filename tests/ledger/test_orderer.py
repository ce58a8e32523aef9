"""The solo orderer: group commit, ordering of receipts, failure handling."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import pytest

from medledger.crypto.registry import get_suite
from medledger.crypto.trust import TrustBundle, TrustedKey
from medledger.errors import StorageError
from medledger.ledger.block import Block, BlockBuilder, ChainTip, validate_block
from medledger.ordering.base import Receipt
from medledger.ordering.solo import SoloOrderer

SUITE = get_suite("intl-v1")
CHAIN = "ab" * 16


class _Committer:
    """Keep committed blocks like a store would; fail commits at the heights in ``fail``."""

    def __init__(self, fail: set[int] | None = None) -> None:
        self.blocks: list[Block] = []
        self.fail = fail or set()
        self.key = SUITE.generate_signing_key()
        trusted = TrustedKey.of(SUITE, self.key.public_bytes, node="n")
        self.trust = TrustBundle(CHAIN, SUITE.name, 1, (trusted,))
        self.builder = BlockBuilder(SUITE, self.key, trusted.key_id, CHAIN)
        self.tip = self.builder.genesis()[1]

    def commit(self, block: Block) -> None:
        if block.header.height in self.fail:
            self.fail.discard(block.header.height)  # a transient failure, like a full disk
            raise StorageError(f"disk full at height {block.header.height}")
        self.tip = validate_block(SUITE, self.trust, self.tip, block)
        self.blocks.append(block)

    def load_tip(self) -> ChainTip:
        return self.tip


def _orderer(committer: _Committer, **kw: Any) -> SoloOrderer:
    return SoloOrderer(committer.builder, committer, committer.load_tip, **kw)


def _e(n: int, tag: str = "x") -> list[bytes]:
    return [b'{"meta":{"n":%d,"t":"%s"},"type":"t.x","v":1}' % (i, tag.encode()) for i in range(n)]


def test_big_request_spans_blocks_and_receipts_stay_in_order() -> None:
    """A request larger than a block is cut into several; receipts come back in input order."""
    committer = _Committer()
    orderer = _orderer(committer, max_entries=4, max_wait_ms=0)
    receipts = orderer.submit(_e(11)).result(10)
    orderer.close()
    assert [r.index for r in receipts] == list(range(11))
    assert [len(b.entries) for b in committer.blocks] == [4, 4, 3]
    assert [r.height for r in receipts] == [1] * 4 + [2] * 4 + [3] * 3


def test_concurrent_submitters_get_disjoint_consecutive_indices() -> None:
    """Many threads appending at once get every index exactly once."""
    committer = _Committer()
    orderer = _orderer(committer, max_entries=16, max_wait_ms=1)
    results: list[list[Receipt]] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for k in range(10):
            got = orderer.submit(_e(3, f"{t}-{k}")).result(10)
            with lock:
                results.append(got)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    orderer.close()
    indices = sorted(r.index for batch in results for r in batch)
    assert indices == list(range(180))
    for batch in results:  # each caller's own entries are contiguous and in order
        assert [r.index for r in batch] == list(range(batch[0].index, batch[0].index + 3))


def test_failed_commit_fails_its_callers_and_skips_the_rest_of_their_request() -> None:
    """A failing block fails the waiting futures; a failed request is not committed later."""
    committer = _Committer(fail={2})
    orderer = _orderer(committer, max_entries=4, max_wait_ms=0)
    fut: Future[list[Receipt]] = orderer.submit(_e(12))
    with pytest.raises(StorageError, match="disk full"):
        fut.result(10)
    after = orderer.submit(_e(2, "after")).result(10)
    orderer.close()
    committed = [e for b in committer.blocks for e in b.entries]
    assert len(committed) == 4 + 2  # the first block, then the later request only
    assert after[0].index == 4
