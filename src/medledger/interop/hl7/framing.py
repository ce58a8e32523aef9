"""Byte-level framing of one HL7 v2 message: MLLP bytes, delimiters, segment ids.

These checks run before the message is decoded (MSH-1 and MSH-2 are read from the raw bytes)
and right after (segment ids); each refusal is a ``MessageRejected`` with ack code AR, as the
table in :mod:`medledger.interop.hl7.codec` lists.
"""

from __future__ import annotations

import re

from medledger.errors import MessageRejected
from medledger.interop.hl7.escape import Separators

__all__ = ["first_segment_end", "reject", "segment_lines", "separators", "unframe"]

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_HEADERS = frozenset({"MSH", "BHS", "FHS", "BTS", "FTS"})
_LEADING = b"\x0b\r\n\t "
_TRAILING = b"\x1c\r\n\t \x00"
_BOM = b"\xef\xbb\xbf"


def unframe(data: bytes) -> tuple[int, bytes]:
    """Strip MLLP framing, padding and a BOM; return (offset of the rest, the rest)."""
    start = 0
    while start < len(data) and data[start] in _LEADING:
        start += 1
    if data.startswith(_BOM, start):
        start += len(_BOM)
    end = len(data)
    while end > start and data[end - 1] in _TRAILING:
        end -= 1
    body = data[start:end]
    if not body:
        raise reject("MSH", None, "100", "the message is empty", expected="an MSH segment")
    if not body.startswith(b"MSH"):
        raise reject(
            "MSH",
            None,
            "100",
            "the message does not start with an MSH segment",
            value=body[:3],
            expected="MSH first",
        )
    return start, body


def separators(body: bytes) -> Separators:
    """Read MSH-1 and MSH-2 from the raw bytes; reject missing or ambiguous delimiters."""
    if len(body) < 4 or not _delimiter(body[3]):
        raise reject(
            "MSH",
            1,
            "102",
            "MSH-1 (the field separator) is missing or not a punctuation character",
            value=body[3:4],
            expected="a printable, non-alphanumeric ASCII character such as |",
        )
    fsep = body[3]
    end = first_segment_end(body)
    stop = body.find(bytes([fsep]), 4, end)
    chars = body[4 : stop if stop >= 0 else end]
    if (
        len(chars) not in (4, 5)
        or not all(_delimiter(c) for c in chars)
        or len(set(chars) | {fsep}) != len(chars) + 1
    ):
        raise reject(
            "MSH",
            2,
            "102",
            "MSH-2 must hold four distinct delimiters (component, repetition, escape, "
            "subcomponent), none equal to MSH-1",
            value=chars.decode("latin-1"),
            expected="^~\\&",
        )
    c = chars.decode("ascii")
    return Separators(chr(fsep), c[0], c[1], c[2], c[3])


def _delimiter(byte: int) -> bool:
    """Tell whether a byte may be a delimiter: printable ASCII punctuation."""
    return 0x21 <= byte <= 0x7E and not chr(byte).isalnum()


def first_segment_end(body: bytes) -> int:
    """Return the index of the first segment terminator (\\r or \\n), or the length."""
    ends = [i for i in (body.find(b"\r"), body.find(b"\n")) if i >= 0]
    return min(ends) if ends else len(body)


def segment_lines(text: str, seps: Separators) -> list[str]:
    """Split into segments; reject batches and segments without a valid id."""
    lines = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]
    for i, line in enumerate(lines):
        name = line[:3]
        if not _SEGMENT_ID.fullmatch(name) or (len(line) > 3 and line[3] != seps.field):
            raise reject(
                name if _SEGMENT_ID.fullmatch(name) else "MSH",
                None,
                "100",
                f"segment {i + 1} of the message does not start with a segment id",
                value=line[:8],
                expected="3 upper-case letters or digits followed by the field separator",
            )
        if i and name in _HEADERS:
            raise reject(
                name,
                None,
                "100",
                f"segment {i + 1} is {name}: one message per frame, batches are not accepted",
                expected="a single message",
            )
    return lines


def reject(
    segment: str,
    position: int | None,
    code: str,
    message: str,
    *,
    value: object = None,
    expected: str | None = None,
) -> MessageRejected:
    """Build an AR rejection naming ``segment`` (and field ``position``)."""
    where = segment if position is None else f"{segment}-{position}"
    return MessageRejected(
        f"{where}: {message}" if not message.startswith(where) else message,
        ack_code="AR",
        segment=segment,
        position=position,
        hl7_error=code,
        value=value,
        expected=expected,
    )
