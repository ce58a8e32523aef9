"""Translate codes between dictionaries: FHIR R4 ``ConceptMap/$translate`` and a hot-path index.

:class:`Translator` is built once from the current ConceptMaps; :meth:`Translator.lookup` is a
single dict lookup (the gateway translates every order item of every HL7 message with it).
:func:`translate` answers ``$translate`` with a ``Parameters`` resource: ``result`` (true only
if a match is usable, i.e. its equivalence is neither ``unmatched`` nor ``disjoint``),
``message`` when it is false, and one ``match`` (``equivalence``, ``concept``, ``source``) per
mapping found, unmatched marks included, as R4 describes.

``reverse`` looks for source codes that map *to* the given code; the equivalence is then read
from the other side (``wider`` becomes ``narrower``, ``subsumes`` becomes ``specializes``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from medledger.errors import InputError
from medledger.interop.model import Coded
from medledger.interop.terminology._checks import check_code
from medledger.interop.terminology.conceptmap import USABLE, entries_of

__all__ = ["Match", "Translator", "translate"]

_INVERSE = {
    "wider": "narrower",
    "narrower": "wider",
    "subsumes": "specializes",
    "specializes": "subsumes",
}


@dataclass(frozen=True, slots=True)
class Match:
    """One translation: the equivalence, the concept (None for ``unmatched``), the map's url."""

    equivalence: str
    concept: Coded | None
    source: str | None
    comment: str | None = None

    @property
    def usable(self) -> bool:
        """Tell whether the concept may stand in for the code translated."""
        return self.concept is not None and self.equivalence in USABLE


_Index = dict[tuple[str, str], list[tuple[str, Match]]]


class Translator:
    """An index of ConceptMaps for translating codes, built once and then only read.

    Raise InputError (its message names the map's position) if a ConceptMap is unreadable.
    """

    def __init__(self, conceptmaps: Iterable[dict[str, Any]]) -> None:
        """Index every mapping of ``conceptmaps`` both ways."""
        forward: _Index = {}
        backward: _Index = {}
        usable: dict[tuple[str, str, str], list[Coded]] = {}
        for index, cm in enumerate(conceptmaps):
            try:
                entries = entries_of(cm)
            except InputError as exc:
                raise InputError(
                    f"conceptmaps[{index}]: {exc.message}",
                    field=exc.field,
                    value=exc.value,
                    expected=exc.expected,
                    conceptmap=index,
                ) from None
            for entry in entries:
                pair = entry.mapping
                target = (
                    None
                    if pair.target_code is None
                    else Coded(entry.target_system, pair.target_code, pair.target_display)
                )
                match = Match(pair.equivalence, target, entry.url, pair.comment)
                key = (entry.source_system, pair.source_code)
                forward.setdefault(key, []).append((entry.target_system, match))
                if target is None:
                    continue
                if match.usable:
                    usable.setdefault((*key, entry.target_system), []).append(target)
                origin = Coded(entry.source_system, pair.source_code, pair.source_display)
                inverse = _INVERSE.get(pair.equivalence, pair.equivalence)
                back = Match(inverse, origin, entry.url, pair.comment)
                backward.setdefault((entry.target_system, target.code), []).append(
                    (entry.source_system, back)
                )
        self._forward = forward
        self._backward = backward
        self._usable = {key: tuple(found) for key, found in usable.items()}

    def lookup(self, system: str, code: str, target_system: str) -> tuple[Coded, ...]:
        """Return the usable target codes of ``code`` (empty when unmapped): one dict lookup."""
        return self._usable.get((system, code, target_system), ())

    def matches(
        self, system: str, code: str, target_system: str | None = None, *, reverse: bool = False
    ) -> tuple[Match, ...]:
        """Return every match of ``code``, unmatched marks included, optionally of one system."""
        index = self._backward if reverse else self._forward
        found = index.get((system, code), ())
        return tuple(m for s, m in found if target_system is None or s == target_system)

    def parameters(
        self, system: str, code: str, target_system: str | None = None, *, reverse: bool = False
    ) -> dict[str, Any]:
        """Answer ``$translate`` for ``code`` of ``system`` as an R4 Parameters resource."""
        if not isinstance(system, str) or not system:
            raise InputError(
                "system: a code system url is required",
                field="system",
                value=system,
                expected="the url of the code's system",
            )
        check_code(code, "code")
        if target_system is not None and (not isinstance(target_system, str) or not target_system):
            raise InputError(
                "targetsystem: expected a code system url",
                field="targetsystem",
                value=target_system,
                expected="a code system url or nothing",
            )
        found = self.matches(system, code, target_system, reverse=reverse)
        result = any(m.usable for m in found)
        params: list[dict[str, Any]] = [{"name": "result", "valueBoolean": result}]
        if not result:
            params.append(
                {
                    "name": "message",
                    "valueString": _message(system, code, target_system, reverse, found),
                }
            )
        params.extend(_match_parameter(m) for m in found)
        return {"resourceType": "Parameters", "parameter": params}


def _message(
    system: str, code: str, target: str | None, reverse: bool, found: Sequence[Match]
) -> str:
    """Say which code of which system has no usable mapping to which target."""
    where = target if target is not None else "any code system"
    if reverse:
        return f"no code of {where} maps to code '{code}' of system {system}"
    if found:
        marks = sorted({m.equivalence for m in found})
        maps = sorted({m.source for m in found if m.source})
        return f"code '{code}' of system {system} is marked {'/'.join(marks)} for {where}" + (
            f" in {', '.join(maps)}" if maps else ""
        )
    return f"code '{code}' of system {system} has no mapping to {where}"


def _match_parameter(match: Match) -> dict[str, Any]:
    """Render one match as the ``match`` parameter of R4 ``$translate``."""
    parts: list[dict[str, Any]] = [{"name": "equivalence", "valueCode": match.equivalence}]
    if match.concept is not None:
        coding = {"system": match.concept.system, "code": match.concept.code}
        if match.concept.display is not None:
            coding["display"] = match.concept.display
        parts.append({"name": "concept", "valueCoding": coding})
    if match.source is not None:
        parts.append({"name": "source", "valueUri": match.source})
    return {"name": "match", "part": parts}


def translate(
    conceptmaps: Sequence[dict[str, Any]],
    *,
    system: str,
    code: str,
    target_system: str | None = None,
    reverse: bool = False,
) -> dict[str, Any]:
    """Answer FHIR R4 ``ConceptMap/$translate`` over ``conceptmaps`` as a Parameters resource.

    ``target_system`` is the operation's ``targetsystem``; with ``reverse`` the code is looked
    up among the targets and the matches are the source codes mapped to it.
    """
    return Translator(conceptmaps).parameters(system, code, target_system, reverse=reverse)
