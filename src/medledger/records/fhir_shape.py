"""Check a FHIR JSON resource's shape against the R4B model tree, as a strict FHIR parser does.

The pydantic models in ``fhir.resources`` are lenient where the FHIR JSON format is not: they
coerce ``"yes"`` to a boolean, ``"5"`` to an integer, a Unix timestamp to a dateTime, parse a
JSON *string* as a complex element, accept Python field names (``class_fhir``, ``status__ext``)
and the non-FHIR ``fhir_comments``, and take any string for a code bound to a required value
set. This module walks the raw JSON beside the model metadata and reports each such problem with
the FHIRPath of the element, so that :mod:`medledger.records.fhir_model` can reject it before
(and in addition to) what the model itself checks.
"""

from __future__ import annotations

import contextlib
import math
import re
import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, get_args, get_origin

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, FhirElementOrResourceBase

from medledger.records.fhir_codes import REQUIRED_CODES

__all__ = [
    "MAX_DEPTH",
    "MAX_ISSUES",
    "ModelInfo",
    "check_shape",
    "issue",
    "loc_to_path",
    "model_info",
    "resource_model",
]

# The JSON kind an element's value must have.
BOOLEAN, INTEGER, DECIMAL, STRING, COMPLEX, RESOURCE = range(6)
_KIND_NAMES = ("a JSON boolean", "a JSON integer", "a JSON number", "a JSON string")

MAX_DEPTH = 32
"""Deepest nesting of objects accepted; real resources stay far below it."""
MAX_ISSUES = 50
"""Stop collecting after this many issues: a hostile document must not build a huge answer."""

_RESOURCE_NAME = re.compile(r"[A-Z][A-Za-z]{1,63}")
_ABSTRACT = frozenset({"Resource", "DomainResource"})


