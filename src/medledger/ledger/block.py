"""Blocks: group commits of consecutive entries under one signed header.

Proposing a block (``BlockBuilder.propose``) and validating one (``validate_block``) are kept
apart from the sequencer that decides *when* to cut a block (``medledger.ordering``), so the solo
orderer and a cluster orderer share both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from medledger.crypto.rfc6962 import hasher_for
from medledger.crypto.suite import SigningKey, Suite
from medledger.crypto.trust import TrustBundle
from medledger.errors import ProofInvalid, SignatureInvalid
from medledger.ledger.compact import Frontier
from medledger.ledger.proof import node_key
from medledger.verify.header import ZERO_HASH, Signature, SignedHeader

Clock = Callable[[], float]


def format_ts(epoch: float) -> str:
    """Format seconds since the epoch as RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class ChainTip:
    """Where the chain stands: the newest header, its hash, and the tree's right edge."""

    header: SignedHeader
    header_hash: bytes
    frontier: Frontier


@dataclass(frozen=True, slots=True)
class Block:
    """A proposed or received block, ready to store."""

    header: SignedHeader
    first_index: int
    entries: tuple[bytes, ...]
    nodes: tuple[tuple[int, bytes], ...]  # (node_key, hash) of every newly completed subtree
    leaf_hashes: tuple[bytes, ...]


class BlockBuilder:
    """Build and sign the next block on a chain tip."""

    def __init__(
        self,
        suite: Suite,
        key: SigningKey,
        key_id: str,
        chain: str,
        clock: Clock = time.time,
    ) -> None:
        self.suite = suite
        self.hasher = hasher_for(suite)
        self._key = key
        self.key_id = key_id
        self.chain = chain
        self._clock = clock

    def genesis(self) -> tuple[Block, ChainTip]:
        """Return the signed height-0 block over the empty tree."""
        frontier = Frontier.from_hashes(self.hasher, 0, [])
        header = self._sign(0, ZERO_HASH, 0, frontier.root(), self._ts(None))
        block = Block(header, 0, (), (), ())
        return block, ChainTip(header, header.header_hash(self.suite), frontier)

    def propose(self, tip: ChainTip, entries: Sequence[bytes]) -> tuple[Block, ChainTip]:
        """Append ``entries`` (canonical bytes) to ``tip``; requires at least one entry."""
        if not entries:
            raise ValueError("a block needs at least one entry")
        leaf = self.hasher.leaf_hash
        leaves = [leaf(e) for e in entries]
        frontier = tip.frontier.copy()
        first = frontier.size
        completed = frontier.extend(leaves)
        nodes = tuple((node_key(level, index), h) for level, index, h in completed)
        header = self._sign(
            tip.header.height + 1,
            tip.header_hash,
            frontier.size,
            frontier.root(),
            self._ts(tip.header.ts),
        )
        block = Block(header, first, tuple(entries), nodes, tuple(leaves))
        return block, ChainTip(header, header.header_hash(self.suite), frontier)

    def _ts(self, previous: str | None) -> str:
        ts = format_ts(self._clock())
        # Header times never go backwards, even if the wall clock does.
        return ts if previous is None or ts >= previous else previous

    def _sign(self, height: int, prev: bytes, size: int, root: bytes, ts: str) -> SignedHeader:
        unsigned = SignedHeader(self.chain, height, prev, size, root, ts, self.key_id)
        sig = self._key.sign(unsigned.signing_bytes())
        return unsigned.with_signatures((Signature(self.key_id, sig),))


def validate_block(suite: Suite, trust: TrustBundle, tip: ChainTip, block: Block) -> ChainTip:
    """Recompute ``block`` on ``tip`` and check every rule; return the new tip.

    Checks the height and prev link, that the entries rebuild the stated tree size and root,
    that the proposer is a trusted validator whose signature verifies. Raise ProofInvalid or
    SignatureInvalid naming the rule.
    """
    h = block.header
    want_height = tip.header.height + 1
    if h.height != want_height:
        raise ProofInvalid(f"block height {h.height}, expected {want_height}", check="block.height")
    if h.prev != tip.header_hash:
        raise ProofInvalid(
            f"block {h.height} prev {h.prev.hex()} does not match header hash "
            f"{tip.header_hash.hex()} of block {tip.header.height}",
            check="block.prev",
        )
    if h.chain != tip.header.chain:
        raise ProofInvalid(f"block {h.height} is for chain {h.chain}", check="block.chain")
    if h.ts < tip.header.ts:
        raise ProofInvalid(f"block {h.height} time goes backwards", check="block.ts")
    hasher = hasher_for(suite)
    frontier = tip.frontier.copy()
    leaves = [hasher.leaf_hash(e) for e in block.entries]
    completed = frontier.extend(leaves)
    if frontier.size != h.tree_size or block.first_index != tip.frontier.size:
        raise ProofInvalid(
            f"block {h.height} states tree size {h.tree_size}, its entries make {frontier.size}",
            check="block.tree_size",
        )
    root = frontier.root()
    if root != h.root:
        raise ProofInvalid(
            f"block {h.height} root {h.root.hex()} does not match recomputed {root.hex()}",
            check="block.root",
        )
    # The node rows and leaf hashes are what a follower stores for proofs: they must be exactly
    # the recomputed ones, not merely consistent with the signed root.
    if tuple(leaves) != block.leaf_hashes or block.nodes != tuple(
        (node_key(level, index), digest) for level, index, digest in completed
    ):
        raise ProofInvalid(
            f"block {h.height} carries node hashes that its entries do not produce",
            check="block.nodes",
        )
    if h.proposer not in {s.key_id for s in h.signatures}:
        raise SignatureInvalid(
            f"block {h.height} is not signed by its proposer {h.proposer}", check="block.proposer"
        )
    # Only the proposer's signature is required here; quorum is the finality rule, not validity.
    key = trust.verify_key(h.proposer)
    message = h.signing_bytes()
    if key is None or not any(
        s.key_id == h.proposer and key.verify(s.sig, message) for s in h.signatures
    ):
        raise SignatureInvalid(
            f"block {h.height} proposer {h.proposer} is not a trusted validator or its "
            "signature does not verify",
            check="block.proposer",
        )
    return ChainTip(h, h.header_hash(suite), frontier)
