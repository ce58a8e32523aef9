"""Decode the bytes of one HL7 v2 message into a checked header and parsed segments.

:func:`decode` strips MLLP framing (0x0b … 0x1c 0x0d) and a UTF-8 byte order mark, reads the
delimiters from MSH-1 and MSH-2, decodes the bytes in the MSH-18 character set (see
:mod:`medledger.interop.hl7.charsets`), accepts ``\\r``, ``\\n`` and ``\\r\\n`` as segment
terminators, parses with python-hl7 and checks the header. Every refusal is a
``MessageRejected`` with ack code AR and an HL7 table 0357 code:

=====================================================  =====  ==============================
refusal                                                code   names
=====================================================  =====  ==============================
empty, or the first segment is not MSH                 100    MSH
a later MSH, BHS or FHS: batches are not accepted      100    that segment
a segment id that is not 3 upper-case letters/digits   100    that segment (or MSH)
more than ``max_bytes``                                207    MSH
MSH-1/MSH-2 missing, repeated or alphanumeric          102    MSH-1 or MSH-2
MSH-18 not a character set we know                     103    MSH-18 (not in our table 0211)
bytes invalid in the character set                     102    MSH-18, with the byte offset
MSH-9, MSH-10, MSH-11 or MSH-12 empty                  101    that field
MSH-9 not ORM, OML, ORU or ACK                         200    MSH-9
MSH-9 trigger not O01 / O21 / R01 for its type         201    MSH-9
MSH-11 processing id not P, T or D                     202    MSH-11
MSH-12 not a 2.x version                               203    MSH-12
=====================================================  =====  ==============================

An unknown MSH-18 gets 103 (table value not found) rather than 203 (unsupported version id):
MSH-18 is a coded field from table 0211, and 103 is the code for a value missing from the
receiver's table. :func:`peek_header` reads what it can of a header that :func:`decode`
refused, so that even a rejection can be acknowledged with the sender's MSH-10.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import hl7  # type: ignore[import-untyped]

from medledger.errors import InputError, MessageRejected
from medledger.interop.hl7.charsets import (
    ACCEPTED,
    codec_for,
    decode_body,
    peek_charset,
    tentative_text,
)
from medledger.interop.hl7.escape import Separators
from medledger.interop.hl7.framing import (
    first_segment_end,
    reject,
    segment_lines,
    separators,
    unframe,
)
from medledger.interop.hl7.segments import Seg

__all__ = ["MESSAGE_TYPES", "VERSION", "Decoded", "Header", "decode", "peek_header"]

MESSAGE_TYPES: dict[str, frozenset[str] | None] = {
    "ORM": frozenset({"O01"}),
    "OML": frozenset({"O21"}),
    "ORU": frozenset({"R01"}),
    "ACK": None,  # an acknowledgement may carry any trigger, or none
}
VERSION = re.compile(r"2\.\d+(\.\d+)*")


@dataclass(frozen=True)
class Header:
    """The MSH fields of a message. HD fields (MSH-3 to MSH-6) keep all their components."""

    separators: Separators
    codec: str | None  # the Python codec the bytes were read with; None if they could not be
    declared_charset: str | None  # MSH-18 as sent
    sending_application: tuple[str, ...] = ()
    sending_facility: tuple[str, ...] = ()
    receiving_application: tuple[str, ...] = ()
    receiving_facility: tuple[str, ...] = ()
    timestamp: str | None = None  # MSH-7 as sent, e.g. 20240501083000+0800
    message_code: str | None = None  # MSH-9.1, e.g. ORU
    trigger: str | None = None  # MSH-9.2, e.g. R01
    control_id: str | None = None  # MSH-10
    processing_id: str | None = None  # MSH-11.1: P, T or D
    version: str | None = None  # MSH-12.1, e.g. 2.5

    @property
    def message_type(self) -> str:
        """MSH-9 as ``code^trigger`` (``ORU^R01``), or the code alone (``ACK``)."""
        code = self.message_code or ""
        return f"{code}^{self.trigger}" if self.trigger else code


@dataclass(frozen=True)
class Decoded:
    """A decoded message: the python-hl7 tree, its text, the charset used and the header."""

    message: hl7.Message
    text: str  # segments joined by \r, framing removed
    charset: str  # the Python codec used: utf-8, gb18030, ascii or latin-1
    header: Header
    segments: tuple[Seg, ...]

    @property
    def message_type(self) -> str:
        """MSH-9 as ``ORU^R01``."""
        return self.header.message_type

    @property
    def control_id(self) -> str:
        """MSH-10 (never empty: decode rejects a message without one)."""
        return self.header.control_id or ""

    def all(self, name: str) -> list[Seg]:
        """Return every segment with id ``name``, in message order."""
        return [s for s in self.segments if s.name == name]

    def expect(self, codes: tuple[str, ...], what: str, expected: str) -> Seg:
        """Return the MSH; reject (AR 200 naming MSH-9) a message whose MSH-9.1 is not one of
        ``codes``. ``what`` names the kind wanted, e.g. ``a result message``."""
        msh = self.segments[0]
        if self.header.message_code not in codes:
            raise msh.fail(
                9, f"not {what}", code="200", ack="AR", value=self.message_type, expected=expected
            )
        return msh


def decode(raw: bytes, *, max_bytes: int = 1_048_576) -> Decoded:
    """Decode one HL7 v2 message; raise ``MessageRejected`` (AR) when it cannot be taken."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise InputError(
            "an HL7 message must be given as bytes",
            field="raw",
            value=type(raw).__name__,
            expected="bytes",
        )
    data = bytes(raw)
    if len(data) > max_bytes:
        raise reject(
            "MSH",
            None,
            "207",
            f"the message is {len(data)} bytes; at most {max_bytes} are accepted",
            value=len(data),
            expected=f"at most {max_bytes} bytes",
        )
    start, body = unframe(data)
    seps = separators(body)
    first_end = first_segment_end(body)
    declared = peek_charset(body[:first_end], seps.field, seps.repetition)
    codec = None
    if declared is not None:
        codec = codec_for(declared)
        if codec is None:
            raise reject(
                "MSH",
                18,
                "103",
                "MSH-18 names a character set we do not support",
                value=declared,
                expected="one of " + ", ".join(ACCEPTED),
            )
    text, used = decode_body(body, codec, base=start)
    lines = segment_lines(text, seps)
    joined = "\r".join(lines)
    try:
        message = hl7.parse(joined)
    except Exception as exc:  # python-hl7 raises assorted types; none may escape
        raise reject("MSH", None, "207", "the message could not be parsed") from exc
    segments = _views(message, seps, used)
    header = _header(segments[0], seps, used, declared)
    _check(segments[0], header)
    return Decoded(message, joined, used, header, segments)


