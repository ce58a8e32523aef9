"""HL7 v2 delimiters and escape sequences (v2.5 chapter 2, sections 2.5.4 and 2.7).

We do not use python-hl7's ``unescape``: it logs the field value it works on (patient data in a
log), turns ``\\.br\\`` into a carriage return, calls the deprecated ``Logger.warn`` and may
raise on ``\\.sp\\`` counts. Our :func:`unescape` never raises and never logs.

Escapes understood on input: ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` (the delimiters), ``\\Xhh..\\``
(bytes in the message's character set), ``\\.br\\`` and ``\\.sp\\`` (newline), ``\\.ce\\``
(newline), ``\\.sk<n>\\`` (n spaces), ``\\H\\ \\N\\ \\.fi\\ \\.nf\\ \\.in<n>\\ \\.ti<n>\\``
(formatting, dropped), ``\\Z..\\ \\C..\\ \\M..\\`` (local and character-set switching, dropped).
Anything else between two escape characters, and an escape character with no partner, is kept
literally: Chinese HIS often send Windows paths such as ``D:\\report\\1.jpg`` unescaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["STANDARD", "Separators", "escape", "unescape"]

_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_COUNT = re.compile(r"[+-]?\d{0,3}")
_PAD = " \t"  # what senders pad fields with; escaped at the ends of a value we write


@dataclass(frozen=True)
class Separators:
    """The five delimiters of one message (MSH-1 and the four characters of MSH-2)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding(self) -> str:
        """MSH-2 as written: component, repetition, escape and subcomponent characters."""
        return self.component + self.repetition + self.escape + self.subcomponent


STANDARD = Separators()


def unescape(raw: str, seps: Separators, codec: str) -> str:
    """Return the text that ``raw`` (one leaf value as sent) stands for.

    ``codec`` is the Python codec of the message, used to decode ``\\Xhh..\\`` bytes; hex that
    is malformed or not valid in that codec is kept literally.
    """
    esc = seps.escape
    if esc not in raw:
        return raw
    out: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        j = raw.find(esc, i)
        if j < 0:
            out.append(raw[i:])
            break
        out.append(raw[i:j])
        k = raw.find(esc, j + 1)
        if k < 0:  # an escape character with no partner is literal text
            out.append(raw[j:])
            break
        meaning = _meaning(raw[j + 1 : k], seps, codec)
        out.append(raw[j : k + 1] if meaning is None else meaning)
        i = k + 1
    return "".join(out)


def _meaning(seq: str, seps: Separators, codec: str) -> str | None:
    """Return the text an escape sequence stands for, or None when it is not one we know."""
    simple = {
        "F": seps.field,
        "S": seps.component,
        "T": seps.subcomponent,
        "R": seps.repetition,
        "E": seps.escape,
        "H": "",
        "N": "",
        ".br": "\n",
        ".fi": "",
        ".nf": "",
        ".ce": "\n",
    }
    if seq in simple:
        return simple[seq]
    if not seq:
        return None
    head = seq[0]
    if head == "X":
        digits = seq[1:]
        if not _HEX.fullmatch(digits):
            return None
        try:
            return bytes.fromhex(digits).decode(codec)
        except (UnicodeDecodeError, LookupError):
            return None
    if head in "ZCM":
        return ""
    for prefix, unit in ((".sp", "\n"), (".sk", " "), (".in", ""), (".ti", "")):
        if seq.startswith(prefix) and _COUNT.fullmatch(seq[3:]):
            digits = seq[3:].lstrip("+-")
            count = int(digits) if digits else 1
            return unit * max(count, 1) if unit else ""
    return None


def escape(text: str, seps: Separators, codec: str) -> str:
    """Return ``text`` written as one HL7 leaf value: delimiters and control characters escaped.

    Newlines become ``\\.br\\``; other control characters, a leading space or tab, trailing
    white space of any kind (a parser may trim the end of a message) and the first quote of a
    value that is exactly ``""`` (the HL7 null) become ``\\Xhh\\`` in ``codec``, so that
    :func:`unescape` after the receiver's trimming gives ``text`` back exactly.
    """
    special = {
        seps.escape: f"{seps.escape}E{seps.escape}",
        seps.field: f"{seps.escape}F{seps.escape}",
        seps.component: f"{seps.escape}S{seps.escape}",
        seps.subcomponent: f"{seps.escape}T{seps.escape}",
        seps.repetition: f"{seps.escape}R{seps.escape}",
        "\n": f"{seps.escape}.br{seps.escape}",
    }
    last = len(text) - 1
    out: list[str] = []
    for i, c in enumerate(text):
        if c in special:
            out.append(special[c])
        elif _needs_hex(c, i, last) or (i == 0 and text == '""'):
            out.append(_hex(c, seps, codec))
        else:
            out.append(c)
    return "".join(out)


def _needs_hex(c: str, i: int, last: int) -> bool:
    """Control characters, and padding a receiver would trim from the ends of a value."""
    return ord(c) < 0x20 or ord(c) == 0x7F or (i == 0 and c in _PAD) or (i == last and c.isspace())


def _hex(c: str, seps: Separators, codec: str) -> str:
    """Return ``c`` as a \\Xhh\\ escape of its bytes in ``codec``."""
    return f"{seps.escape}X{c.encode(codec).hex().upper()}{seps.escape}"
