"""The MLLP server: accepts connections, hands each message to an async handler, frames its ACK.

The transport only moves bytes. It never parses HL7 and never logs message bytes (they carry
patient data); it logs counts, connection numbers, peer addresses and exception type names.

Per connection, messages are handled strictly in order: the next block is taken from the stream
only after the answer to the previous one has been written (HL7 senders rely on this). Reads stop
while a message is being handled, so a sender that does not wait for its ACKs is held back by TCP
flow control, not buffered. Connections run concurrently, one task each.

The event loop is the caller's: start the process with :func:`medledger.interop.mllp.runtime.run`
to get uvloop where it is installed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl as _ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

from medledger.errors import EnvironmentFailure, InputError, StateError
from medledger.interop.mllp.framing import (
    PREFIX_BYTES,
    Discarded,
    Event,
    Frame,
    FrameDecoder,
    Oversize,
    encode_frame,
)
from medledger.interop.mllp.runtime import raise_open_files_limit

__all__ = ["Counters", "Handler", "MllpServer", "Peer", "Reject"]

log = logging.getLogger("medledger.interop.mllp")
READ_BYTES = 65536


class Peer:
    """The connection a message came on: ``address`` (``host:port``) and its serial ``connection``
    number, plus :meth:`drop` for a handler that must not answer."""

    __slots__ = ("_transport", "address", "connection", "dropped")

    def __init__(self, address: str, connection: int, transport: asyncio.WriteTransport) -> None:
        self.address = address
        self.connection = connection
        self.dropped = False
        self._transport = transport

    def drop(self) -> None:
        """Close the connection at once, without an answer to the current message.

        For a handler that could not make the message durable and will not claim otherwise:
        the sender sees no ACK and resends it on a new connection.
        """
        self.dropped = True
        self._transport.abort()

    def __repr__(self) -> str:
        return f"Peer(address={self.address!r}, connection={self.connection})"


Handler = Callable[[bytes, Peer], Awaitable[bytes]]
Reject = Callable[[bytes, str], bytes | None]


@dataclass(slots=True)
class Counters:
    """Totals since the server started (monotonic; read them, never write them)."""

    accepted: int = 0  # connections taken on
    refused: int = 0  # connections closed at once: over max_connections, or closing
    messages: int = 0  # complete blocks handed to the handler
    answers: int = 0  # blocks written back (ACKs and reject answers)
    oversize: int = 0  # blocks over max_message_bytes, read to their end and dropped
    framing_errors: int = 0  # runs of bytes outside any block, and truncated blocks
    discarded_bytes: int = 0  # the bytes of those runs (counted, never kept)
    handler_errors: int = 0  # handler exceptions (answered through reject "internal")
    idle_closed: int = 0  # connections closed after idle_timeout without a byte
    dropped: int = 0  # connections a handler dropped through Peer.drop()

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain dict (for metrics and JSON)."""
        return asdict(self)


@dataclass(slots=True)
class _Conn:
    task: asyncio.Task[Any] | None
    busy: bool = False  # handling a message or writing its answer: not to be interrupted


