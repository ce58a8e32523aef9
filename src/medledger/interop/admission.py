"""Admitting an HL7 v2 message to the gateway, and the answers given without processing it.

``admit`` decides from the header alone (the sending facility, the peer address, MSH-10 and
MSH-9) whether a decoded message is processed or refused unread; ``again`` is the answer to a
redelivery of a finished message; ``refused`` builds an AR naming an MSH field.
"""

from __future__ import annotations

from dataclasses import dataclass

from medledger.errors import MessageRejected
from medledger.interop.config import GatewayConfig
from medledger.interop.hl7.codec import Header
from medledger.interop.hl7.senders import SenderMap
from medledger.interop.journal import Message

__all__ = ["TAKEN", "UNKNOWN", "Outcome", "admit", "again", "refused", "source", "why"]

UNKNOWN = "unknown"
TAKEN = "ORM^O01, OML^O21 or ORU^R01"  # the message types the gateway takes


@dataclass(frozen=True)
class Outcome:
    """What became of one message, and the ACK code its sender gets."""

    status: str  # stored, held, quarantined, rejected, duplicate
    ack_code: str  # AA, AE, AR
    message: Message | None = None
    reason: str | None = None
    error: MessageRejected | None = None


def admit(
    config: GatewayConfig, senders: SenderMap, header: Header, peer: str
) -> tuple[str | None, MessageRejected | None]:
    """The sending institution of a decoded message, or why the message is refused
    unread (an unknown facility, a peer address not allowed, an overlong MSH-10, an ACK)."""
    inst = senders.lookup(header.sending_facility)
    if inst is None:
        return None, refused(
            4,
            "103",
            "the sending facility is not configured in interop.yaml facilities",
            value="^".join(header.sending_facility)[:80],
            expected="a facility listed under facilities:",
        )
    if peer and not config.peer_allowed(inst, peer):
        text = f"{inst} may not send from this address"
        return inst, refused(4, "207", text, expected="an address listed under peers:")
    if len(str(header.control_id)) > 199:
        text = "MSH-10 is longer than 199 characters"
        wanted = "a message control id of at most 199 characters (HL7 v2.5: 20)"
        return inst, refused(10, "102", text, value=str(header.control_id)[:40], expected=wanted)
    if header.message_code == "ACK":
        text = "an ACK is not a message the gateway takes"
        return inst, refused(9, "200", text, value=header.message_type, expected=TAKEN)
    return inst, None


def again(message: Message, error: MessageRejected | None = None) -> Outcome:
    """The answer to a redelivery of a finished message: the same ACK code as before."""
    code = message.ack_code or "AA"
    if code != "AA" and error is None:
        error = MessageRejected(message.reason or "not accepted", ack_code=code)
    return Outcome("duplicate", code, message, message.reason, error)


def refused(
    position: int,
    hl7_error: str,
    message: str,
    *,
    value: object = None,
    expected: str | None = None,
) -> MessageRejected:
    """A rejection (AR) of a message for what field ``position`` of its MSH says."""
    return MessageRejected(
        message,
        ack_code="AR",
        segment="MSH",
        position=position,
        hl7_error=hl7_error,
        value=value,
        expected=expected,
    )


def source(header: Header) -> str:
    app = header.sending_application[0] if header.sending_application else ""
    fac = header.sending_facility[0] if header.sending_facility else ""
    return f"{app}^{fac}"[:256] or UNKNOWN


def why(exc: MessageRejected) -> str:
    if exc.field and not exc.message.startswith(str(exc.field)):
        return f"{exc.field}: {exc.message}"
    return exc.message
