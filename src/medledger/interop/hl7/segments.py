"""Read fields of a parsed segment as clean text, and name a field in an error.

python-hl7 hands out a tree whose leaves are sometimes strings and sometimes containers
(a field without delimiters is a plain string); :class:`Seg` flattens that into
repetitions → components → subcomponents of raw text, and every accessor returns unescaped
text. Values are trimmed of the spaces and tabs senders pad fields with (before unescaping,
so an escaped space survives); an empty value, the HL7 null ``""`` and a value that is only
white space read as None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medledger.errors import MessageRejected
from medledger.interop.hl7.escape import Separators, unescape

__all__ = ["Seg", "Tree", "field_tree"]

Tree = list[list[list[str]]]  # repetitions → components → subcomponents, raw text
_PAD = " \t"


def field_tree(node: Any) -> Tree:
    """Flatten one python-hl7 field (a str or a Field container) into a raw :data:`Tree`."""
    if isinstance(node, str):
        return [[[node]]]
    reps: Tree = []
    for rep in node:
        if isinstance(rep, str):
            reps.append([[rep]])
            continue
        reps.append([[comp] if isinstance(comp, str) else [str(s) for s in comp] for comp in rep])
    return reps


@dataclass
class Seg:
    """One segment of a message: its id, its occurrence number, and field accessors.

    ``fields[n]`` is field n (for MSH too: ``fields[1]`` is MSH-1, the field separator).
    """

    name: str
    sequence: int  # 1-based occurrence of this segment id in the message
    fields: list[Any]
    seps: Separators
    codec: str
    _trees: dict[int, Tree] = field(default_factory=dict, repr=False)

    def tree(self, n: int) -> Tree:
        """Return field ``n`` as a raw tree (one empty leaf when the field is absent)."""
        if n not in self._trees:
            self._trees[n] = field_tree(self.fields[n]) if 0 < n < len(self.fields) else [[[""]]]
        return self._trees[n]

    def reps(self, n: int) -> int:
        """Return how many repetitions field ``n`` has (1 when absent)."""
        return len(self.tree(n))

    def get(self, n: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str | None:
        """Return one subcomponent of field ``n`` as text, or None when empty."""
        tree = self.tree(n)
        if rep > len(tree) or comp > len(tree[rep - 1]) or sub > len(tree[rep - 1][comp - 1]):
            return None
        return self.clean(tree[rep - 1][comp - 1][sub - 1])

    def comp(self, n: int, comp: int = 1, rep: int = 1) -> str | None:
        """Return a component as text, its subcomponents joined back by the delimiter.

        For components that have no subcomponents in the standard, a stray unescaped ``&``
        (common in URLs and Chinese free text) is then read as the character it is.
        """
        tree = self.tree(n)
        if rep > len(tree) or comp > len(tree[rep - 1]):
            return None
        return self.clean(self.seps.subcomponent.join(tree[rep - 1][comp - 1]))

    def text(self, n: int) -> str | None:
        """Return a text field (ST, TX, FT) whole: repetitions as lines, delimiters literal."""
        tree = self.tree(n)
        raws = [
            self.seps.component.join(self.seps.subcomponent.join(c) for c in rep) for rep in tree
        ]
        raws[0] = raws[0].lstrip(_PAD)
        raws[-1] = raws[-1].rstrip(_PAD)
        if len(raws) == 1 and raws[0] == '""':
            return None
        joined = "\n".join(unescape(r, self.seps, self.codec) for r in raws)
        return joined if joined.strip() else None

    def clean(self, raw: str) -> str | None:
        """Trim padding, read the HL7 null as None, and unescape."""
        trimmed = raw.strip(_PAD)
        if not trimmed or trimmed == '""':
            return None
        text = unescape(trimmed, self.seps, self.codec)
        return text if text.strip() else None

    def where(self, n: int | None = None) -> str:
        """Name this segment (and field ``n``) the way errors do, e.g. ``OBR[2]-4``."""
        at = self.name if self.sequence == 1 else f"{self.name}[{self.sequence}]"
        return at if n is None else f"{at}-{n}"

    def fail(
        self,
        n: int | None,
        message: str,
        *,
        code: str = "101",
        ack: str = "AE",
        value: Any = None,
        expected: str | None = None,
    ) -> MessageRejected:
        """Build the rejection for field ``n`` of this segment; ``message`` follows the name."""
        return MessageRejected(
            f"{self.where(n)}: {message}",
            ack_code=ack,
            segment=self.name,
            sequence=self.sequence,
            position=n,
            hl7_error=code,
            value=value,
            expected=expected,
        )

    def required(self, n: int, what: str, comp: int = 1) -> str:
        """Return component ``comp`` of field ``n``; reject with 101 when it is empty."""
        value = self.comp(n, comp)
        if value is None:
            raise self.fail(n, f"{what} is required but empty", expected=f"a {what}")
        return value
