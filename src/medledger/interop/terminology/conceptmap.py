"""Dictionary mappings (项目字典对照) as FHIR R4 ConceptMap resources.

One ConceptMap per ordered pair of institutions maps the source institution's CodeSystem to the
target's. A :class:`Mapping` is one source code → target code pair with its R4 ``equivalence``
(``unmatched`` records that a code has deliberately no counterpart). :func:`concept_map` builds
the resource, :func:`pairs_of` reads it back, and :func:`with_mapping` / :func:`without_mapping`
return a *new* resource with one pair added or removed (the store versions each one).

Pairs come back grouped by source code, in the order each code first appeared, so
``pairs_of(concept_map(s, t, pairs)) == pairs`` whenever ``pairs`` is grouped that way.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from medledger.errors import InputError, NotFound
from medledger.interop.model import code_system
from medledger.interop.terminology._checks import (
    check_code,
    check_instance,
    check_optional_text,
    check_resource,
    get_list,
    need_str,
    put_texts,
)
from medledger.interop.terminology.codesystem import check_institution, check_name, default_name

__all__ = [
    "EQUIVALENCES",
    "USABLE",
    "Equivalence",
    "MapEntry",
    "Mapping",
    "concept_map",
    "concept_map_url",
    "entries_of",
    "pairs_of",
    "with_mapping",
    "without_mapping",
]

Equivalence = Literal[
    "relatedto", "equivalent", "equal", "wider", "subsumes", "narrower", "specializes",
    "inexact", "unmatched", "disjoint",
]  # fmt: skip
EQUIVALENCES: tuple[Equivalence, ...] = (
    "relatedto", "equivalent", "equal", "wider", "subsumes", "narrower", "specializes",
    "inexact", "unmatched", "disjoint",
)  # fmt: skip
"""FHIR R4 ConceptMapEquivalence codes."""
USABLE: frozenset[str] = frozenset(EQUIVALENCES) - {"unmatched", "disjoint"}
"""Equivalences under which a target code may stand in for the source code."""
_NEEDS_COMMENT = frozenset({"narrower", "inexact"})  # R4 invariant cmd-1


@dataclass(frozen=True)
class Mapping:
    """One source code → target code pair. Invalid values raise InputError naming the field.

    ``target_code`` is None exactly when ``equivalence`` is ``unmatched``; ``narrower`` and
    ``inexact`` need a ``comment`` saying what differs (FHIR R4 invariant cmd-1).
    """

    source_code: str
    source_display: str | None = None
    target_code: str | None = None
    target_display: str | None = None
    equivalence: Equivalence = "equivalent"
    comment: str | None = None

    def __post_init__(self) -> None:
        """Check every field and the rules between them."""
        check_code(self.source_code, "source_code")
        check_optional_text(self.source_display, "source_display")
        check_optional_text(self.target_display, "target_display")
        check_optional_text(self.comment, "comment", "comment")
        if self.equivalence not in EQUIVALENCES:
            raise InputError(
                f"equivalence: unknown equivalence {self.equivalence!r}",
                field="equivalence",
                value=self.equivalence,
                expected="one of " + ", ".join(EQUIVALENCES),
            )
        if self.equivalence == "unmatched":
            if self.target_code is not None or self.target_display is not None:
                raise InputError(
                    f"target_code: code {self.source_code!r} is marked unmatched but names a "
                    "target",
                    field="target_code",
                    value=self.target_code,
                    expected="no target code for an unmatched source code",
                )
        else:
            check_code(self.target_code, "target_code")
        if self.equivalence in _NEEDS_COMMENT and self.comment is None:
            raise InputError(
                f"comment: a {self.equivalence} mapping of {self.source_code!r} needs a comment "
                "saying what differs",
                field="comment",
                value=None,
                expected=f"a comment (备注) for a {self.equivalence} mapping",
            )


@dataclass(frozen=True)
class MapEntry:
    """One mapping of a ConceptMap with the systems of its group and the map's url."""

    url: str | None
    source_system: str
    target_system: str
    mapping: Mapping


def concept_map_url(source_inst: str, target_inst: str) -> str:
    """The ConceptMap url of the mapping from one institution's dictionary to another's."""
    return f"urn:medledger:map:{source_inst}:{target_inst}"


def _institutions(url: object) -> tuple[str, str] | None:
    """Parse a url made by :func:`concept_map_url`."""
    if isinstance(url, str) and url.startswith("urn:medledger:map:"):
        parts = url.removeprefix("urn:medledger:map:").split(":")
        if len(parts) == 2 and all(parts):
            return parts[0], parts[1]
    return None


