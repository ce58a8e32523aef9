"""MllpClient against a real MllpServer: ACKs, failures, reconnects, at-least-once send_all, TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections import Counter
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from medledger.errors import EnvironmentFailure, InputError
from medledger.interop.mllp import MllpClient, MllpServer, Peer

from .helpers import ack_for, acks_match, control_id, message, run


async def echo(msg: bytes, peer: Peer) -> bytes:
    """Answer every message with an AA ACK echoing its control id."""
    return ack_for(msg)


def free_port() -> int:
    """A port nobody listens on (bound and released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_send_returns_the_ack_bytes_exactly() -> None:
    """A GB18030 message travels byte for byte and its ACK comes back without framing."""
    got: list[bytes] = []

    async def handler(msg: bytes, peer: Peer) -> bytes:
        got.append(msg)
        return ack_for(msg)

    async def body() -> None:
        async with MllpServer(handler) as server, MllpClient("127.0.0.1", server.port) as client:
            msg = message(1, encoding="gb18030")
            assert await client.send(msg) == ack_for(msg)
            assert got == [msg]
            assert client.connected
        assert not client.connected

    run(body())


def test_no_server_raises_environment_failure() -> None:
    """Connecting to a closed port raises EnvironmentFailure with reason connect, host and port."""

    async def body() -> None:
        port = free_port()
        async with MllpClient("127.0.0.1", port, timeout=2) as client:
            with pytest.raises(EnvironmentFailure) as caught:
                await client.send(message(1))
        assert caught.value.details["reason"] == "connect"
        assert caught.value.details["port"] == port
        assert caught.value.code == "environment.failed"

    run(body())


def test_timeout_then_transparent_reconnect() -> None:
    """A slow ACK times out (reason timeout); the next send reconnects and gets its own ACK,
    never the stale one."""
    slow = {"C1"}

    async def handler(msg: bytes, peer: Peer) -> bytes:
        if control_id(msg).decode() in slow:
            await asyncio.sleep(0.5)
        return ack_for(msg)

    async def body() -> None:
        async with (
            MllpServer(handler) as server,
            MllpClient("127.0.0.1", server.port, timeout=0.2) as client,
        ):
            with pytest.raises(EnvironmentFailure) as caught:
                await client.send(message(1))
            assert caught.value.details["reason"] == "timeout"
            assert await client.send(message(2)) == ack_for(message(2))
            assert client.connects == 2

    run(body())


def test_connection_dropped_before_ack_then_reconnect() -> None:
    """When the server drops the connection instead of answering, send raises reason closed and
    the next send works on a new connection."""
    drops = {"C5"}

    async def handler(msg: bytes, peer: Peer) -> bytes:
        cid = control_id(msg).decode()
        if cid in drops:
            drops.discard(cid)
            peer.drop()
        return ack_for(msg)

    async def body() -> None:
        async with MllpServer(handler) as server:
            async with MllpClient("127.0.0.1", server.port) as client:
                with pytest.raises(EnvironmentFailure) as caught:
                    await client.send(message(5))
                assert caught.value.details["reason"] == "closed"
                assert await client.send(message(5)) == ack_for(message(5))
            assert server.counters.dropped == 1

    run(body())


def test_send_all_resends_after_a_drop_before_ack() -> None:
    """The server drops the connection once on message k: every message is handled at least
    once (k twice), in order, and every returned ACK matches its message."""
    k = 7
    handled: list[bytes] = []
    dropped = False

    async def handler(msg: bytes, peer: Peer) -> bytes:
        nonlocal dropped
        handled.append(control_id(msg))
        if control_id(msg) == f"C{k}".encode() and not dropped:
            dropped = True
            peer.drop()
        return ack_for(msg)

    async def body() -> None:
        msgs = [message(i) for i in range(15)]
        async with MllpServer(handler) as server, MllpClient("127.0.0.1", server.port) as client:
            acks = await client.send_all(msgs, is_ack_ok=lambda a: b"MSA|AA|" in a)
            assert client.connects == 2
        assert len(acks) == len(msgs)
        assert all(acks_match(m, a) for m, a in zip(msgs, acks, strict=True))
        counts = Counter(handled)
        assert all(counts[control_id(m)] >= 1 for m in msgs)
        assert counts[f"C{k}".encode()] == 2
        assert list(dict.fromkeys(handled)) == [control_id(m) for m in msgs]

    run(body())


def test_send_all_retries_a_message_whose_ack_is_not_ok() -> None:
    """An AE answer fails is_ack_ok, so the message is resent; the AA answer is returned."""
    answered: Counter[bytes] = Counter()

    async def handler(msg: bytes, peer: Peer) -> bytes:
        answered[control_id(msg)] += 1
        first = answered[control_id(msg)] == 1
        return ack_for(msg, b"AE" if control_id(msg) == b"C2" and first else b"AA")

    async def body() -> None:
        msgs = [message(i) for i in range(4)]
        async with MllpServer(handler) as server, MllpClient("127.0.0.1", server.port) as client:
            acks = await client.send_all(msgs, is_ack_ok=lambda a: b"MSA|AA|" in a, backoff=0.01)
        assert all(acks_match(m, a) for m, a in zip(msgs, acks, strict=True))
        assert answered[b"C2"] == 2

    run(body())


def test_send_all_gives_up_within_its_time_bound() -> None:
    """With nobody listening, send_all stops after max_seconds and names the message and count."""

    async def body() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with MllpClient("127.0.0.1", free_port(), timeout=0.2) as client:
            with pytest.raises(EnvironmentFailure) as caught:
                await client.send_all(
                    [message(1), message(2)], is_ack_ok=lambda a: True, max_seconds=0.5
                )
        assert loop.time() - start < 2.0
        details = caught.value.details
        assert (details["index"], details["acknowledged"], details["reason"]) == (0, 0, "connect")
        assert details["attempts"] >= 2

    run(body())


def test_send_all_checks_every_message_before_sending_any() -> None:
    """A message holding VT is refused up front (field names its index); nothing is sent."""

    async def body() -> None:
        handled: list[bytes] = []

        async def handler(msg: bytes, peer: Peer) -> bytes:
            handled.append(msg)
            return ack_for(msg)

        async with MllpServer(handler) as server, MllpClient("127.0.0.1", server.port) as client:
            with pytest.raises(InputError) as caught:
                await client.send_all([message(1), b"MSH|\x0b"], is_ack_ok=lambda a: True)
            assert caught.value.field == "messages[1]"
            assert not client.connected
        assert handled == []

    run(body())


def test_oversize_ack_is_an_environment_failure() -> None:
    """An ACK over max_ack_bytes is refused with reason oversize-ack."""

    async def handler(msg: bytes, peer: Peer) -> bytes:
        return ack_for(msg) + b"NTE|" + b"x" * 5000

    async def body() -> None:
        async with (
            MllpServer(handler) as server,
            MllpClient("127.0.0.1", server.port, max_ack_bytes=1000) as client,
        ):
            with pytest.raises(EnvironmentFailure) as caught:
                await client.send(message(1))
        assert caught.value.details["reason"] == "oversize-ack"

    run(body())


def _tls_contexts(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: the server's context and a client trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mllp.hosp-central.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


def test_mllp_over_tls(tmp_path: Path) -> None:
    """With TLS contexts on both ends the message and its ACK cross intact; a client that does
    not trust the certificate fails with reason connect."""
    server_ctx, client_ctx = _tls_contexts(tmp_path)

    async def body() -> None:
        async with MllpServer(echo, ssl=server_ctx) as server:
            async with MllpClient("127.0.0.1", server.port, ssl=client_ctx) as client:
                assert await client.send(message(3)) == ack_for(message(3))
            untrusting = ssl.create_default_context()
            async with MllpClient("127.0.0.1", server.port, ssl=untrusting) as stranger:
                with pytest.raises(EnvironmentFailure) as caught:
                    await stranger.send(message(4))
            assert caught.value.details["reason"] == "connect"

    run(body())
