"""Validate FHIR R4 resources and speak errors as OperationOutcome.

Validation runs in two passes over the JSON the client sent:

1. a strict shape pass (:mod:`medledger.records.fhir_shape`): unknown elements, wrong JSON
   types, nulls, empty arrays and objects, two choices of one ``[x]`` element, codes outside a
   required binding;
2. the ``fhir.resources`` R4B pydantic model: cardinality, required elements, primitive syntax
   (dates, ids, URIs, decimals), integer ranges.

Every problem becomes an OperationOutcome issue whose ``expression`` is the FHIRPath of the
element, e.g. ``Observation.code.coding[0].system``. The resource itself is returned as given:
the stored bytes must be what the client sent, never a re-serialisation through the model.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from medledger.errors import (
    AuthenticationFailed,
    EntryTooLarge,
    Gone,
    InputError,
    MedLedgerError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ResourceInvalid,
    StateError,
    StorageError,
    TokenInvalid,
    UnknownResourceType,
    VerificationFailed,
)
from medledger.records.fhir_shape import (
    MAX_ISSUES,
    check_shape,
    issue,
    loc_to_path,
    resource_model,
)

__all__ = [
    "SUPPORTED_TYPES",
    "operation_outcome",
    "outcome_for",
    "validate_resource",
]

SUPPORTED_TYPES: tuple[str, ...] = (
    "Patient",
    "Practitioner",
    "Organization",
    "Encounter",
    "ServiceRequest",
    "Specimen",
    "Observation",
    "DiagnosticReport",
    "ImagingStudy",
    "DocumentReference",
    "Consent",
    "Provenance",
    "CodeSystem",
    "ValueSet",
    "ConceptMap",
    "Subscription",
)
_SUPPORTED = frozenset(SUPPORTED_TYPES)
_MODELS = {name: resource_model(name) for name in SUPPORTED_TYPES}

# Issue type of each of our errors, most specific class first (the MRO decides).
_ISSUE_CODES: dict[type[MedLedgerError], str] = {
    NotFound: "not-found",
    UnknownResourceType: "not-supported",
    EntryTooLarge: "too-long",
    PreconditionFailed: "conflict",
    Gone: "deleted",
    StateError: "conflict",
    InputError: "invalid",
    VerificationFailed: "invalid",
    StorageError: "transient",
    PermissionDenied: "forbidden",
    AuthenticationFailed: "login",
    TokenInvalid: "login",
}

_STRUCTURE_TYPES = frozenset(
    {"extra_forbidden", "json_invalid", "json_type", "model_validation_format", "is_instance_of"}
)
_REQUIRED_TYPES = frozenset({"missing", "model_field_validation.missing"})
_CHOICE_LIST = re.compile(r"from this list \[([^\]]*)\]")
_SPACES = re.compile(r"\s+")


def validate_resource(
    obj: Any, *, expected_type: str | None = None, path: str | None = None
) -> dict[str, Any]:
    """Validate ``obj`` as a FHIR R4 resource of a supported type and return it unchanged.

    ``expected_type`` is the type the URL names (a mismatch is an error); ``path`` is the
    FHIRPath of the resource inside a larger document (``"Bundle.entry[3].resource"``) and
    prefixes every issue expression. Raise ``ResourceInvalid`` listing every issue,
    ``UnknownResourceType`` for a type this server does not serve.
    """
    if expected_type is not None and expected_type not in _SUPPORTED:
        raise _unknown_type(expected_type)
    if type(obj) is not dict:
        where = path or expected_type or "Resource"
        raise ResourceInvalid(
            f"{where}: a resource must be a JSON object",
            issues=[issue("structure", [where], f"{where}: a resource must be a JSON object")],
        )
    rtype = obj.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        where = f"{path or expected_type or 'Resource'}.resourceType"
        text = f"{where}: a resource needs a resourceType string"
        raise ResourceInvalid(text, issues=[issue("structure", [where], text)])
    if rtype not in _SUPPORTED:
        raise _unknown_type(rtype, f"{path}.resourceType" if path else "resourceType")
    root = path or rtype
    if expected_type is not None and rtype != expected_type:
        where = f"{root}.resourceType"
        text = f"{where}: expected a {expected_type} resource, got {rtype}"
        raise ResourceInvalid(text, issues=[issue("invalid", [where], text)])
    model = _MODELS[rtype]
    assert model is not None
    issues = check_shape(obj, model, root)
    if len(issues) < MAX_ISSUES and not _too_deep(issues):
        issues = _merge(issues, _model_issues(model, obj, root))
    if issues:
        issues = issues[:MAX_ISSUES]
        first = issues[0]["diagnostics"]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        raise ResourceInvalid(f"invalid {rtype}: {first}{more}", issues=issues)
    return obj


def _unknown_type(name: str, field: str = "resourceType") -> UnknownResourceType:
    shown = name if len(name) <= 64 else name[:64] + "…"
    return UnknownResourceType(
        f"resource type '{shown}' is not served here; supported: {', '.join(SUPPORTED_TYPES)}",
        field=field,
        value=name,
        expected="one of " + ", ".join(SUPPORTED_TYPES),
    )


def _too_deep(issues: list[dict[str, Any]]) -> bool:
    return any("nested deeper" in i["diagnostics"] for i in issues)


def _model_issues(model: Any, obj: dict[str, Any], root: str) -> list[dict[str, Any]]:
    """Validate with the R4B model and translate each pydantic error into an issue."""
    try:
        model.model_validate(obj)
    except ValidationError as exc:
        return [_translate(model, obj, root, err) for err in exc.errors(include_url=False)]
    except Exception as exc:  # a library bug (or RecursionError) must not leak as a 500
        text = f"{root}: the resource could not be validated ({type(exc).__name__})"
        return [issue("invalid", [root], text)]
    return []


def _translate(model: Any, obj: dict[str, Any], root: str, err: ErrorDetails) -> dict[str, Any]:
    kind = err["type"]
    message = _SPACES.sub(" ", err["msg"]).removeprefix("Value error, ").strip()
    where, info = loc_to_path(model, obj, tuple(err["loc"]), root)
    if kind in _REQUIRED_TYPES:
        code = "required"
    elif kind in _STRUCTURE_TYPES or kind.endswith("_type") or "Any of one field" in message:
        code = "structure"
    elif "Expect any of field value" in message:
        code = "required"
        names = _CHOICE_LIST.search(message)
        first = names.group(1).split(",")[0].strip(" '\"") if names else ""
        element = info.elements.get(first) if info is not None else None
        if element is not None and element.choice:
            where = f"{where}.{element.choice}"
            message = f"one of {names.group(1) if names else first} is required"
    else:
        code = "value"
    return issue(code, [where], f"{where}: {message}")


def _merge(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add the issues of ``second`` whose element no issue of ``first`` already covers."""
    taken = [e for i in first for e in i["expression"]]
    out = list(first)
    seen = {(i["code"], i["expression"][0]) for i in first}
    for item in second:
        where = item["expression"][0]
        key = (item["code"], where)
        if key in seen or any(_overlaps(where, other) for other in taken):
            continue
        seen.add(key)
        out.append(item)
    return out


