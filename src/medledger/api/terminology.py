"""Dictionaries and mappings over HTTP: FHIR ``ConceptMap/$translate`` and native table routes.

- ``GET|POST /fhir/R4/ConceptMap/$translate``: R4 ``$translate`` (GET: query parameters, POST:
  a Parameters resource) over the ConceptMaps the caller may read; answers Parameters.
- ``PUT|GET /api/v1/interop/dictionaries/{institution}``: import (CSV or XLSX body) or export
  (``?format=csv|xlsx&lang=zh|en``) an institution's dictionary (基础字典).
- ``PUT|GET /api/v1/interop/mappings/{source}/{target}``: the same for a mapping (字典对照),
  and ``GET …/suggestions?limit=3&cutoff=60`` proposes targets for its unmapped source items.

Every read and write goes through the caller's guard. The $translate route must come before
the FHIR router's ``/fhir/R4/{rtype}/{rid}``: include this router first.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from medledger.api.bodies import read_body
from medledger.api.errors import FHIR_JSON
from medledger.api.fhir import guard_of
from medledger.crypto.canonical import parse_json_object
from medledger.errors import InputError, MalformedDocument
from medledger.interop.dictionaries import (
    DictionaryService,
    TranslateQuery,
    dictionary_id,
    mapping_id,
)
from medledger.interop.model import Coded
from medledger.interop.terminology import (
    Suggestion,
    read_dictionary,
    read_mappings,
    write_dictionary,
    write_mappings,
)
from medledger.records.service import RecordService

__all__ = ["CSV", "TRANSLATE", "XLSX", "router", "suggestions_json"]

TRANSLATE = "/fhir/R4/ConceptMap/$translate"
NATIVE = "/api/v1/interop"
CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_LIMIT = 50
_FHIR_TYPES = ("application/fhir+json", "application/json")
_URI = ("valueUri", "valueCanonical", "valueUrl", "valueString")
_VALUE_TYPES: dict[str, tuple[str, ...]] = {
    "url": _URI,
    "system": _URI,
    "target": _URI,
    "targetsystem": _URI,
    "code": ("valueCode", "valueString"),
    "coding": ("valueCoding",),
    "codeableConcept": ("valueCodeableConcept",),
    "reverse": ("valueBoolean",),
    "conceptMap": ("resource",),
}
"""The R4 $translate parameters served here, with the value[x] each may carry."""
_POST_ONLY = frozenset({"coding", "codeableConcept", "conceptMap"})
_Format = Literal["csv", "xlsx"]
_Language = Literal["zh", "en"]


def router(
    service: RecordService, *, max_body: int, dictionaries: DictionaryService | None = None
) -> APIRouter:
    """Build the routes over ``service`` (``dictionaries``: a shared DictionaryService)."""
    dicts = dictionaries or DictionaryService(service, listen=False)
    r = APIRouter(tags=["terminology"])

    async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run blocking work (reads decrypt whole dictionaries; writes wait for a block)."""
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))

    @r.get(TRANSLATE)
    async def translate_get(request: Request) -> JSONResponse:
        """R4 ``ConceptMap/$translate`` with query parameters (system and code)."""
        query = query_of_get(list(request.query_params.multi_items()))
        params = await run(dicts.translate, query, guard=guard_of(request))
        return JSONResponse(params, media_type=FHIR_JSON)

    @r.post(TRANSLATE)
    async def translate_post(request: Request) -> JSONResponse:
        """R4 ``ConceptMap/$translate`` with a Parameters resource."""
        raw = await read_body(request, max_body, _FHIR_TYPES)
        body = parse_json_object(raw, field="body", error=MalformedDocument)
        params = await run(dicts.translate, query_of_parameters(body), guard=guard_of(request))
        return JSONResponse(params, media_type=FHIR_JSON)

    @r.put(NATIVE + "/dictionaries/{institution}")
    async def put_dictionary(institution: str, request: Request) -> JSONResponse:
        """Import a dictionary table: stored as the institution's CodeSystem (all or nothing)."""
        dictionary_id(institution)
        raw, fmt, encoding = await _table(request, max_body)
        items = await run(read_dictionary, raw, format=fmt, encoding=encoding)
        stored = await run(dicts.save_dictionary, institution, items, guard=guard_of(request))
        return JSONResponse(stored.summary(), status_code=201 if stored.created else 200)

    @r.get(NATIVE + "/dictionaries/{institution}")
    async def get_dictionary(
        institution: str, request: Request, format: str = "csv", lang: str = "zh"
    ) -> Response:
        """Export the institution's dictionary as CSV (UTF-8 with BOM) or XLSX."""
        fmt: _Format = _choice(format, "format", ("csv", "xlsx"))
        language: _Language = _choice(lang, "lang", ("zh", "en"))
        items = await run(dicts.dictionary_items, institution, guard=guard_of(request))
        data = await run(write_dictionary, items, format=fmt, language=language)
        return _download(data, fmt, dictionary_id(institution))

    @r.put(NATIVE + "/mappings/{source}/{target}")
    async def put_mapping(source: str, target: str, request: Request) -> JSONResponse:
        """Import a mapping table: stored as the ConceptMap source → target (all or nothing)."""
        mapping_id(source, target)
        raw, fmt, encoding = await _table(request, max_body)
        pairs = await run(read_mappings, raw, format=fmt, encoding=encoding)
        stored = await run(dicts.save_mapping, source, target, pairs, guard=guard_of(request))
        return JSONResponse(stored.summary(), status_code=201 if stored.created else 200)

    @r.get(NATIVE + "/mappings/{source}/{target}")
    async def get_mapping(
        source: str, target: str, request: Request, format: str = "csv", lang: str = "zh"
    ) -> Response:
        """Export the mapping source → target as CSV (UTF-8 with BOM) or XLSX."""
        fmt: _Format = _choice(format, "format", ("csv", "xlsx"))
        language: _Language = _choice(lang, "lang", ("zh", "en"))
        pairs = await run(dicts.mapping_pairs, source, target, guard=guard_of(request))
        data = await run(write_mappings, pairs, format=fmt, language=language)
        return _download(data, fmt, mapping_id(source, target))

    @r.get(NATIVE + "/mappings/{source}/{target}/suggestions")
    async def suggestions(
        source: str, target: str, request: Request, limit: str = "3", cutoff: str = "60"
    ) -> JSONResponse:
        """Suggest central items for each source item the mapping does not cover yet."""
        count = _number(limit, "limit", 1, MAX_LIMIT, whole=True)
        floor = _number(cutoff, "cutoff", 0, 100, whole=False)
        found = await run(
            dicts.suggestions,
            source,
            target,
            limit=int(count),
            cutoff=floor,
            guard=guard_of(request),
        )
        return JSONResponse(
            {"source": source, "target": target, "suggestions": suggestions_json(found)}
        )

    return r


