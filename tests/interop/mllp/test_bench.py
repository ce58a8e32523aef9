"""The ``bench mllp`` pieces: MSA-1 parsing, the peer, closed-loop load, the hold phase, and the
separate-process plumbing (small scale; the numbers themselves are a benchmark's business)."""

from __future__ import annotations

import pytest

from medledger.benchmarks import mllp as bench
from medledger.errors import InputError
from medledger.interop.mllp import MllpServer, Peer

from .helpers import ack_for, control_id, run


def test_ack_code_reads_msa_1() -> None:
    """MSA-1 is found after MSH, with the message's own field separator, CR or LF endings."""
    assert bench.ack_code(bench.PEER_ACK) == "AA"
    assert bench.ack_code(b"MSH|^~\\&|A|B\rMSA|AE|C1|bad code\r") == "AE"
    assert bench.ack_code(b"MSH#^~\\&#A#B\nMSA#AR#C1\n") == "AR"
    assert bench.ack_code(b"MSH|^~\\&|A|B\r") is None
    assert bench.ack_code(b"") is None


def test_sample_messages_have_distinct_control_ids() -> None:
    """Each sample message is an ORU^R01 with its own MSH-10."""
    ids = {control_id(bench.sample_message(i)) for i in range(100)}
    assert len(ids) == 100
    assert b"ORU^R01" in bench.sample_message(0)


def test_load_against_the_peer_counts_every_ack() -> None:
    """A count-bounded closed loop over 5 connections gets exactly count AA ACKs, no errors."""

    async def body() -> dict[str, object]:
        async with bench.PeerServer() as peer:
            return await bench.load_async("127.0.0.1", peer.port, connections=5, count=60)

    report = run(body())
    assert report["acked"] == 60
    assert report["errors"] == {}
    assert report["non_aa_acks"] == 0
    assert report["connection_failures"] == 0
    assert 0 < report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]


def test_load_counts_negative_acks() -> None:
    """Every AE answer is counted as a non-AA ACK."""

    async def reject_all(msg: bytes, peer: Peer) -> bytes:
        return ack_for(msg, b"AE")

    async def body() -> dict[str, object]:
        async with MllpServer(reject_all) as server:
            return await bench.load_async("127.0.0.1", server.port, connections=2, count=10)

    report = run(body())
    assert (report["acked"], report["non_aa_acks"]) == (10, 10)


def test_hold_keeps_every_connection_usable() -> None:
    """The hold phase opens all connections, gets one ACK on each at once, and a second round
    after the hold needs no reconnect."""

    async def body() -> dict[str, object]:
        async with bench.PeerServer() as peer:
            report = await bench.hold_async("127.0.0.1", peer.port, connections=50, seconds=0.2)
            assert peer.counters.accepted == 50
            return report

    report = run(body())
    assert report["opened"] == 50
    assert report["burst"]["acked"] == 50  # type: ignore[index]
    assert report["after_hold"]["acked"] == 50  # type: ignore[index]
    assert report["after_hold"]["reconnects"] == 0  # type: ignore[index]


def test_load_needs_a_bound() -> None:
    """Neither seconds nor count is refused, naming the field and what is wanted."""
    with pytest.raises(InputError) as caught:
        bench.run("127.0.0.1", 1, connections=1, seconds=None, count=None)
    assert caught.value.field == "seconds"


def test_generator_runs_in_its_own_process_against_the_peer_process() -> None:
    """run() drives the peer subprocess from a spawned generator process and reports back."""
    with bench._peer_process() as port:
        report = bench.run("127.0.0.1", port, connections=3, seconds=None, count=30)
    assert report["acked"] == 30
    assert report["errors"] == {}
