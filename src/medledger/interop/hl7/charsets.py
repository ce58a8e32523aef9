"""Character sets of HL7 v2 messages (MSH-18, HL7 table 0211) and how we read the bytes.

Accepted MSH-18 values (case and spacing ignored) and the Python codec each one maps to:

==========================================================  ===========
``UNICODE UTF-8``, ``UTF-8``, ``UTF8``                      ``utf-8``
``GB18030``, ``GBK``, ``GB2312``, ``GB 18030-2000``,         ``gb18030``
``CHINESE GB18030``
``ASCII``                                                   ``ascii``
``8859/1``                                                  ``latin-1``
==========================================================  ===========

GBK and GB2312 content is read as GB18030, which encodes every GBK character with the same
bytes. A message without MSH-18 is read as UTF-8 when its bytes are valid UTF-8, otherwise as
GB18030: Chinese HIS commonly send GBK without declaring it.

MSH-18 is read before the message is decoded. The field separator is byte 3; the first
segment is decoded tentatively (UTF-8, else GB18030, else Latin-1, so that a multi-byte
character whose trail byte equals a delimiter does not shift the fields) and split; MSH-18 is
ASCII in practice, so every tentative reading gives the same value.
"""

from __future__ import annotations

from medledger.errors import MessageRejected

__all__ = ["ACCEPTED", "codec_for", "decode_body", "peek_charset", "tentative_text"]

_CODECS: dict[str, str] = {
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "GB18030": "gb18030",
    "GBK": "gb18030",
    "GB2312": "gb18030",
    "GB 18030-2000": "gb18030",
    "CHINESE GB18030": "gb18030",
    "ASCII": "ascii",
    "8859/1": "latin-1",
}

ACCEPTED: tuple[str, ...] = tuple(_CODECS)


def codec_for(label: str) -> str | None:
    """Return the Python codec for an MSH-18 value, or None when we do not support it."""
    return _CODECS.get(" ".join(label.upper().split()))


def peek_charset(first_segment: bytes, field_sep: str, repetition_sep: str) -> str | None:
    """Return MSH-18 (its first repetition, trimmed) from the raw first segment, or None."""
    text = tentative_text(first_segment)
    fields = text.split(field_sep)
    if len(fields) < 18:  # fields[0] is "MSH", fields[k] is MSH-(k+1)
        return None
    value = fields[17].split(repetition_sep)[0].strip(" \t")
    return value or None


def tentative_text(data: bytes) -> str:
    """Decode ``data`` as UTF-8, else GB18030, else Latin-1 (which never fails)."""
    for codec in ("utf-8", "gb18030"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def decode_body(body: bytes, codec: str | None, *, base: int = 0) -> tuple[str, str]:
    """Decode ``body`` with ``codec`` (or by detection when None); return ``(text, codec used)``.

    ``base`` is the offset of ``body`` in the bytes the sender sent, so that the error names
    the offending byte as the sender counts it. Raise ``MessageRejected`` (AR, MSH-18, 102)
    naming the first invalid byte.
    """
    if codec is not None:
        try:
            return body.decode(codec), codec
        except UnicodeDecodeError as exc:
            offset = base + exc.start
            raise _undecodable(f"byte {offset} is not valid {codec}", offset) from None
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        first = base + exc.start
    try:
        return body.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        second = base + exc.start
        detail = f"byte {first} is not valid utf-8 and byte {second} is not valid gb18030"
        raise _undecodable(detail, first) from None


def _undecodable(detail: str, offset: int) -> MessageRejected:
    """Build the AR for bytes that are not valid in the character set."""
    return MessageRejected(
        f"MSH-18: the message bytes are not in its character set: {detail}",
        ack_code="AR",
        segment="MSH",
        position=18,
        hl7_error="102",
        value=offset,
        expected="bytes valid in the MSH-18 character set (UTF-8 or GB18030 when absent)",
        byte_offset=offset,
    )