def _overlaps(a: str, b: str) -> bool:
    """Tell whether one path is the other or lies inside it."""
    if len(a) > len(b):
        a, b = b, a
    return b == a or (b.startswith(a) and b[len(a)] in ".[")


def operation_outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    """Build an OperationOutcome resource from issue dicts (an empty list means all OK)."""
    if not issues:
        issues = [{"severity": "information", "code": "informational", "diagnostics": "ok"}]
    out = []
    for item in issues:
        entry: dict[str, Any] = {
            "severity": item.get("severity") or "error",
            "code": item.get("code") or "processing",
        }
        if item.get("diagnostics"):
            entry["diagnostics"] = str(item["diagnostics"])
        expression = [str(e) for e in item.get("expression") or [] if e]
        if expression:
            entry["expression"] = expression
        out.append(entry)
    return {"resourceType": "OperationOutcome", "issue": out}


def outcome_for(exc: MedLedgerError) -> dict[str, Any]:
    """Return the OperationOutcome that answers a request which failed with ``exc``."""
    if isinstance(exc, ResourceInvalid) and exc.issues:
        return operation_outcome(exc.issues)
    code = next(
        (_ISSUE_CODES[cls] for cls in type(exc).__mro__ if cls in _ISSUE_CODES), "exception"
    )
    item: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": exc.message}
    field = getattr(exc, "field", None)
    if field:
        item["expression"] = [str(field)]
    return operation_outcome([item])