def suggestions_json(found: list[Suggestion]) -> list[dict[str, Any]]:
    """Suggestions as JSON: each source item with its ranked candidates, scores and reasons."""
    return [
        {
            "code": s.source.code,
            "display": s.source.display,
            "kind": s.source.kind,
            "candidates": [
                {
                    "code": c.target.code,
                    "display": c.target.display,
                    "score": c.score,
                    "reason": c.reason,
                    "basis": c.basis,
                }
                for c in s.candidates
            ],
        }
        for s in found
    ]


def query_of_get(params: list[tuple[str, str]]) -> TranslateQuery:
    """Read ``$translate`` query parameters (``_format`` and other ``_`` names are ignored)."""
    seen: dict[str, str] = {}
    for name, value in params:
        if name.startswith("_"):
            continue
        if name in _POST_ONLY:
            raise InputError(
                f"{name}: a {name} cannot be sent as a query parameter",
                field=name,
                value=value,
                expected=f"POST a Parameters resource with {name}, or use system and code",
            )
        _known(name, value, name)
        if name in seen:
            raise InputError(
                f"{name}: given twice", field=name, value=value, expected=f"one {name}"
            )
        seen[name] = value
    reverse = seen.get("reverse", "false")
    if reverse not in ("true", "false"):
        raise InputError(
            "reverse: expected true or false", field="reverse", value=reverse, expected="true|false"
        )
    forms = ["code"] if "code" in seen else []
    return _query(seen, [], None, reverse == "true", forms)


def query_of_parameters(body: dict[str, Any]) -> TranslateQuery:
    """Read a ``$translate`` Parameters resource; errors name ``Parameters.parameter[i]``."""
    if body.get("resourceType") != "Parameters":
        raise InputError(
            "body: expected a Parameters resource",
            field="resourceType",
            value=body.get("resourceType"),
            expected="Parameters",
        )
    listed = body.get("parameter", [])
    if not isinstance(listed, list):
        raise InputError(
            "Parameters.parameter: expected a list",
            field="Parameters.parameter",
            value=type(listed).__name__,
            expected="a list of parameters",
        )
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    for index, param in enumerate(listed):
        path = f"Parameters.parameter[{index}]"
        if not isinstance(param, dict) or not isinstance(param.get("name"), str):
            raise InputError(
                f"{path}: expected a parameter with a name",
                field=f"{path}.name",
                value=param.get("name") if isinstance(param, dict) else type(param).__name__,
                expected="a parameter object with a name",
            )
        name = param["name"]
        _known(name, name, f"{path}.name")
        keys = [k for k in param if k.startswith("value") or k == "resource"]
        if len(keys) != 1 or keys[0] not in _VALUE_TYPES[name]:
            raise InputError(
                f"{path}: {name} carries {', '.join(keys) or 'no value'}",
                field=path,
                value=keys,
                expected=f"one of {', '.join(_VALUE_TYPES[name])}",
            )
        if name in values:
            raise InputError(
                f"{path}: {name} is given twice", field=path, value=name, expected=f"one {name}"
            )
        values[name], where[name] = param[keys[0]], f"{path}.{keys[0]}"
    texts = {n: _text(v, where[n]) for n, v in values.items() if n not in _POST_ONLY}
    codings: list[Coded] = []
    if "coding" in values:
        codings.append(_coding(values["coding"], where["coding"]))
    if "codeableConcept" in values:
        concept, path = values["codeableConcept"], where["codeableConcept"]
        listed = concept.get("coding") if isinstance(concept, dict) else None
        if not isinstance(listed, list) or not listed:
            raise InputError(
                f"{path}.coding: expected at least one coding",
                field=f"{path}.coding",
                value=listed,
                expected="a CodeableConcept with codings",
            )
        codings += [_coding(c, f"{path}.coding[{i}]") for i, c in enumerate(listed)]
    conceptmap = values.get("conceptMap")
    if conceptmap is not None and not isinstance(conceptmap, dict):
        raise InputError(
            "conceptMap: expected a ConceptMap resource",
            field=where["conceptMap"],
            value=type(conceptmap).__name__,
            expected="a ConceptMap",
        )
    forms = [n for n in ("code", "coding", "codeableConcept") if n in values]
    reverse = texts.pop("reverse", False) is True
    return _query(texts, codings, conceptmap, reverse, forms)


