"""Extract the search-index entries of a FHIR resource (see :data:`SEARCH_PARAMS`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from medledger.records.search_dates import CHINA_TZ, date_range
from medledger.records.search_defs import SEARCH_PARAMS, ParamDef, ParamKind

__all__ = ["IndexValue", "extract_index", "normalize_reference"]

_REFERENCE = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)
_URN = ("urn:uuid:", "urn:oid:")
_CHOICE_SUFFIX = re.compile(r"[A-Z][A-Za-z]*")


@dataclass(frozen=True, slots=True)
class IndexValue:
    """One search-index entry of a resource.

    - ``token``: ``system`` (None when the source has none) and ``value`` (the code);
    - ``reference``: ``value`` is ``Type/id`` (or an ``urn:uuid:`` / ``urn:oid:`` as given);
    - ``date``: ``value`` is the source text (``start/end`` for a Period), ``[low, high)`` the
      UTC range it covers, ``None`` an open end;
    - ``string``: ``value`` is the raw text; the caller blind-indexes it.
    """

    param: str
    kind: ParamKind
    system: str | None
    value: str
    low: str | None
    high: str | None


def normalize_reference(reference: str) -> str | None:
    """Return ``Type/id`` for a literal reference, the URN itself for ``urn:uuid:``/``urn:oid:``.

    A base URL and a ``/_history/n`` suffix are dropped. Return None for what cannot be searched
    by reference: a contained ``#id``, a conditional reference, anything else.
    """
    if reference.startswith(_URN):
        return reference
    if reference.startswith("#"):
        return None
    found = _REFERENCE.search(reference)
    if found is None or found.end() != len(reference):
        return None
    return f"{found['type']}/{found['id']}"


def extract_index(resource: dict[str, Any], *, local_tz: tzinfo = CHINA_TZ) -> list[IndexValue]:
    """Return the index entries of every supported search parameter of ``resource``.

    The resource is expected to be valid (see ``validate_resource``); values of the wrong
    shape are skipped, never raised on. Dates without an offset are read in ``local_tz``.
    Duplicates are removed; the order is the parameter table's, then the document's.
    """
    params = SEARCH_PARAMS.get(str(resource.get("resourceType")), {})
    out: dict[IndexValue, None] = {}
    for definition in params.values():
        for item in _extract(resource, definition, local_tz):
            out[item] = None
    return list(out)


def _extract(resource: dict[str, Any], pdef: ParamDef, tz: tzinfo) -> Iterator[IndexValue]:
    name, kind, source = pdef.name, pdef.kind, pdef.source
    if source == "codesystem-code":
        system = _text(resource.get("url"))
        for code in _codesystem_codes(resource.get("concept")):
            yield IndexValue(name, kind, system, code, None, None)
        return
    if source == "valueset-code":
        for system, code in _valueset_codes(resource):
            yield IndexValue(name, kind, system, code, None, None)
        return
    for path in pdef.paths:
        for suffix, node in _nodes(resource, path.split(".")):
            if kind == "token":
                for system, code in _tokens(node, source):
                    yield IndexValue(name, kind, system, code, None, None)
            elif kind == "reference":
                ref = _reference(node, pdef.only)
                if ref is not None:
                    yield IndexValue(name, kind, None, ref, None, None)
            elif kind == "date":
                yield from _dates(name, suffix, node, tz)
            elif source == "humanname":
                for text in _name_parts(node):
                    yield IndexValue(name, kind, None, text, None, None)
            elif isinstance(node, str) and node:
                yield IndexValue(name, kind, None, node, None, None)


def _nodes(node: Any, names: list[str], suffix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(choice type suffix, value)`` for each value at the dotted path, lists flattened."""
    if isinstance(node, list):
        for item in node:
            yield from _nodes(item, names, suffix)
        return
    if not names:
        if node is not None:
            yield suffix, node
        return
    if not isinstance(node, dict):
        return
    head, rest = names[0], names[1:]
    if head.endswith("[x]"):
        stem = head[:-3]
        for key, value in node.items():
            if key.startswith(stem) and _CHOICE_SUFFIX.fullmatch(key[len(stem) :]):
                yield from _nodes(value, rest, key[len(stem) :])
    elif head in node:
        yield from _nodes(node[head], rest, suffix)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _tokens(node: Any, source: str) -> Iterator[tuple[str | None, str]]:
    if source in ("code", "id"):
        if _text(node):
            yield None, node
    elif not isinstance(node, dict):
        return
    elif source == "identifier":
        value = _text(node.get("value"))
        if value is not None:
            yield _text(node.get("system")), value
    else:  # a CodeableConcept
        codings = node.get("coding")
        for coding in codings if isinstance(codings, list) else []:
            if isinstance(coding, dict) and _text(coding.get("code")):
                yield _text(coding.get("system")), coding["code"]


