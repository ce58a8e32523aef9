"""Compose HL7 v2 segments with one message's delimiters and character set.

Every value passes through :func:`medledger.interop.hl7.escape.escape`, so text holding
delimiters, newlines or control characters reads back unchanged. Trailing empty components
and fields are left out. Segments end with ``\\r``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medledger.errors import InputError
from medledger.interop.hl7.charsets import ACCEPTED, codec_for
from medledger.interop.hl7.escape import STANDARD, Separators, escape

__all__ = ["Writer", "codec_or_fail"]


def codec_or_fail(label: str) -> str:
    """Return the codec of an MSH-18 label we write; raise ``InputError`` for another one."""
    codec = codec_for(label)
    if codec is None:
        raise InputError(
            f"charset {label!r} is not one we can write",
            field="charset",
            value=label,
            expected="one of " + ", ".join(ACCEPTED),
        )
    return codec


class Writer:
    """Build escaped fields and segments for one outgoing message."""

    def __init__(self, codec: str, seps: Separators = STANDARD) -> None:
        """``codec`` is the Python codec of the message; ``seps`` its delimiters."""
        self.codec = codec
        self.seps = seps

    def esc(self, text: str | None) -> str:
        """Escape one leaf value (None → empty)."""
        return escape(text, self.seps, self.codec) if text else ""

    def comps(self, *parts: str | None) -> str:
        """Join escaped components, leaving out trailing empty ones."""
        return _join(self.seps.component, [self.esc(p) for p in parts])

    def subs(self, *parts: str | None) -> str:
        """Join escaped subcomponents, leaving out trailing empty ones."""
        return _join(self.seps.subcomponent, [self.esc(p) for p in parts])

    def join_comps(self, *parts: str) -> str:
        """Join components that are already composed (e.g. of subcomponents)."""
        return _join(self.seps.component, list(parts))

    def join_reps(self, *reps: str) -> str:
        """Join repetitions that are already composed."""
        return _join(self.seps.repetition, list(reps))

    def segment(self, name: str, fields: Mapping[int, str]) -> str:
        """Return one segment; ``fields`` maps a field number to its composed text."""
        last = max((n for n, v in fields.items() if v), default=0)
        values = [fields.get(n, "") for n in range(1, last + 1)]
        return self.seps.field.join([name, *values])

    def msh(self, fields: Mapping[int, str]) -> str:
        """Return the MSH segment; ``fields`` maps MSH-3 and later to their composed text."""
        last = max((n for n, v in fields.items() if v), default=2)
        values = [fields.get(n, "") for n in range(3, last + 1)]
        return self.seps.field.join(["MSH", self.seps.encoding, *values])

    def encode(self, segments: Sequence[str], *, strict: bool = True) -> bytes:
        """Return the message bytes.

        ``strict`` raises ``InputError`` for text the character set cannot hold; otherwise
        such characters become ``?`` (for acknowledgements, which must always be sendable).
        """
        text = "".join(s + "\r" for s in segments)
        try:
            return text.encode(self.codec, "strict" if strict else "replace")
        except UnicodeEncodeError as exc:
            raise InputError(
                f"character {exc.start} of the message cannot be written in {self.codec}",
                field="charset",
                value=self.codec,
                expected="a character set that holds every character of the message",
            ) from None


def _join(sep: str, parts: list[str]) -> str:
    """Join ``parts`` with ``sep``, leaving out trailing empty ones."""
    while parts and not parts[-1]:
        parts.pop()
    return sep.join(parts)
