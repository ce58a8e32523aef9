"""MllpServer over real sockets on 127.0.0.1: framing faults, limits, failures, ordering, load."""

from __future__ import annotations

import asyncio
import hashlib
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.errors import EnvironmentFailure, InputError, StateError
from medledger.interop.mllp import MllpClient, MllpServer, Peer, encode_frame

from .helpers import RawPeer, ack_for, acks_match, message, run

REJECT_ACK = b"MSH|^~\\&|MEDLEDGER|hosp-central|||20261120||ACK|R1|P|2.5\rMSA|AR|\r"


async def echo(msg: bytes, peer: Peer) -> bytes:
    """A handler that answers every message with an AA ACK echoing its control id."""
    return ack_for(msg)


class Rejections:
    """A reject callback that records what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str]] = []

    def __call__(self, prefix: bytes, reason: str) -> bytes:
        self.calls.append((prefix, reason))
        return REJECT_ACK + reason.encode()


def test_one_byte_per_write_is_reassembled() -> None:
    """A message written one byte per TCP write is handled once and acknowledged."""

    async def body() -> None:
        async with MllpServer(echo) as server:
            peer = await RawPeer.open(server.port)
            msg = message(1)
            await peer.write(encode_frame(msg), chunk=1)
            assert await peer.read_blocks(1) == [ack_for(msg)]
            await peer.close()
            assert server.counters.messages == 1

    run(body())


def test_several_frames_in_one_write_are_answered_in_order() -> None:
    """Five blocks in one write get five ACKs, in the order sent."""

    async def body() -> None:
        async with MllpServer(echo) as server:
            peer = await RawPeer.open(server.port)
            msgs = [message(i) for i in range(5)]
            await peer.write(b"".join(encode_frame(m) for m in msgs))
            assert await peer.read_blocks(5) == [ack_for(m) for m in msgs]
            await peer.close()

    run(body())


def test_garbage_before_a_frame_is_discarded_and_counted() -> None:
    """Noise before VT is dropped (a framing error is counted) and the block after it answered."""

    async def body() -> None:
        async with MllpServer(echo) as server:
            peer = await RawPeer.open(server.port)
            msg = message(2)
            await peer.write(b"GET / HTTP/1.0\r\n\r\n" + encode_frame(msg))
            assert await peer.read_blocks(1) == [ack_for(msg)]
            await peer.close()
            assert server.counters.framing_errors == 1
            assert server.counters.discarded_bytes == 18

    run(body())


def test_oversize_frame_is_rejected_and_the_connection_stays_usable() -> None:
    """A block over the cap reaches only the reject callback (reason oversize, with its prefix);
    its answer is sent, and the next message on the same connection is handled normally."""

    async def body() -> None:
        rejections = Rejections()
        handled: list[bytes] = []

        async def handler(msg: bytes, peer: Peer) -> bytes:
            handled.append(msg)
            return ack_for(msg)

        async with MllpServer(handler, max_message_bytes=10_000, reject=rejections) as server:
            peer = await RawPeer.open(server.port)
            big = message(3) + b"OBX|1|TX|||" + "影像所见".encode() * 20_000
            small = message(4)
            await peer.write(encode_frame(big) + encode_frame(small), chunk=4096)
            assert await peer.read_blocks(2) == [REJECT_ACK + b"oversize", ack_for(small)]
            await peer.close()
        assert rejections.calls == [(big[:4096], "oversize")]
        assert handled == [small]
        assert server.counters.oversize == 1

    run(body())


def test_oversize_without_reject_callback_gets_no_answer() -> None:
    """Without a reject callback an oversize block is dropped silently; the next is answered."""

    async def body() -> None:
        async with MllpServer(echo, max_message_bytes=100) as server:
            peer = await RawPeer.open(server.port)
            small = message(5)
            await peer.write(encode_frame(b"x" * 500) + encode_frame(small[:90]))
            assert await peer.read_blocks(1) == [ack_for(small[:90])]
            await peer.close()

    run(body())


def test_idle_connection_is_closed() -> None:
    """A connection that sends nothing for idle_timeout is closed by the server and counted."""

    async def body() -> None:
        async with MllpServer(echo, idle_timeout=0.2) as server:
            peer = await RawPeer.open(server.port)
            assert await peer.at_eof(timeout=3.0)
            await peer.close()
            assert server.counters.idle_closed == 1
            assert server.connections == 0

    run(body())


def test_handler_exception_is_answered_and_logged_without_payload(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler that raises gets a reject("internal") answer on that connection, which keeps
    working, another connection is unaffected, and the log names the type, never the bytes."""

    async def handler(msg: bytes, peer: Peer) -> bytes:
        if b"C66" in msg:
            raise RuntimeError(f"cannot store {msg!r}")
        return ack_for(msg)

    async def body() -> None:
        rejections = Rejections()
        async with MllpServer(handler, reject=rejections) as server:
            one, two = await RawPeer.open(server.port), await RawPeer.open(server.port)
            await one.write(encode_frame(message(66)) + encode_frame(message(67)))
            await two.write(encode_frame(message(68)))
            assert await one.read_blocks(2) == [REJECT_ACK + b"internal", ack_for(message(67))]
            assert await two.read_blocks(1) == [ack_for(message(68))]
            await one.close()
            await two.close()
            assert server.counters.handler_errors == 1
        assert rejections.calls == [(message(66), "internal")]

    with caplog.at_level(logging.DEBUG, logger="medledger.interop.mllp"):
        run(body())
    text = caplog.text
    assert "RuntimeError" in text
    assert "示例" not in text
    assert "ZY000066" not in text
    assert "C66" not in text


