"""The MLLP client: send a message, wait for its ACK; deliver a batch at least once.

One connection, one message in flight: :meth:`MllpClient.send` frames the message, writes it and
returns the next block the peer sends. Any failure (connect refused, timeout, connection lost, an
ACK over the cap) closes the connection, since a late ACK would otherwise be taken for the answer
to the next message, and raises :class:`~medledger.errors.EnvironmentFailure` with ``reason``
``connect`` (refused, unreachable, TLS handshake failed or too slow), ``timeout`` (no ACK in
time), ``closed`` (the connection ended before the ACK) or ``oversize-ack``. The next call
reconnects.

:meth:`MllpClient.send_all` builds at-least-once delivery on top: a message whose ACK did not
arrive, or did not satisfy ``is_ack_ok``, is sent again after a capped exponential backoff with
jitter, and so is every later one, in order. The receiver deduplicates by control id (MSH-10).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl as _ssl
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType

from medledger.errors import EnvironmentFailure, InputError
from medledger.interop.mllp.framing import Event, Frame, FrameDecoder, Oversize, encode_frame

__all__ = ["MllpClient"]

log = logging.getLogger("medledger.interop.mllp")
READ_BYTES = 65536


class _Failed(Exception):
    """Internal: one send failed for ``reason``; turned into EnvironmentFailure at the edge."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MllpClient:
    """An MLLP sender to ``host:port`` (module doc); ``timeout`` bounds each send in seconds.

    Use as ``async with MllpClient(host, port) as client: ack = await client.send(msg)``.
    Concurrent calls on one client queue up: one connection carries one message at a time.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        ssl: _ssl.SSLContext | None = None,
        max_ack_bytes: int = 1_048_576,
    ) -> None:
        if not timeout > 0:
            raise InputError(
                "timeout must be positive", field="timeout", value=timeout, expected="seconds > 0"
            )
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_ack_bytes = max_ack_bytes
        self._ssl = ssl
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = FrameDecoder(max_ack_bytes)
        self._pending: deque[Event] = deque()
        self.connects = 0  # connections opened so far (a reconnect adds one)

    @property
    def connected(self) -> bool:
        """True while a connection is open (it may still turn out to be dead on the next send)."""
        return self._writer is not None

    async def connect(self) -> None:
        """Open the connection now rather than on the first send (raises EnvironmentFailure)."""
        async with self._lock:
            if self._writer is not None:
                return
            try:
                async with asyncio.timeout(self.timeout):
                    await self._connect()
            except asyncio.CancelledError:
                self._drop()
                raise
            except OSError as exc:  # TimeoutError included
                self._drop()
                raise EnvironmentFailure(
                    f"MLLP peer {self.host}:{self.port}: cannot connect ({type(exc).__name__})",
                    host=self.host,
                    port=self.port,
                    reason="connect",
                    timeout=self.timeout,
                ) from None

    async def send(self, message: bytes) -> bytes:
        """Send one message and return the ACK's bytes (without framing); see module doc."""
        frame = encode_frame(message)
        async with self._lock:
            return await self._send(frame, self.timeout)

    async def send_all(
        self,
        messages: Sequence[bytes],
        *,
        is_ack_ok: Callable[[bytes], bool],
        max_seconds: float = 60.0,
        max_attempts: int = 20,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> list[bytes]:
        """Deliver ``messages`` in order, at least once each; return their ACKs, in order.

        ``is_ack_ok(ack)`` says whether an ACK acknowledges the message just sent (e.g. MSA-1 is
        AA and MSA-2 is its MSH-10); when it does not, or none came, the message is resent
        after ``backoff`` · 2^(attempt-1) seconds (at most ``max_backoff``, with jitter). Raises
        EnvironmentFailure (details: ``index`` of the message given up on, ``acknowledged``
        count, ``attempts``, ``reason``) once ``max_attempts`` for one message or ``max_seconds``
        in all are used up. Every message is checked for control bytes before any is sent.
        """
        frames = [encode_frame(m, field=f"messages[{i}]") for i, m in enumerate(messages)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        acks: list[bytes] = []
        async with self._lock:
            for index, frame in enumerate(frames):
                attempt = 0
                while True:
                    attempt += 1
                    left = deadline - loop.time()
                    cause: EnvironmentFailure | None = None
                    try:
                        ack = await self._send(frame, max(0.001, min(self.timeout, left)))
                    except EnvironmentFailure as exc:
                        cause, reason = exc, str(exc.details.get("reason"))
                    else:
                        if is_ack_ok(ack):
                            acks.append(ack)
                            break
                        reason = "ack-not-ok"
                        await self._disconnect()  # a mismatched ACK may mean a stream out of step
                    left = deadline - loop.time()
                    if attempt >= max_attempts or left <= 0:
                        raise EnvironmentFailure(
                            f"MLLP delivery to {self.host}:{self.port} gave up on message {index} "
                            f"after {attempt} attempt(s) ({reason}); {index} of {len(frames)} "
                            "were acknowledged",
                            host=self.host,
                            port=self.port,
                            index=index,
                            acknowledged=index,
                            attempts=attempt,
                            reason=reason,
                        ) from cause
                    delay = min(max_backoff, backoff * 2 ** (attempt - 1))
                    await asyncio.sleep(min(left, delay * random.uniform(0.5, 1.0)))
        return acks

    async def close(self) -> None:
        """Close the connection (a later send opens a new one)."""
        async with self._lock:
            await self._disconnect()

    async def __aenter__(self) -> MllpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _send(self, frame: bytes, timeout: float) -> bytes:
        stage = "connect"
        try:
            async with asyncio.timeout(timeout):
                if self._writer is None:
                    await self._connect()
                assert self._writer is not None
                stage = "closed"
                self._writer.write(frame)
                await self._writer.drain()
                return await self._read_ack()
        except TimeoutError:
            await self._disconnect()
            if stage == "connect":
                reason, detail = "connect", f"cannot connect within {timeout:g} s"
            else:
                reason, detail = "timeout", f"no ACK within {timeout:g} s"
        except _Failed as exc:
            await self._disconnect()
            reason, detail = exc.reason, _DETAIL[exc.reason]
        except OSError as exc:  # refused, reset, unreachable, TLS failure (ssl.SSLError)
            await self._disconnect()
            reason, detail = stage, f"{_DETAIL[stage]} ({type(exc).__name__})"
        except asyncio.CancelledError:
            self._drop()  # the ACK may still come: this connection is out of step now
            raise
        raise EnvironmentFailure(
            f"MLLP peer {self.host}:{self.port}: {detail}",
            host=self.host,
            port=self.port,
            reason=reason,
            timeout=timeout,
        )

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, ssl=self._ssl, limit=READ_BYTES
        )
        self._decoder = FrameDecoder(self.max_ack_bytes)
        self._pending.clear()
        self.connects += 1

    async def _read_ack(self) -> bytes:
        assert self._reader is not None
        while True:
            while self._pending:
                event = self._pending.popleft()
                if isinstance(event, Frame):
                    if any(isinstance(e, Frame | Oversize) for e in self._pending):
                        log.warning("MLLP peer %s:%d sent an unasked block", self.host, self.port)
                        await self._disconnect()  # the next ACK could not be told apart
                    return event.payload
                if isinstance(event, Oversize):
                    raise _Failed("oversize-ack")
            data = await self._reader.read(READ_BYTES)
            if not data:
                raise _Failed("closed")
            self._pending.extend(self._decoder.feed(data))

    def _drop(self) -> asyncio.StreamWriter | None:
        writer, self._writer, self._reader = self._writer, None, None
        self._pending.clear()
        if writer is not None:
            writer.close()
        return writer

    async def _disconnect(self) -> None:
        writer = self._drop()
        if writer is None:
            return
        try:
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            pass  # already gone: nothing left to flush


_DETAIL = {
    "connect": "cannot connect",
    "closed": "connection closed before the ACK came",
    "oversize-ack": "ACK longer than max_ack_bytes",
}