def _known(name: object, value: object, field: str) -> None:
    """Refuse a parameter this server does not serve (e.g. ``dependency``)."""
    if name not in _VALUE_TYPES:
        raise InputError(
            f"{field}: $translate parameter {name!r} is not supported",
            field=field,
            value=value,
            expected="one of " + ", ".join(_VALUE_TYPES),
        )


def _text(value: object, field: str) -> Any:
    """Return ``value`` if it is a non-empty string (or, for ``valueBoolean``, a boolean)."""
    if field.endswith(".valueBoolean"):
        if not isinstance(value, bool):
            raise InputError(
                f"{field}: expected true or false", field=field, value=value, expected="a boolean"
            )
        return value
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{field}: expected text", field=field, value=value, expected="text")
    return value


def _coding(value: object, field: str) -> Coded:
    """Read a Coding with a system and a code."""
    if not isinstance(value, dict):
        raise InputError(
            f"{field}: expected a Coding", field=field, value=value, expected="a Coding"
        )
    return Coded(
        _text(value.get("system"), f"{field}.system"), _text(value.get("code"), f"{field}.code")
    )


def _query(
    texts: dict[str, str],
    codings: list[Coded],
    conceptmap: dict[str, Any] | None,
    reverse: bool,
    forms: Sequence[str],
) -> TranslateQuery:
    """Check that exactly one way of naming the code was used, and build the query."""
    system, code = texts.get("system"), texts.get("code")
    if len(forms) != 1:
        raise InputError(
            f"code: give exactly one of system+code, coding or codeableConcept, not {forms}",
            field="code",
            value=forms,
            expected="system and code, or coding, or codeableConcept",
        )
    if (system is None) != (code is None):
        missing = "system" if system is None else "code"
        raise InputError(
            f"{missing}: system and code go together",
            field=missing,
            value=None,
            expected=f"the {missing} as well",
        )
    if system is not None and code is not None:
        codings = [Coded(system, code)]
    return TranslateQuery(
        codings=tuple(codings),
        url=texts.get("url"),
        conceptmap=conceptmap,
        target=texts.get("target"),
        target_system=texts.get("targetsystem"),
        reverse=reverse,
    )


async def _table(request: Request, max_body: int) -> tuple[bytes, _Format, str | None]:
    """The body of a table upload, its format, and the CSV charset the client declared."""
    raw = await read_body(request, max_body, (CSV, XLSX))
    ctype, *params = request.headers.get("content-type", "").split(";")
    charset = None
    for param in params:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset":
            charset = value.strip().strip('"') or None
    fmt: _Format = "xlsx" if ctype.strip().lower() == XLSX else "csv"
    return raw, fmt, charset if fmt == "csv" else None


def _choice(value: str, field: str, choices: tuple[str, ...]) -> Any:
    """Return ``value`` if it is one of ``choices`` (``?format=``, ``?lang=``)."""
    if value not in choices:
        raise InputError(
            f"{field}: {value!r} is not offered",
            field=field,
            value=value,
            expected=" or ".join(choices),
        )
    return value


def _number(raw: str, field: str, low: float, high: float, *, whole: bool) -> float:
    """Read a query number within ``low``..``high`` (a whole number if ``whole``)."""
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise InputError(
            f"{field}: expected {kind} from {low:g} to {high:g}",
            field=field,
            value=raw,
            expected=f"{kind} from {low:g} to {high:g}",
        )
    return value


def _download(data: bytes, fmt: str, name: str) -> Response:
    """A table as a download named after its record id."""
    media = f"{CSV}; charset=utf-8" if fmt == "csv" else XLSX
    headers = {"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
    return Response(content=data, media_type=media, headers=headers)