def peek_header(raw: bytes) -> Header | None:
    """Read what can be read of a header without checking it; None when there is no MSH.

    Meant for acknowledging a message that :func:`decode` refused: the result carries MSH-10,
    the applications and facilities, and the codec to answer in (None when MSH-18 is unknown
    or the bytes are not valid in the character set). Never raises.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        return None
    try:
        _, body = unframe(bytes(raw))
        seps = separators(body)
    except MessageRejected:
        return None
    end = first_segment_end(body)
    declared = peek_charset(body[:end], seps.field, seps.repetition)
    codec = codec_for(declared) if declared is not None else None
    answer: str | None
    try:
        _, used = decode_body(body, codec)
        answer = used if declared is None or codec is not None else None
    except MessageRejected:
        answer = None
    try:
        message = hl7.parse(tentative_text(body[:end]))
        return _header(_views(message, seps, answer or "utf-8")[0], seps, answer, declared)
    except Exception:  # a best effort: whatever goes wrong, there is no header to give
        return Header(seps, answer, declared)


def _views(message: Any, seps: Separators, codec: str) -> tuple[Seg, ...]:
    """Wrap each python-hl7 segment in a Seg, numbering occurrences per segment id."""
    counts: dict[str, int] = {}
    out: list[Seg] = []
    for segment in message:
        name = str(segment[0])
        counts[name] = counts.get(name, 0) + 1
        out.append(Seg(name, counts[name], list(segment), seps, codec))
    return tuple(out)


def _header(msh: Seg, seps: Separators, codec: str | None, declared: str | None) -> Header:
    """Read the MSH fields into a Header (unchecked)."""

    def hd(n: int) -> tuple[str, ...]:
        """Return the components of HD field ``n``, without trailing empty ones."""
        parts = [msh.comp(n, c) or "" for c in range(1, len(msh.tree(n)[0]) + 1)]
        while parts and not parts[-1]:
            parts.pop()
        return tuple(parts)

    return Header(
        separators=seps,
        codec=codec,
        declared_charset=declared,
        sending_application=hd(3),
        sending_facility=hd(4),
        receiving_application=hd(5),
        receiving_facility=hd(6),
        timestamp=msh.comp(7),
        message_code=msh.comp(9, 1),
        trigger=msh.comp(9, 2),
        control_id=msh.comp(10),
        processing_id=msh.comp(11),
        version=msh.comp(12),
    )


def _check(msh: Seg, h: Header) -> None:
    """Reject a header whose MSH-9 to MSH-12 we cannot take (AR)."""
    for n, value, what in (
        (9, h.message_code, "message type"),
        (10, h.control_id, "message control id"),
        (11, h.processing_id, "processing id"),
        (12, h.version, "version id"),
    ):
        if value is None:
            raise msh.fail(n, f"the {what} is required but empty", ack="AR", expected=what)
    if h.processing_id not in ("P", "T", "D"):
        raise msh.fail(
            11,
            "processing id must be P, T or D",
            code="202",
            ack="AR",
            value=h.processing_id,
            expected="P, T or D",
        )
    if not VERSION.fullmatch(h.version or ""):
        raise msh.fail(
            12,
            "only HL7 version 2.x is accepted",
            code="203",
            ack="AR",
            value=h.version,
            expected="2.x, e.g. 2.5",
        )
    accepted = ", ".join(["ORM^O01", "OML^O21", "ORU^R01", "ACK"])
    if h.message_code not in MESSAGE_TYPES:
        raise msh.fail(
            9,
            "this message type is not accepted",
            code="200",
            ack="AR",
            value=h.message_type,
            expected=accepted,
        )
    triggers = MESSAGE_TYPES[h.message_code]
    if triggers is not None and h.trigger not in triggers:
        raise msh.fail(
            9,
            "this trigger event is not accepted",
            code="201",
            ack="AR",
            value=h.message_type,
            expected=accepted,
        )