def _elements(pairs: Iterable[Mapping]) -> list[dict[str, Any]]:
    """Group pairs by source code into ConceptMap elements, checking the rules between pairs."""
    elements: dict[str, dict[str, Any]] = {}
    targets: dict[str, set[str | None]] = {}
    for index, pair in enumerate(pairs):
        check_instance(pair, Mapping, f"pairs[{index}]")
        code = pair.source_code
        element = elements.get(code)
        if element is None:
            element = elements[code] = {"code": code, "target": []}
            if pair.source_display is not None:
                element["display"] = pair.source_display
            targets[code] = set()
        elif element.get("display") != pair.source_display:
            raise InputError(
                f"pairs[{index}]: code {code!r} is named both {element.get('display')!r} and "
                f"{pair.source_display!r}",
                field=f"pairs[{index}].source_display",
                value=pair.source_display,
                expected=f"the same source name in every pair of {code!r}",
            )
        seen = targets[code]
        if pair.target_code in seen:
            raise InputError(
                f"pairs[{index}]: {code!r} → {pair.target_code!r} is listed twice",
                field=f"pairs[{index}].target_code",
                value=pair.target_code,
                expected="each source → target pair once",
            )
        if seen and (pair.target_code is None or None in seen):
            raise InputError(
                f"pairs[{index}]: {code!r} is marked unmatched and also mapped",
                field=f"pairs[{index}].equivalence",
                value=pair.equivalence,
                expected="either target codes or one unmatched mark per source code",
            )
        seen.add(pair.target_code)
        target: dict[str, Any] = {}
        if pair.target_code is not None:
            target["code"] = pair.target_code
        if pair.target_display is not None:
            target["display"] = pair.target_display
        target["equivalence"] = pair.equivalence
        if pair.comment is not None:
            target["comment"] = pair.comment
        element["target"].append(target)
    return list(elements.values())