def test_handler_answer_with_control_bytes_is_treated_as_internal_error() -> None:
    """An ACK that holds VT would break the stream: it is replaced by the internal reject."""

    async def handler(msg: bytes, peer: Peer) -> bytes:
        return b"MSA|AA|\x0b"

    async def body() -> None:
        async with MllpServer(handler, reject=Rejections()) as server:
            peer = await RawPeer.open(server.port)
            await peer.write(encode_frame(message(1)))
            assert await peer.read_blocks(1) == [REJECT_ACK + b"internal"]
            await peer.close()

    run(body())


def test_connections_over_the_limit_are_refused() -> None:
    """With max_connections=2 a third connection is closed at once; the first two still work."""

    async def body() -> None:
        async with MllpServer(echo, max_connections=2) as server:
            a, b = await RawPeer.open(server.port), await RawPeer.open(server.port)
            await a.write(encode_frame(message(1)))
            await a.read_blocks(1)  # both accepted by now
            await b.write(encode_frame(message(2)))
            await b.read_blocks(1)
            c = await RawPeer.open(server.port)
            assert await c.at_eof()
            await a.write(encode_frame(message(3)))
            assert await a.read_blocks(1) == [ack_for(message(3))]
            for p in (a, b, c):
                await p.close()
            assert server.counters.refused == 1

    run(body())


def test_close_lets_the_message_in_flight_finish() -> None:
    """close() stops accepting but the ACK of a message being handled is still delivered."""

    async def body() -> None:
        started = asyncio.Event()

        async def slow(msg: bytes, peer: Peer) -> bytes:
            started.set()
            await asyncio.sleep(0.3)
            return ack_for(msg)

        server = MllpServer(slow)
        await server.start()
        port = server.port
        busy, idle = await RawPeer.open(port), await RawPeer.open(port)
        await busy.write(encode_frame(message(9)))
        await started.wait()
        closing = asyncio.create_task(server.close(grace=5.0))
        assert await busy.read_blocks(1) == [ack_for(message(9))]
        await closing
        assert await idle.at_eof()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        await busy.close()
        await idle.close()

    run(body())


def test_listen_failure_and_bad_options_raise_project_errors() -> None:
    """A port in use raises EnvironmentFailure; a bad cap raises InputError naming it; port is
    refused before start."""

    async def body() -> None:
        async with MllpServer(echo) as first:
            second = MllpServer(echo, port=first.port)
            with pytest.raises(EnvironmentFailure) as caught:
                await second.start()
            assert caught.value.details["port"] == first.port
        with pytest.raises(StateError):
            _ = MllpServer(echo).port

    run(body())
    with pytest.raises(InputError) as caught:
        MllpServer(echo, idle_timeout=0)
    assert caught.value.field == "idle_timeout"


@settings(max_examples=25)
@given(
    st.lists(st.lists(st.integers(1, 200), min_size=1, max_size=6), min_size=1, max_size=4),
    st.lists(st.integers(1, 97), min_size=1, max_size=8),
    st.lists(st.sampled_from([0.0, 0.0, 0.001]), min_size=1, max_size=8),
)
def test_per_connection_order_under_concurrency(
    conns: list[list[int]], sizes: list[int], delays: list[float]
) -> None:
    """Concurrent connections with arbitrary chunk sizes and handler delays: each connection's
    handler calls and ACKs are exactly its messages, in the order it sent them."""
    seen: dict[int, list[bytes]] = {}

    async def handler(msg: bytes, peer: Peer) -> bytes:
        seen.setdefault(peer.connection, []).append(msg)
        await asyncio.sleep(delays[len(msg) % len(delays)])
        return hashlib.sha256(msg).hexdigest().encode()

    async def sender(port: int, index: int, lengths: list[int]) -> tuple[list[bytes], list[bytes]]:
        msgs = [message(index * 100 + k) + b"NTE|" + b"z" * n for k, n in enumerate(lengths)]
        stream = b"".join(encode_frame(m) for m in msgs)
        peer = await RawPeer.open(port)
        i, k = 0, index
        while i < len(stream):
            size = sizes[k % len(sizes)]
            await peer.write(stream[i : i + size])
            await asyncio.sleep(0)
            i, k = i + size, k + 1
        acks = await peer.read_blocks(len(msgs))
        await peer.close()
        return msgs, acks

    async def body() -> None:
        async with MllpServer(handler) as server:
            results = await asyncio.gather(
                *(sender(server.port, i, c) for i, c in enumerate(conns))
            )
        for msgs, acks in results:
            assert acks == [hashlib.sha256(m).hexdigest().encode() for m in msgs]
        assert sorted(map(tuple, seen.values())) == sorted(tuple(m) for m, _ in results)

    run(body())


def test_200_connections_times_20_messages_all_acknowledged() -> None:
    """200 concurrent clients each send 20 messages: all 4,000 are handled and each ACK matches."""

    async def handler(msg: bytes, peer: Peer) -> bytes:
        await asyncio.sleep(0)  # the real handler awaits storage
        return ack_for(msg)

    async def client(port: int, c: int) -> int:
        async with MllpClient("127.0.0.1", port) as mllp:
            for k in range(20):
                msg = message(c * 1000 + k)
                assert acks_match(msg, await mllp.send(msg))
        return 20

    async def body() -> None:
        async with MllpServer(handler) as server:
            done = await asyncio.gather(*(client(server.port, c) for c in range(200)))
            assert sum(done) == 4000
            assert server.counters.messages == 4000
            assert server.counters.accepted == 200

    run(body(), timeout=60)
