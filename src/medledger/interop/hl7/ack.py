"""Build and read HL7 v2 acknowledgements (original mode ACK with MSA and, for errors, ERR).

An ACK answers in the request's delimiters and character set, with the same MSH-12 and
MSH-18. When the request could not be decoded (no header, an unknown MSH-18, bytes invalid
in its character set) the ACK is UTF-8 and says ``UNICODE UTF-8`` in MSH-18. For AE and AR it
carries one ERR segment in v2.5 form:

- ERR-2 error location: ``segment id ^ sequence ^ field position``;
- ERR-3 HL7 error code: ``<code>^<text>^HL70357`` (table 0357);
- ERR-4 severity ``E``;
- ERR-8 user message: the error's message, which names the field and what was wanted but
  never repeats patient values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from medledger.errors import InputError, MessageRejected
from medledger.interop.hl7.codec import VERSION, Decoded, Header, decode
from medledger.interop.hl7.datatypes import CST, hl7_now
from medledger.interop.hl7.escape import STANDARD
from medledger.interop.hl7.fields import no_segment
from medledger.interop.hl7.writer import Writer

__all__ = ["ERROR_TEXT", "Ack", "build_ack", "parse_ack", "read_ack"]

ERROR_TEXT: dict[str, str] = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}
_MESSAGE_LIMIT = 200


@dataclass(frozen=True)
class Ack:
    """An acknowledgement as read by :func:`parse_ack`."""

    code: str  # MSA-1: AA, AE, AR (or CA, CE, CR)
    control_id: str | None  # MSA-2: MSH-10 of the message acknowledged
    ack_control_id: str  # MSH-10 of the ACK itself
    error_text: str | None = None  # ERR-8, else MSA-3
    error_location: str | None = None  # ERR-2 as "OBR[2]-4"
    hl7_error: str | None = None  # ERR-3.1, a table 0357 code


def build_ack(
    request: Decoded | Header | None,
    code: Literal["AA", "AE", "AR"],
    *,
    error: MessageRejected | None = None,
    sender_app: str,
    sender_facility: str,
    control_id_factory: Callable[[], str],
    now: datetime | None = None,
) -> bytes:
    """Return the ACK for ``request`` (a decoded message, a peeked header, or None).

    ``sender_app``/``sender_facility`` are ours (MSH-3/4); the request's sender becomes
    MSH-5/6. ``now`` is MSH-7 (default: the current time, +08:00). An AA takes no error; an
    AE or AR without one reports 207.
    """
    if code not in ("AA", "AE", "AR"):
        raise InputError(
            "an ACK code is AA, AE or AR", field="code", value=code, expected="AA, AE or AR"
        )
    if code == "AA" and error is not None:
        raise InputError(
            "an AA acknowledgement carries no error",
            field="error",
            value=error.code,
            expected="None with AA",
        )
    header = request.header if isinstance(request, Decoded) else request
    known = header is not None and header.codec is not None
    w = Writer(
        header.codec if header and header.codec else "utf-8",
        header.separators if header else STANDARD,
    )
    charset = header.declared_charset if header is not None and known else "UNICODE UTF-8"
    trigger = header.trigger if header and header.trigger else None
    msh = {
        3: w.esc(sender_app),
        4: w.esc(sender_facility),
        5: w.comps(*header.sending_application) if header else "",
        6: w.comps(*header.sending_facility) if header else "",
        7: hl7_now(now or datetime.now(CST)),
        9: w.join_comps("ACK", trigger or "", "ACK" if trigger else ""),
        10: w.esc(control_id_factory()),
        # the sender's processing id and version when we take them; a refused one would
        # make the ACK itself unreadable, so it is answered with P and 2.5
        11: header.processing_id if header and header.processing_id in ("P", "T", "D") else "P",
        12: w.esc(header.version if header and VERSION.fullmatch(header.version or "") else "2.5"),
        18: w.esc(charset),
    }
    request_id = header.control_id if header else None
    segments = [w.msh(msh), w.segment("MSA", {1: code, 2: w.esc(request_id)})]
    if code != "AA":
        segments.append(_err(w, error))
    return w.encode(segments, strict=False)


def _err(w: Writer, error: MessageRejected | None) -> str:
    """Return the ERR segment for ``error`` (207 when there is none)."""
    hl7_error = error.hl7_error if error is not None else "207"
    location = ""
    if error is not None and error.segment:
        position = str(error.position) if error.position is not None else None
        location = w.comps(error.segment, str(error.sequence), position)
    message = error.message if error is not None else ""
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 1] + "…"
    text = ERROR_TEXT.get(hl7_error, "Application error")
    return w.segment(
        "ERR", {2: location, 3: w.comps(hl7_error, text, "HL70357"), 4: "E", 8: w.esc(message)}
    )


def parse_ack(raw: bytes) -> Ack:
    """Read an ACK; raise ``MessageRejected`` when it is not a readable acknowledgement."""
    return read_ack(decode(raw))


def read_ack(decoded: Decoded) -> Ack:
    """Read a decoded ACK; raise ``MessageRejected`` when it is not an acknowledgement."""
    decoded.expect(("ACK",), "an acknowledgement", "ACK")
    msa = next(iter(decoded.all("MSA")), None)
    if msa is None:
        raise no_segment("MSA", "an acknowledgement needs an MSA segment")
    err = next(iter(decoded.all("ERR")), None)
    location = None
    if err is not None and err.comp(2, 1):
        segment, sequence, position = err.comp(2, 1), err.comp(2, 2), err.comp(2, 3)
        location = segment if not sequence or sequence == "1" else f"{segment}[{sequence}]"
        location = f"{location}-{position}" if position else location
    return Ack(
        code=msa.required(1, "acknowledgment code").upper(),
        control_id=msa.comp(2),
        ack_control_id=decoded.control_id,
        error_text=(err.text(8) if err else None) or msa.text(3),
        error_location=location,
        hl7_error=err.comp(3, 1) if err else None,
    )
