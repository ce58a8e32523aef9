"""Read any message we accept into the neutral model, dispatching on MSH-9."""

from __future__ import annotations

from medledger.interop.hl7.ack import Ack, read_ack
from medledger.interop.hl7.codec import Decoded, decode
from medledger.interop.hl7.orders import read_order
from medledger.interop.hl7.results import read_results
from medledger.interop.hl7.senders import SenderMap
from medledger.interop.model import Requisition, Result

__all__ = ["read_message", "to_model"]


def to_model(decoded: Decoded, senders: SenderMap) -> Requisition | list[Result] | Ack:
    """Map a decoded message: ORM/OML → Requisition, ORU → Results, ACK → Ack."""
    code = decoded.header.message_code
    if code in ("ORM", "OML"):
        return read_order(decoded, senders)
    if code == "ORU":
        return read_results(decoded, senders)
    return read_ack(decoded)


def read_message(
    raw: bytes, senders: SenderMap, *, max_bytes: int = 1_048_576
) -> Requisition | list[Result] | Ack:
    """Decode and map one message; raise ``MessageRejected`` (AR or AE) when it cannot be."""
    return to_model(decode(raw, max_bytes=max_bytes), senders)
