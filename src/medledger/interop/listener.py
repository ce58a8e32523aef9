"""The gateway's MLLP listener: HL7 v2 over TCP into ``Gateway.handle_hl7``.

Each message is processed on a worker thread (the records layer waits for durable commits),
one at a time per connection (HL7 senders rely on that order), many connections at once. The
ACK goes back only after the message and everything derived from it are durable. If the
store fails, the connection is dropped without an ACK: the sender resends, and the journal
makes the resend safe. An oversize block is answered AR and journalled by its header.
"""

from __future__ import annotations

import hashlib
import logging
from functools import partial

import anyio
import anyio.to_thread

from medledger.errors import MedLedgerError, MessageRejected
from medledger.interop.gateway import Gateway
from medledger.interop.hl7.codec import peek_header
from medledger.interop.mllp.server import MllpServer, Peer

__all__ = ["GatewayListener"]

log = logging.getLogger(__name__)


class GatewayListener:
    """An ``MllpServer`` whose handler is the gateway."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        host: str,
        port: int,
        threads: int = 16,
        max_connections: int = 2000,
        idle_timeout: float = 300.0,
    ) -> None:
        self.gateway = gateway
        self.threads = threads
        self._limiter: anyio.CapacityLimiter | None = None
        self.server = MllpServer(
            self._handle,
            host=host,
            port=port,
            max_message_bytes=gateway.config.max_message_bytes,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
            reject=self._reject,
        )

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        await self.server.start()

    async def close(self) -> None:
        await self.server.close()

    async def _handle(self, payload: bytes, peer: Peer) -> bytes:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.threads)
        work = partial(self.gateway.handle_hl7, payload, interface="mllp", peer=peer.address)
        try:
            return await anyio.to_thread.run_sync(work, limiter=self._limiter)
        except Exception as exc:  # the store failed, or a bug: never claim the message is kept
            code = exc.code if isinstance(exc, MedLedgerError) else type(exc).__name__
            log.error("MLLP message not stored (%s): connection dropped, no ACK", code)
            peer.drop()
            return b""

    def _reject(self, prefix: bytes, reason: str) -> bytes | None:
        """Answer a block the handler never took: oversize (AR 207) or an internal failure."""
        header = peek_header(prefix)
        if reason == "oversize":
            error = MessageRejected(
                f"the message is larger than {self.gateway.config.max_message_bytes} bytes",
                ack_code="AR",
                segment="MSH",
                hl7_error="207",
                expected=f"at most {self.gateway.config.max_message_bytes} bytes",
            )
            try:
                outcome = self.gateway.reject_unread(prefix, header, error, "mllp")
            except MedLedgerError as exc:
                log.error("oversize message not journalled: %s", exc.code)
                return None
            return self.gateway.ack(header, outcome)
        log.error(
            "MLLP handler failed on a message (%s): no ACK",
            hashlib.sha256(prefix).hexdigest()[:12],
        )
        return None
