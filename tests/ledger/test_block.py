"""Block proposal and validation are separate; validation recomputes every rule."""

from __future__ import annotations

import dataclasses

import pytest

from medledger.crypto.registry import get_suite
from medledger.crypto.trust import TrustBundle, TrustedKey
from medledger.errors import ProofInvalid, SignatureInvalid
from medledger.ledger.block import Block, BlockBuilder, ChainTip, validate_block
from medledger.verify.header import Signature

CHAIN = "ab" * 16


def _setup(suite_name: str = "intl-v1") -> tuple[BlockBuilder, TrustBundle, ChainTip]:
    suite = get_suite(suite_name)
    key = suite.generate_signing_key()
    trusted = TrustedKey.of(suite, key.public_bytes, node="central")
    builder = BlockBuilder(suite, key, trusted.key_id, CHAIN, clock=lambda: 1_790_000_000.0)
    _, tip = builder.genesis()
    return builder, TrustBundle(CHAIN, suite.name, 1, (trusted,)), tip


ENTRIES = [b'{"type":"t.x","v":1}', b'{"meta":{"n":2},"type":"t.x","v":1}', b'{"type":"t.y","v":1}']


@pytest.mark.parametrize("suite", ["intl-v1", "sm-v1"])
def test_valid_chain_of_blocks_validates(suite: str) -> None:
    """A follower that validates each proposed block reaches the proposer's tip."""
    builder, trust, tip = _setup(suite)
    follower = tip
    for k in range(1, 4):
        block, tip = builder.propose(tip, ENTRIES[:k])
        follower = validate_block(get_suite(suite), trust, follower, block)
        assert follower.header == tip.header
        assert follower.frontier.root() == tip.frontier.root()


def _mutations(block: Block, tip: ChainTip) -> dict[str, Block]:
    h = block.header
    return {
        "height": dataclasses.replace(block, header=dataclasses.replace(h, height=h.height + 1)),
        "prev": dataclasses.replace(block, header=dataclasses.replace(h, prev=bytes(32))),
        "root": dataclasses.replace(block, header=dataclasses.replace(h, root=bytes(32))),
        "size": dataclasses.replace(
            block, header=dataclasses.replace(h, tree_size=h.tree_size + 1)
        ),
        "entry": dataclasses.replace(block, entries=(b'{"type":"t.z","v":1}', *block.entries[1:])),
        "nodes": dataclasses.replace(
            block, nodes=((block.nodes[0][0], bytes(32)), *block.nodes[1:])
        ),
        "leaves": dataclasses.replace(block, leaf_hashes=(bytes(32), *block.leaf_hashes[1:])),
        "ts": dataclasses.replace(block, header=dataclasses.replace(h, ts="2000-01-01T00:00:00Z")),
        "sig": dataclasses.replace(
            block,
            header=h.with_signatures((Signature(h.proposer, bytes(64)),)),
        ),
    }


@pytest.mark.parametrize(
    "what", ["height", "prev", "root", "size", "entry", "nodes", "leaves", "ts", "sig"]
)
def test_tampered_block_is_refused(what: str) -> None:
    """Changing any part of a proposed block makes validation fail with a named rule."""
    builder, trust, tip = _setup()
    block, _ = builder.propose(tip, ENTRIES)
    bad = _mutations(block, tip)[what]
    with pytest.raises((ProofInvalid, SignatureInvalid)):
        validate_block(get_suite("intl-v1"), trust, tip, bad)


def test_header_time_never_goes_backwards() -> None:
    """If the wall clock jumps back, the next header keeps the previous time."""
    suite = get_suite("intl-v1")
    key = suite.generate_signing_key()
    times = iter([1_790_000_000.0, 1_790_000_100.0, 1_790_000_050.0])
    builder = BlockBuilder(suite, key, "00" * 8, CHAIN, clock=lambda: next(times))
    _, tip = builder.genesis()
    _, tip1 = builder.propose(tip, ENTRIES[:1])
    _, tip2 = builder.propose(tip1, ENTRIES[:1])
    assert tip2.header.ts == tip1.header.ts
