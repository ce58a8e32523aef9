"""The gateway's MLLP listener: HL7 v2 over TCP into the gateway.

Messages are processed on worker threads (the records layer waits for durable commits), one
at a time per connection (HL7 senders rely on that order), many connections at once. A worker
takes every message waiting when it is free, up to ``batch`` of them, through the gateway
together (``interop.gateway_batch``: one journal, records, ledger and audit commit for the
group instead of one each); a lone message goes the single-message way. The ACK goes back
only after the message and everything derived from it are durable. If the store fails, the
connection is dropped without an ACK: the sender resends, and the journal makes the resend
safe. An oversize block is answered AR and journalled by its header.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from medledger.errors import MedLedgerError, MessageRejected
from medledger.interop.gateway import Gateway
from medledger.interop.gateway_batch import handle_many
from medledger.interop.hl7.codec import peek_header
from medledger.interop.mllp.server import MllpServer, Peer
from medledger.interop.workers import Workers

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
        threads: int = 2,
        batch: int = 100,
        max_connections: int = 2000,
        idle_timeout: float = 300.0,
    ) -> None:
        self.gateway = gateway
        self.workers = Workers(self._process, threads=threads, batch=batch)
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
        self.workers.start()
        await self.server.start()

    async def close(self) -> None:
        await self.server.close()
        await asyncio.to_thread(self.workers.close)

    def _process(self, items: list[tuple[bytes, str]]) -> list[bytes | BaseException]:
        if len(items) == 1:
            payload, address = items[0]
            try:
                return [self.gateway.handle_hl7(payload, interface="mllp", peer=address)]
            except Exception as exc:  # (answered by dropping the connection)
                return [exc]
        return handle_many(self.gateway, items, interface="mllp")

    async def _handle(self, payload: bytes, peer: Peer) -> bytes:
        answer = await self.workers.submit(payload, peer.address)
        if isinstance(answer, bytes):
            return answer
        # the store failed, or a bug: never claim the message is kept
        code = answer.code if isinstance(answer, MedLedgerError) else type(answer).__name__
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