class MllpServer:
    """An asyncio MLLP server (module doc). ``handler(message, peer)`` returns the ACK bytes.

    ``reject(prefix, reason)`` builds the answer to a block the handler never saw successfully:
    reason ``oversize`` (longer than ``max_message_bytes``) or ``internal`` (the handler raised);
    ``prefix`` is the block's first 4096 bytes; it runs on a worker thread (it may write). It
    returns the answer's bytes, or None to send nothing; without it such blocks get no answer.
    The connection stays usable either way.
    A connection that sends nothing for ``idle_timeout`` seconds is closed; connections over
    ``max_connections`` are closed at once. ``ssl`` is a server ``SSLContext`` for MLLP over TLS.
    :meth:`close` waits up to ``grace`` seconds for messages in flight. :meth:`start` raises
    the process's open-files soft limit to its hard limit (each connection holds a descriptor).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_message_bytes: int = 1_048_576,
        idle_timeout: float = 300.0,
        max_connections: int = 2000,
        ssl: _ssl.SSLContext | None = None,
        reject: Reject | None = None,
        grace: float = 10.0,
    ) -> None:
        for name, value in (
            ("max_message_bytes", max_message_bytes),
            ("max_connections", max_connections),
            ("idle_timeout", idle_timeout),
        ):
            if not value > 0:
                raise InputError(
                    f"{name} must be positive", field=name, value=value, expected="a number > 0"
                )
        self.handler = handler
        self.host = host
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.grace = grace
        self.counters = Counters()
        self._requested_port = port
        self._ssl = ssl
        self._reject = reject
        self._server: asyncio.Server | None = None
        self._conns: dict[int, _Conn] = {}
        self._serial = itertools.count(1)
        self._closing = False

    @property
    def port(self) -> int:
        """The port actually listened on (useful after ``port=0``). Requires :meth:`start`."""
        if self._server is None or not self._server.sockets:
            raise StateError("the MLLP server is not listening: call start() first")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> int:
        """Connections open right now."""
        return len(self._conns)

    async def start(self) -> None:
        """Listen on ``host:port``; raises EnvironmentFailure when the address is unavailable."""
        if self._server is not None:
            raise StateError("the MLLP server was already started")
        raise_open_files_limit()
        try:
            self._server = await asyncio.start_server(
                self._on_connect,
                self.host,
                self._requested_port,
                ssl=self._ssl,
                backlog=max(100, min(self.max_connections, 4096)),
            )
        except OSError as exc:
            raise EnvironmentFailure(
                f"cannot listen for MLLP on {self.host}:{self._requested_port}: {exc.strerror}",
                host=self.host,
                port=self._requested_port,
                errno=exc.errno,
            ) from exc
        log.info("MLLP server listening on %s:%d", self.host, self.port)

    async def close(self, grace: float | None = None) -> None:
        """Stop accepting, let messages in flight finish (up to ``grace`` s), then close all."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        limit = self.grace if grace is None else grace
        for conn in list(self._conns.values()):
            if not conn.busy and conn.task is not None:
                conn.task.cancel()  # waiting for bytes: nothing in flight to lose
        tasks = [c.task for c in self._conns.values() if c.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=limit)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        log.info("MLLP server closed: %s", self.counters.as_dict())

    async def __aenter__(self) -> MllpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing or len(self._conns) >= self.max_connections:
            self.counters.refused += 1
            writer.transport.abort()
            return
        self.counters.accepted += 1
        serial = next(self._serial)
        conn = _Conn(asyncio.current_task())
        self._conns[serial] = conn
        peer = Peer(_address(writer.get_extra_info("peername")), serial, writer.transport)
        try:
            await self._serve(conn, peer, reader, writer)
        except OSError:
            pass  # reset, or a write timed out: the sender resends what got no ACK
        except asyncio.CancelledError:
            pass  # close() ended this connection
        finally:
            del self._conns[serial]
            if peer.dropped:
                self.counters.dropped += 1
            else:
                writer.close()

    async def _serve(
        self, conn: _Conn, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        decoder = FrameDecoder(self.max_message_bytes)
        events: deque[Event] = deque()
        while not self._closing:
            if not events:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        data = await reader.read(READ_BYTES)
                except TimeoutError:
                    self.counters.idle_closed += 1
                    log.info("MLLP connection %d idle, closed", peer.connection)
                    return
                if not data:
                    self._count(decoder.eof())
                    return
                events.extend(decoder.feed(data))
                continue
            event = events.popleft()
            if isinstance(event, Discarded):
                self._count([event])
                continue
            conn.busy = True
            if isinstance(event, Frame):
                self.counters.messages += 1
                answer = await self._answer(event.payload, peer)
            elif isinstance(event, Oversize):
                self.counters.oversize += 1
                answer = await self._rejection(event.prefix, "oversize", peer)
            if peer.dropped:
                return
            if answer is not None:
                writer.write(answer)
                async with asyncio.timeout(self.idle_timeout):  # a sender that never reads
                    await writer.drain()
                self.counters.answers += 1
            conn.busy = False

    async def _answer(self, payload: bytes, peer: Peer) -> bytes | None:
        try:
            ack = await self.handler(payload, peer)
            if not isinstance(ack, (bytes, bytearray)):
                raise TypeError(f"handler returned {type(ack).__name__}, not bytes")
            return encode_frame(bytes(ack), field="ack")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the server outlives any handler failure
            self.counters.handler_errors += 1
            log.warning(
                "MLLP handler failed on connection %d from %s: %s",
                peer.connection,
                peer.address,
                type(exc).__name__,
            )
            if peer.dropped:
                return None
            return await self._rejection(payload[:PREFIX_BYTES], "internal", peer)

    async def _rejection(self, prefix: bytes, reason: str, peer: Peer) -> bytes | None:
        if self._reject is None:
            return None
        try:  # on a thread: the callback may write (the gateway journals the refusal)
            answer = await asyncio.to_thread(self._reject, prefix, reason)
            return None if not answer else encode_frame(bytes(answer), field="reject answer")
        except Exception as exc:  # a broken reject callback must not end the connection
            log.warning(
                "MLLP reject callback failed (%s) on connection %d: %s",
                reason,
                peer.connection,
                type(exc).__name__,
            )
            return None

    def _count(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Discarded):
                self.counters.framing_errors += 1
                self.counters.discarded_bytes += event.size


def _address(peername: Any) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host = str(peername[0])
        return f"[{host}]:{peername[1]}" if ":" in host else f"{host}:{peername[1]}"
    return str(peername)