@dataclass(frozen=True, slots=True)
class Element:
    """One JSON property a model accepts."""

    name: str
    kind: int
    many: bool
    model: type[FHIRAbstractModel] | None
    codes: frozenset[str] | None
    choice: str | None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The JSON properties of one model class, by JSON name."""

    model: type[FHIRAbstractModel]
    elements: dict[str, Element]
    is_resource: bool
    required: tuple[str, ...]
    """Elements of minimum cardinality 1 (a primitive may be given by its ``_name`` alone)."""
    required_choices: tuple[str, ...]
    """Choice elements ``name[x]`` of minimum cardinality 1, by their stem."""


class _Stop(Exception):
    """Abandon the walk: too many issues, or nesting too deep."""


_INFO: dict[type[FHIRAbstractModel], ModelInfo] = {}
_RESOURCE_MODELS: dict[str, type[FHIRAbstractModel] | None] = {}


def issue(code: str, expression: list[str], diagnostics: str) -> dict[str, Any]:
    """Build one OperationOutcome issue of severity error."""
    return {
        "severity": "error",
        "code": code,
        "diagnostics": diagnostics,
        "expression": expression,
    }


def resource_model(name: object) -> type[FHIRAbstractModel] | None:
    """Return the R4B model class of a concrete resource type name, or None if there is none."""
    if not isinstance(name, str):
        return None
    if name in _RESOURCE_MODELS:
        return _RESOURCE_MODELS[name]
    model: type[FHIRAbstractModel] | None = None
    if _RESOURCE_NAME.fullmatch(name) and name not in _ABSTRACT:
        try:
            found = get_fhir_model_class(name)
        except ValueError:
            found = None
        if found is not None and found.has_resource_base():
            model = found
    if len(_RESOURCE_MODELS) < 512:  # names come from clients: bound the cache
        _RESOURCE_MODELS[name] = model
    return model


def model_info(model: type[FHIRAbstractModel]) -> ModelInfo:
    """Return (and cache) the JSON properties of ``model``."""
    info = _INFO.get(model)
    if info is None:
        info = _build_info(model)
        _INFO[model] = info
    return info


def _build_info(model: type[FHIRAbstractModel]) -> ModelInfo:
    elements: dict[str, Element] = {}
    required: list[str] = []
    required_choices: list[str] = []
    for field_name, field in model.model_fields.items():
        name = field.alias or field_name
        if name == "fhir_comments":  # a library artefact, not a FHIR element
            continue
        kind, many, child = _classify(field.annotation)
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        choice = extra.get("one_of_many")
        if field.is_required() or extra.get("element_required") is True:
            required.append(name)
        required_choice = extra.get("one_of_many_required") is True
        if isinstance(choice, str) and required_choice and choice not in required_choices:
            required_choices.append(choice)
        elements[name] = Element(
            name=name,
            kind=kind,
            many=many,
            model=child,
            codes=REQUIRED_CODES.get((model.__name__, name)),
            choice=choice if isinstance(choice, str) else None,
        )
    return ModelInfo(
        model=model,
        elements=elements,
        is_resource=model.has_resource_base(),
        required=tuple(required),
        required_choices=tuple(required_choices),
    )


def _classify(annotation: Any) -> tuple[int, bool, type[FHIRAbstractModel] | None]:
    """Return (kind, is_array, child model) for a field annotation of the R4B models."""
    many = False
    while True:
        origin = get_origin(annotation)
        if origin is typing.Union or origin is types.UnionType:
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return STRING, many, None  # a union of string-based primitives
            annotation = args[0]
        elif origin is list:
            many = True
            annotation = get_args(annotation)[0]
        else:
            break
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if annotation is bool:
        return BOOLEAN, many, None
    if annotation is int:
        return INTEGER, many, None
    if annotation is Decimal:
        return DECIMAL, many, None
    if isinstance(annotation, type) and issubclass(annotation, FhirBase):
        if issubclass(annotation, FhirElementOrResourceBase):
            return RESOURCE, many, None
        return COMPLEX, many, annotation.get_model_klass()
    return STRING, many, None


def check_shape(
    obj: dict[str, Any], model: type[FHIRAbstractModel], root: str
) -> list[dict[str, Any]]:
    """Return the shape issues of resource ``obj`` (empty when the JSON is well formed)."""
    out: list[dict[str, Any]] = []
    with contextlib.suppress(_Stop):
        _object(obj, model_info(model), root, out, 0)
    return out


def _add(out: list[dict[str, Any]], code: str, path: str, text: str) -> None:
    out.append(issue(code, [path], f"{path}: {text}"))
    if len(out) >= MAX_ISSUES:
        raise _Stop


def _object(
    node: dict[str, Any], info: ModelInfo, path: str, out: list[dict[str, Any]], depth: int
) -> None:
    if depth > MAX_DEPTH:
        _add(out, "structure", path, f"elements are nested deeper than {MAX_DEPTH} levels")
        raise _Stop
    if not node:
        _add(out, "structure", path, "an element must not be empty (ele-1)")
        return
    elements = info.elements
    chosen: dict[str, list[str]] | None = None
    for key, value in node.items():
        element = elements.get(key)
        if element is None:
            if key == "resourceType" and info.is_resource:
                continue
            shown = key if len(str(key)) <= 64 else f"{str(key)[:64]}…"  # hostile keys can be long
            _add(out, "structure", f"{path}.{shown}", f"unknown element '{shown}'")
            continue
        if element.choice is not None:
            chosen = chosen if chosen is not None else {}
            chosen.setdefault(element.choice, []).append(key)
        sub = f"{path}.{key}"
        if value is None:
            _add(out, "structure", sub, "null is not allowed here")
        elif element.many:
            if type(value) is not list:
                _add(out, "structure", sub, "must be a JSON array")
                continue
            if not value:
                _add(out, "structure", sub, "an array must not be empty")
                continue
            # In primitive arrays a null lines a value up with its '_name' extension sibling.
            nulls_ok = key[0] == "_" or (element.kind < COMPLEX and f"_{key}" in node)
            for index, item in enumerate(value):
                if item is None:
                    if not nulls_ok:
                        _add(out, "structure", f"{sub}[{index}]", "null is not allowed here")
                else:
                    _value(element, item, f"{sub}[{index}]", out, depth)
        elif type(value) is list:
            _add(out, "structure", sub, "must be a single value, not an array")
        else:
            _value(element, value, sub, out, depth)
    for name in info.required:
        if name not in node and f"_{name}" not in node:
            _add(out, "required", f"{path}.{name}", f"element '{name}' is required")
    for prefix in info.required_choices:
        if chosen is None or prefix not in chosen:
            _add(
                out, "required", f"{path}.{prefix}", f"one of the {prefix}[x] elements is required"
            )
    if chosen is not None:
        for prefix, names in chosen.items():
            if len(names) > 1:
                listed = ", ".join(names)
                out.append(
                    issue(
                        "structure",
                        [f"{path}.{name}" for name in names],
                        f"{path}: only one of {listed} may be present ({prefix}[x])",
                    )
                )


def _value(element: Element, value: Any, path: str, out: list[dict[str, Any]], depth: int) -> None:
    kind = element.kind
    vtype = type(value)
    if kind == STRING:
        if vtype is not str:
            _add(out, "structure", path, "must be a JSON string")
        elif element.codes is not None and value not in element.codes:
            allowed = " | ".join(sorted(element.codes))
            shown = value if len(value) <= 64 else value[:64] + "…"
            _add(out, "code-invalid", path, f"'{shown}' is not one of {allowed}")
    elif kind == COMPLEX:
        if vtype is not dict:
            _add(out, "structure", path, "must be a JSON object")
        else:
            assert element.model is not None
            _object(value, model_info(element.model), path, out, depth + 1)
    elif kind == RESOURCE:
        _contained(value, path, out, depth)
    elif kind == BOOLEAN:
        if vtype is not bool:
            _add(out, "structure", path, "must be a JSON boolean (true or false)")
    elif kind == INTEGER:
        if vtype is not int:
            _add(out, "structure", path, "must be a JSON integer")
    elif vtype is float:
        if not math.isfinite(value):
            _add(out, "value", path, "must be a finite number")
    elif vtype is not int:
        _add(out, "structure", path, "must be a JSON number")


def _contained(value: Any, path: str, out: list[dict[str, Any]], depth: int) -> None:
    if type(value) is not dict:
        _add(out, "structure", path, "must be a JSON object holding a resource")
        return
    name = value.get("resourceType")
    if not isinstance(name, str):
        _add(out, "structure", f"{path}.resourceType", "a contained resource needs a resourceType")
        return
    model = resource_model(name)
    if model is None:
        shown = name if len(name) <= 64 else name[:64] + "…"
        _add(out, "not-supported", f"{path}.resourceType", f"unknown resource type '{shown}'")
        return
    _object(value, model_info(model), path, out, depth + 1)


def loc_to_path(
    model: type[FHIRAbstractModel], obj: Any, loc: tuple[int | str, ...], root: str
) -> tuple[str, ModelInfo | None]:
    """Translate a pydantic error location into a FHIRPath below ``root``.

    Return the path and the model info of the object it ends on (None if it ends on a
    primitive). Library-internal segments ('root', union tags) are dropped; the path stops at
    the deepest element the model knows.
    """
    info: ModelInfo | None = model_info(model)
    node: Any = obj
    element: Element | None = None
    path = root
    for seg in loc:
        if isinstance(seg, int):
            if element is None or not element.many:
                break
            path += f"[{seg}]"
            node = node[seg] if isinstance(node, list) and 0 <= seg < len(node) else None
            if element.kind == RESOURCE:
                found = resource_model(node.get("resourceType")) if isinstance(node, dict) else None
                info = model_info(found) if found is not None else None
            element = None
            continue
        if seg == "root":
            continue
        found_element = info.elements.get(seg) if info is not None else None
        if found_element is None:
            break
        element = found_element
        path += f".{seg}"
        node = node.get(seg) if isinstance(node, dict) else None
        info = model_info(element.model) if element.model is not None else None
    return path, info