def concept_map(
    source_inst: str,
    target_inst: str,
    pairs: Iterable[Mapping],
    *,
    name: str | None = None,
    title: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """Build the ConceptMap from ``source_inst``'s dictionary to ``target_inst``'s.

    Raise InputError if a pair repeats, a code is both unmatched and mapped, or one source code
    carries two different names. An empty map has no group (R4 needs 1..* elements per group).
    """
    check_institution(source_inst, "source_inst")
    check_institution(target_inst, "target_inst")
    cm: dict[str, Any] = {
        "resourceType": "ConceptMap",
        "url": concept_map_url(source_inst, target_inst),
        "name": check_name(name, default_name("Map", source_inst, "to", target_inst)),
        "status": "active",
    }
    put_texts(cm, version=version, title=title)
    elements = _elements(pairs)
    if elements:
        cm["group"] = [
            {
                "source": code_system(source_inst),
                "target": code_system(target_inst),
                "element": elements,
            }
        ]
    return cm


def _read(conceptmap: dict[str, Any]) -> Iterator[tuple[str, str, Mapping]]:
    """Yield (source system, target system, mapping) for every target of every element."""
    check_resource(conceptmap, "ConceptMap")
    for g, group in enumerate(get_list(conceptmap, "group", "ConceptMap")):
        where = f"ConceptMap.group[{g}]"
        source = need_str(group, "source", where)
        target = need_str(group, "target", where)
        for e, element in enumerate(get_list(group, "element", where)):
            path = f"{where}.element[{e}]"
            for t, item in enumerate(get_list(element, "target", path)):
                yield source, target, _mapping(element, item, f"{path}.target[{t}]", path)


def _mapping(element: dict[str, Any], target: dict[str, Any], path: str, parent: str) -> Mapping:
    """Read one element target as a Mapping; errors name the element path."""
    fields = {
        "source_code": (element.get("code"), f"{parent}.code"),
        "source_display": (element.get("display"), f"{parent}.display"),
        "target_code": (target.get("code"), f"{path}.code"),
        "target_display": (target.get("display"), f"{path}.display"),
        "equivalence": (target.get("equivalence", "equivalent"), f"{path}.equivalence"),
        "comment": (target.get("comment"), f"{path}.comment"),
    }
    try:
        return Mapping(**{key: value for key, (value, _) in fields.items()})
    except InputError as exc:
        where = fields[exc.field][1] if exc.field in fields else path
        raise InputError(
            f"{where}: {exc.message.split(': ', 1)[-1]}",
            field=where,
            value=exc.value,
            expected=exc.expected,
        ) from None


def entries_of(conceptmap: dict[str, Any]) -> list[MapEntry]:
    """Read every mapping of any R4 ConceptMap with its group's systems and the map's url."""
    url = conceptmap.get("url") if isinstance(conceptmap, dict) else None
    url = url if isinstance(url, str) else None
    return [MapEntry(url, s, t, m) for s, t, m in _read(conceptmap)]


def pairs_of(conceptmap: dict[str, Any]) -> list[Mapping]:
    """Read the pairs of a ConceptMap between two dictionaries (all groups share their systems).

    Raise InputError naming the element path for anything unreadable.
    """
    pairs: list[Mapping] = []
    systems: tuple[str, str] | None = None
    for source, target, pair in _read(conceptmap):
        if systems is None:
            systems = (source, target)
        elif systems != (source, target):
            raise InputError(
                "ConceptMap.group: groups map between different code systems",
                field="ConceptMap.group.source",
                value=f"{source} → {target}",
                expected=f"{systems[0]} → {systems[1]} in every group",
            )
        pairs.append(pair)
    return pairs


def _rebuilt(conceptmap: dict[str, Any], pairs: list[Mapping]) -> dict[str, Any]:
    """Return a deep copy of ``conceptmap`` whose groups hold exactly ``pairs``."""
    groups = get_list(conceptmap, "group", "ConceptMap")
    if groups:
        source, target = groups[0]["source"], groups[0]["target"]
    else:
        insts = _institutions(conceptmap.get("url"))
        if insts is None:
            raise InputError(
                "ConceptMap.url: an empty ConceptMap must carry a MedLedger map url",
                field="ConceptMap.url",
                value=conceptmap.get("url"),
                expected="urn:medledger:map:<source institution>:<target institution>",
            )
        source, target = code_system(insts[0]), code_system(insts[1])
    out = copy.deepcopy({k: v for k, v in conceptmap.items() if k != "group"})
    elements = _elements(pairs)
    if elements:
        out["group"] = [{"source": source, "target": target, "element": elements}]
    return out


def with_mapping(conceptmap: dict[str, Any], mapping: Mapping) -> dict[str, Any]:
    """Return a new ConceptMap with ``mapping`` added (the input is not changed).

    A pair with the same source and target codes is replaced; a real target replaces an
    ``unmatched`` mark of its source code. Marking a mapped code unmatched is an InputError.
    """
    pairs = pairs_of(conceptmap)
    code = mapping.source_code
    if mapping.target_code is None and any(
        p.source_code == code and p.target_code is not None for p in pairs
    ):
        raise InputError(
            f"source_code: {code!r} is mapped; remove its targets before marking it unmatched",
            field="source_code",
            value=code,
            expected="a source code without targets",
        )
    display = mapping.source_display
    if display is None:
        display = next((p.source_display for p in pairs if p.source_code == code), None)
    new = replace(mapping, source_display=display)
    out: list[Mapping] = []
    place: int | None = None  # where the new pair goes: in place of the one it replaces,
    done = False  # else after the code's last pair, else at the end
    for pair in pairs:
        if pair.source_code != code:
            out.append(pair)
            continue
        if pair.target_code == mapping.target_code or pair.target_code is None:
            if not done:
                out.append(new)
                done = True
        else:
            out.append(replace(pair, source_display=display))
        place = len(out)
    if not done:
        out.insert(len(out) if place is None else place, new)
    return _rebuilt(conceptmap, out)


def without_mapping(
    conceptmap: dict[str, Any], source_code: str, target_code: str | None
) -> dict[str, Any]:
    """Return a new ConceptMap without the pair ``source_code`` → ``target_code``.

    ``target_code`` None removes the ``unmatched`` mark of ``source_code``. Raise NotFound if
    the map holds no such pair.
    """
    pairs = pairs_of(conceptmap)
    kept = [p for p in pairs if (p.source_code, p.target_code) != (source_code, target_code)]
    if len(kept) == len(pairs):
        shown = target_code if target_code is not None else "(unmatched)"
        raise NotFound(
            f"source_code: the map has no pair {source_code!r} → {shown!r}",
            field="source_code",
            value=source_code,
            expected="a source code → target code pair the map holds",
        )
    return _rebuilt(conceptmap, kept)
