"""Strict lowercase-hex decoding for the hex fields of certificates, key files and trust bundles.

``bytes.fromhex`` alone would accept upper case and whitespace, so two spellings of one value
could both parse; documents that are hashed or compared must have exactly one spelling.
"""

from __future__ import annotations

import re

from medledger.errors import MalformedDocument

__all__ = ["from_hex"]

_LOWER_HEX = re.compile(r"(?:[0-9a-f]{2})*")


def from_hex(value: object, *, field: str, size: int | None = None) -> bytes:
    """Decode ``value`` as lowercase hex, of exactly ``size`` bytes when given.

    Raise ``MalformedDocument`` naming ``field`` for anything else: a non-string, odd length,
    upper case, whitespace or a wrong length.
    """
    expected = f"{size}-byte lowercase hex" if size is not None else "lowercase hex"
    if (
        not isinstance(value, str)
        or (size is not None and len(value) != 2 * size)
        or _LOWER_HEX.fullmatch(value) is None
    ):
        raise MalformedDocument(
            f"{field}: expected {expected}", field=field, value=value, expected=expected
        )
    return bytes.fromhex(value)