def _reference(node: Any, only: str | None) -> str | None:
    if not isinstance(node, dict) or not _text(node.get("reference")):
        return None
    ref = normalize_reference(node["reference"])
    if ref is None or only is None:
        return ref
    if ref.startswith(_URN):
        return ref if node.get("type") == only else None
    return ref if ref.startswith(f"{only}/") else None


def _dates(name: str, suffix: str, node: Any, tz: tzinfo) -> Iterator[IndexValue]:
    if isinstance(node, str):
        span = date_range(node, local_tz=tz)
        if span is not None:
            yield IndexValue(name, "date", None, node, span[0], span[1])
        return
    if not isinstance(node, dict):
        return
    if suffix == "Timing":
        yield from _timing(name, node, tz)
        return
    start, end = _text(node.get("start")), _text(node.get("end"))
    low_span = date_range(start, local_tz=tz) if start else (None, None)
    high_span = date_range(end, local_tz=tz) if end else (None, None)
    if (start or end) and low_span is not None and high_span is not None:
        yield IndexValue(
            name, "date", None, f"{start or ''}/{end or ''}", low_span[0], high_span[1]
        )


def _timing(name: str, node: dict[str, Any], tz: tzinfo) -> Iterator[IndexValue]:
    """Index a Timing by its outer limits: its events and its bounding Period (R4 rule)."""
    texts = [e for e in node.get("event") or [] if isinstance(e, str)]
    repeat = node.get("repeat")
    bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
    if isinstance(bounds, dict):
        texts += [t for t in (bounds.get("start"), bounds.get("end")) if isinstance(t, str)]
    spans = [s for s in (date_range(t, local_tz=tz) for t in texts) if s is not None]
    if not spans:
        return
    lows = [s[0] for s in spans]
    highs = [s[1] for s in spans]
    open_start = isinstance(bounds, dict) and "start" not in bounds
    open_end = isinstance(bounds, dict) and "end" not in bounds
    low = None if open_start or None in lows else min(x for x in lows if x is not None)
    high = None if open_end or None in highs else max(x for x in highs if x is not None)
    ordered = sorted(texts)
    yield IndexValue(name, "date", None, f"{ordered[0]}/{ordered[-1]}", low, high)


def _name_parts(node: Any) -> Iterator[str]:
    """Yield every searchable part of a HumanName (R4 ``name`` matches any of them)."""
    if not isinstance(node, dict):
        return
    for key in ("text", "family"):
        if _text(node.get(key)):
            yield node[key]
    for key in ("given", "prefix", "suffix"):
        parts = node.get(key)
        for part in parts if isinstance(parts, list) else []:
            if _text(part):
                yield part


def _codesystem_codes(concepts: Any) -> Iterator[str]:
    for concept in concepts if isinstance(concepts, list) else []:
        if isinstance(concept, dict) and _text(concept.get("code")):
            yield concept["code"]


def _valueset_codes(resource: dict[str, Any]) -> Iterator[tuple[str | None, str]]:
    for _, include in _nodes(resource, ["compose", "include"]):
        if not isinstance(include, dict):
            continue
        system = _text(include.get("system"))
        for _, concept in _nodes(include, ["concept"]):
            if isinstance(concept, dict) and _text(concept.get("code")):
                yield system, concept["code"]
    for _, contains in _nodes(resource, ["expansion", "contains"]):
        yield from _contains_codes(contains, 0)


def _contains_codes(node: Any, depth: int) -> Iterator[tuple[str | None, str]]:
    if not isinstance(node, dict) or depth > 32:
        return
    if _text(node.get("code")):
        yield _text(node.get("system")), node["code"]
    for child in node.get("contains") or []:
        yield from _contains_codes(child, depth + 1)
