"""FHIR R4 search: what each resource type can be searched by, and parsing a search request.

:func:`extract_index` turns a resource into index entries (:class:`IndexValue`);
:func:`parse_search` turns a query string into a :class:`SearchQuery` of typed criteria. Each
criterion's ``matches`` is the reference semantics a store must implement.

Strictness: an unknown parameter, modifier or prefix is an ``InputError`` naming it and what is
supported. FHIR lets a server ignore unknown parameters (and say so in the Bundle), but a
clinical search that silently drops a filter returns too many patients' data; we refuse instead.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import tzinfo
from typing import Literal

from medledger.errors import InputError, UnknownResourceType
from medledger.records.paging import MAX_COUNT, page_count
from medledger.records.search_dates import CHINA_TZ, PREFIXES, date_range
from medledger.records.search_defs import ANY_TYPE, SEARCH_PARAMS, ParamDef, ParamKind
from medledger.records.search_index import IndexValue, extract_index, normalize_reference
from medledger.records.search_query import (
    DEFAULT_COUNT,
    Criterion,
    DateCriterion,
    DateValue,
    ReferenceCriterion,
    SearchQuery,
    StringCriterion,
    TokenCriterion,
    TokenValue,
    normalize_string,
)

__all__ = [
    "DEFAULT_COUNT",
    "MAX_COUNT",
    "SEARCH_PARAMS",
    "Criterion",
    "DateCriterion",
    "DateValue",
    "IndexValue",
    "ParamDef",
    "ParamKind",
    "ReferenceCriterion",
    "SearchQuery",
    "StringCriterion",
    "TokenCriterion",
    "TokenValue",
    "extract_index",
    "normalize_string",
    "parse_search",
]

MAX_CRITERIA = 50
MAX_VALUES = 100
MAX_VALUE_CHARS = 1024

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PAGE_TOKEN = re.compile(r"[A-Za-z0-9_\-.~=]{1,2048}")
_RESULT_PARAMS = frozenset({"_count", "_sort", "_total", "_page_token"})
_SORTS: dict[str, Literal["_lastUpdated", "-_lastUpdated"]] = {
    "_lastUpdated": "_lastUpdated",
    "-_lastUpdated": "-_lastUpdated",
}
_TOTALS: dict[str, Literal["accurate", "none"]] = {"accurate": "accurate", "none": "none"}
# Response-format parameters clients add to any request: accepted (JSON only) and ignored here.
_IGNORED_PARAMS = {
    "_format": ("json", "application/json", "application/fhir+json"),
    "_pretty": ("true", "false"),
}
_REFUSED = {
    "_include": "included resources are not returned; fetch referenced resources by id",
    "_revinclude": "included resources are not returned; search the referring type instead",
    "_offset": "paging is by the opaque _page_token of the Bundle's 'next' link",
    "_summary": "only full resources are returned",
    "_elements": "only full resources are returned",
    "_contained": "contained resources are not searched",
    "_containedType": "contained resources are not searched",
    "_has": "reverse chaining is not supported",
    "_filter": "the _filter syntax is not supported",
    "_query": "named queries are not supported",
    "_text": "text search is not supported",
    "_content": "text search is not supported",
    "_list": "list search is not supported",
    "_type": "search one resource type at a time",
}


def parse_search(
    resource_type: str, params: list[tuple[str, str]], *, local_tz: tzinfo = CHINA_TZ
) -> SearchQuery:
    """Parse the ``(name, value)`` pairs of a search on ``resource_type`` into a query.

    Raise ``UnknownResourceType`` for a type not served, ``InputError`` naming the parameter for
    anything not understood. Date values without an offset are read in ``local_tz``.
    """
    table = SEARCH_PARAMS.get(resource_type)
    if table is None:
        raise UnknownResourceType(
            f"resource type '{resource_type[:64]}' is not served here",
            field="resourceType",
            value=resource_type,
            expected="one of " + ", ".join(SEARCH_PARAMS),
        )
    criteria: list[Criterion] = []
    result: dict[str, str] = {}
    for name, value in params:
        if name in _RESULT_PARAMS:
            if name in result:
                raise InputError(f"{name} may be given only once", field=name, value=value)
            result[name] = value
            continue
        if name in _IGNORED_PARAMS:
            _check_ignored(name, value)
            continue
        base, colon, modifier = name.partition(":")
        pdef = table.get(base)
        if pdef is None:
            raise _unknown_param(resource_type, name, base, table)
        if len(criteria) >= MAX_CRITERIA:
            raise InputError(f"too many search parameters (at most {MAX_CRITERIA})", field=name)
        criteria.append(_criterion(pdef, modifier if colon else None, name, value, local_tz))
    return _with_result_params(SearchQuery(resource_type, tuple(criteria)), result)


def _check_ignored(name: str, value: str) -> None:
    allowed = _IGNORED_PARAMS[name]
    if value not in allowed:
        raise InputError(
            f"{name}={value[:64]} is not supported (this server speaks FHIR JSON only)",
            field=name,
            value=value,
            expected=" or ".join(allowed),
        )


def _unknown_param(rtype: str, name: str, base: str, table: dict[str, ParamDef]) -> InputError:
    supported = ", ".join(sorted(table) + sorted(_RESULT_PARAMS))
    if base in _REFUSED:
        text = f"search parameter '{base}' is not supported: {_REFUSED[base]}"
    elif "." in base:
        text = f"chained search '{name[:64]}' is not supported; search the referenced type first"
    else:
        text = (
            f"unknown search parameter '{name[:64]}' for {rtype} (this server rejects unknown "
            f"parameters rather than ignore them); supported: {supported}"
        )
    return InputError(text, field=name, expected=f"one of {supported}")


def _with_result_params(query: SearchQuery, result: dict[str, str]) -> SearchQuery:
    """Apply ``_count``, ``_sort``, ``_total`` and ``_page_token`` to ``query``."""
    if "_count" in result:
        query = replace(query, count=page_count(result["_count"]))
    if "_sort" in result:
        raw = result["_sort"]
        if raw in _SORTS:
            query = replace(query, sort=_SORTS[raw])
        else:
            raise InputError(
                "_sort supports only _lastUpdated (oldest first) or -_lastUpdated (newest first)",
                field="_sort",
                value=raw,
                expected="_lastUpdated or -_lastUpdated",
            )
    if "_total" in result:
        raw = result["_total"]
        if raw in _TOTALS:
            query = replace(query, total=_TOTALS[raw])
        else:
            raise InputError(
                "_total supports accurate or none (estimate is not offered)",
                field="_total",
                value=raw,
                expected="accurate or none",
            )
    if "_page_token" in result:
        raw = result["_page_token"]
        if not _PAGE_TOKEN.fullmatch(raw):
            raise InputError(
                "_page_token is not a token this server issued",
                field="_page_token",
                value=raw,
                expected="the _page_token of a 'next' link, unchanged",
            )
        query = replace(query, page_token=raw)
    return query


def _criterion(pdef: ParamDef, modifier: str | None, name: str, raw: str, tz: tzinfo) -> Criterion:
    exact = False
    implied: str | None = None
    if modifier is not None:
        if pdef.kind == "string" and modifier == "exact":
            exact = True
        elif pdef.kind == "reference" and modifier in pdef.targets:
            implied = modifier
        else:
            raise _bad_modifier(pdef, name, modifier)
    values = _split(raw, name)
    if pdef.kind == "token":
        return TokenCriterion(pdef.name, tuple(_token(pdef, name, v) for v in values))
    if pdef.kind == "reference":
        refs = [r for v in values for r in _references(pdef, name, v, implied)]
        return ReferenceCriterion(pdef.name, tuple(dict.fromkeys(refs)))
    if pdef.kind == "date":
        return DateCriterion(pdef.name, tuple(_date(name, v, tz) for v in values))
    return StringCriterion(pdef.name, tuple(_unescape(v) for v in values), exact)


def _bad_modifier(pdef: ParamDef, name: str, modifier: str) -> InputError:
    if pdef.kind == "string":
        allowed = ":exact"
    elif pdef.kind == "reference" and pdef.targets != ANY_TYPE:
        allowed = "a target type, one of " + ", ".join(f":{t}" for t in pdef.targets)
    else:
        allowed = "none"
    return InputError(
        f"modifier ':{modifier[:32]}' is not supported on {pdef.kind} parameter '{pdef.name}'"
        f" (supported: {allowed})",
        field=name,
        expected=allowed,
    )


def _split(raw: str, name: str) -> list[str]:
    """Split a value on unescaped commas (OR); FHIR escapes ``,`` ``|`` ``$`` ``\\`` with ``\\``."""
    if len(raw) > MAX_VALUE_CHARS * 4:
        raise InputError(f"value of '{name}' is too long", field=name, value=raw)
    parts = _split_on(raw, ",")
    if len(parts) > MAX_VALUES:
        raise InputError(f"at most {MAX_VALUES} alternatives per parameter", field=name, value=raw)
    for part in parts:
        if not part:
            raise InputError(f"empty value for search parameter '{name}'", field=name, value=raw)
        if len(part) > MAX_VALUE_CHARS:
            raise InputError(f"value of '{name}' is too long", field=name, value=raw)
    return parts


def _split_on(text: str, sep: str, maxsplit: int = -1) -> list[str]:
    """Split ``text`` on ``sep`` where not escaped by a backslash (escapes are kept)."""
    parts: list[str] = []
    start = index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == sep and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", text)


def _token(pdef: ParamDef, name: str, raw: str) -> TokenValue:
    pieces = _split_on(raw, "|", maxsplit=1)
    if pdef.source == "id":
        if len(pieces) > 1 or not _ID.fullmatch(raw):
            raise InputError(
                f"'{raw[:64]}' is not a resource id",
                field=name,
                value=raw,
                expected="[A-Za-z0-9-.]{1,64}",
            )
        return TokenValue(None, raw)
    if len(pieces) == 1:
        return TokenValue(None, _unescape(raw))
    system, code = (_unescape(p) for p in pieces)
    if not system and not code:
        raise InputError(
            f"token '{raw}' of '{name}' has neither system nor code",
            field=name,
            value=raw,
            expected="system|code, |code, code or system|",
        )
    return TokenValue(system, code or None)


def _references(pdef: ParamDef, name: str, raw: str, implied: str | None) -> list[str]:
    targets = (implied,) if implied else pdef.targets
    expected = "Type/id or id" + ("" if targets == ANY_TYPE else f" (types: {', '.join(targets)})")
    if _ID.fullmatch(raw):
        if targets == ANY_TYPE:
            raise InputError(
                f"'{name}' can point to any type: give Type/id",
                field=name,
                value=raw,
                expected=expected,
            )
        return [f"{t}/{raw}" for t in targets]
    ref = normalize_reference(raw)
    if ref is None:
        raise InputError(
            f"'{raw[:64]}' is not a reference for '{name}'",
            field=name,
            value=raw,
            expected=expected,
        )
    rtype = ref.split("/", 1)[0]
    if (
        not ref.startswith(("urn:uuid:", "urn:oid:"))
        and targets != ANY_TYPE
        and rtype not in targets
    ):
        raise InputError(
            f"'{name}' cannot point to {rtype} resources", field=name, value=raw, expected=expected
        )
    return [ref]


def _date(name: str, raw: str, tz: tzinfo) -> DateValue:
    # An unencoded '+' of a time-zone offset arrives as a space: read it back as '+'.
    raw = raw.replace(" ", "+")
    prefix, text = (raw[:2], raw[2:]) if raw[:2].isalpha() else ("eq", raw)
    if prefix not in PREFIXES:
        raise InputError(
            f"date prefix '{prefix}' is not supported on '{name}'"
            + (" (ap is not offered: its width is not defined)" if prefix == "ap" else ""),
            field=name,
            value=raw,
            expected="one of " + ", ".join(PREFIXES),
        )
    span = date_range(text, local_tz=tz, search=True)
    if span is None:
        raise InputError(
            f"'{raw[:64]}' is not a FHIR date for '{name}'",
            field=name,
            value=raw,
            expected="[prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|+hh:mm]]]]",
        )
    return DateValue(prefix, span[0], span[1], text)
