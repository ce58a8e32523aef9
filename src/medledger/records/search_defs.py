"""The FHIR R4 search parameters this server supports, per resource type.

Each parameter carries the R4 ``SearchParameter.expression`` it implements (for the
CapabilityStatement and for reviewers), the JSON paths it reads, how a value there becomes
index entries (``source``) and, for references, the resource types it may point to. Where R4
names a type's date parameter otherwise than ``date`` (ImagingStudy ``started``, Specimen
``collected``, Provenance ``recorded``, ServiceRequest ``occurrence``) the R4 name is used, and
so is R4's ``basedon`` spelling on ImagingStudy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medledger.records.fhir_shape import model_info, resource_model

__all__ = ["SEARCH_PARAMS", "ParamDef", "ParamKind"]

ParamKind = Literal["token", "reference", "date", "string"]

ANY_TYPE = ("*",)
"""Reference targets of an element that may point to any resource type."""


@dataclass(frozen=True, slots=True)
class ParamDef:
    """One search parameter of one resource type.

    ``paths`` are dotted JSON element names below the resource; ``name[x]`` is a choice
    element. ``source`` says what the values there are: ``identifier``, ``concept``
    (CodeableConcept), ``code`` (a primitive code), ``id``, ``reference``, ``date``, ``string``,
    ``humanname``, or a type-specific extractor (``codesystem-code``, ``valueset-code``).
    ``only`` keeps references to that type alone (R4's ``where(resolve() is Patient)``).
    """

    name: str
    kind: ParamKind
    expression: str
    paths: tuple[str, ...]
    source: str
    targets: tuple[str, ...] = ()
    only: str | None = None


def _token(name: str, rtype: str, path: str, source: str = "concept") -> ParamDef:
    return ParamDef(name, "token", f"{rtype}.{path}", (path,), source)


def _date(name: str, rtype: str, path: str) -> ParamDef:
    return ParamDef(name, "date", f"{rtype}.{path.removesuffix('[x]')}", (path,), "date")


def _ref(name: str, rtype: str, path: str, targets: tuple[str, ...] = ()) -> ParamDef:
    targets = targets or _reference_targets(rtype, path)
    return ParamDef(name, "reference", f"{rtype}.{path}", (path,), "reference", targets)


def _patient(rtype: str, path: str = "subject") -> ParamDef:
    if path == "patient":
        return ParamDef(
            "patient", "reference", f"{rtype}.patient", (path,), "reference", ("Patient",)
        )
    return ParamDef(
        "patient",
        "reference",
        f"{rtype}.{path}.where(resolve() is Patient)",
        (path,),
        "reference",
        ("Patient",),
        only="Patient",
    )


def _reference_targets(rtype: str, path: str) -> tuple[str, ...]:
    """Read the allowed target types of a Reference element from the R4B model metadata."""
    model = resource_model(rtype)
    *parents, last = path.split(".")
    for name in parents:
        assert model is not None, path
        model = model_info(model).elements[name].model
    assert model is not None, path
    field = next(f for key, f in model.model_fields.items() if (f.alias or key) == last)
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    targets = extra.get("enum_reference_types") or []
    assert isinstance(targets, list), path
    if not targets or "Resource" in targets:
        return ANY_TYPE
    return tuple(str(t) for t in targets)


def _common(rtype: str) -> dict[str, ParamDef]:
    return {
        "_id": ParamDef("_id", "token", "Resource.id", ("id",), "id"),
        "_lastUpdated": ParamDef(
            "_lastUpdated", "date", "Resource.meta.lastUpdated", ("meta.lastUpdated",), "date"
        ),
        "identifier": _token("identifier", rtype, "identifier", "identifier"),
    }


# R4B widened these; R4, which our clients speak, allows only these targets.
_R4_RESULT_SUBJECTS = ("Patient", "Group", "Device", "Location")


def _build() -> dict[str, dict[str, ParamDef]]:
    out: dict[str, dict[str, ParamDef]] = {}

    def add(rtype: str, *defs: ParamDef) -> None:
        table = _common(rtype)
        table.update({d.name: d for d in defs})
        out[rtype] = table

    add(
        "Patient",
        ParamDef("name", "string", "Patient.name", ("name",), "humanname"),
        ParamDef("family", "string", "Patient.name.family", ("name.family",), "string"),
        ParamDef("given", "string", "Patient.name.given", ("name.given",), "string"),
        _date("birthdate", "Patient", "birthDate"),
        _token("gender", "Patient", "gender", "code"),
    )
    add("Practitioner")
    add("Organization")
    add(
        "Encounter",
        _patient("Encounter"),
        _ref("subject", "Encounter", "subject"),
        _token("status", "Encounter", "status", "code"),
        _date("date", "Encounter", "period"),
        _ref("based-on", "Encounter", "basedOn"),
    )
    rt = "ServiceRequest"
    add(
        rt,
        _patient(rt),
        _ref("subject", rt, "subject"),
        _token("code", rt, "code"),
        _token("status", rt, "status", "code"),
        _token("category", rt, "category"),
        _ref("based-on", rt, "basedOn"),
        _ref("specimen", rt, "specimen"),
        _ref("performer", rt, "performer"),
        _ref("requester", rt, "requester"),
        _date("occurrence", rt, "occurrence[x]"),
    )
    add(
        "Specimen",
        _patient("Specimen"),
        _ref("subject", "Specimen", "subject"),
        _token("status", "Specimen", "status", "code"),
        _date("collected", "Specimen", "collection.collected[x]"),
    )
    for rt in ("Observation", "DiagnosticReport"):
        add(
            rt,
            _patient(rt),
            _ref("subject", rt, "subject", _R4_RESULT_SUBJECTS),
            _token("code", rt, "code"),
            _token("status", rt, "status", "code"),
            _token("category", rt, "category"),
            _date("date", rt, "effective[x]"),
            _ref("based-on", rt, "basedOn"),
            _ref("specimen", rt, "specimen"),
            _ref("performer", rt, "performer"),
        )
    rt = "ImagingStudy"
    add(
        rt,
        _patient(rt),
        _ref("subject", rt, "subject"),
        _token("status", rt, "status", "code"),
        _date("started", rt, "started"),
        _ref("basedon", rt, "basedOn"),
        _ref("performer", rt, "series.performer.actor"),
    )
    rt = "DocumentReference"
    add(
        rt,
        ParamDef(
            "identifier",
            "token",
            f"{rt}.masterIdentifier | {rt}.identifier",
            ("masterIdentifier", "identifier"),
            "identifier",
        ),
        _patient(rt),
        _ref("subject", rt, "subject"),
        _token("status", rt, "status", "code"),
        _token("category", rt, "category"),
        _date("date", rt, "date"),
    )
    add(
        "Consent",
        _patient("Consent", "patient"),
        _token("status", "Consent", "status", "code"),
        _token("category", "Consent", "category"),
        _date("date", "Consent", "dateTime"),
    )
    add("Provenance", _patient("Provenance", "target"), _date("recorded", "Provenance", "recorded"))
    del out["Provenance"]["identifier"]  # R4 Provenance has no identifier element
    for rt in ("CodeSystem", "ValueSet", "ConceptMap"):
        add(rt, _token("status", rt, "status", "code"), _date("date", rt, "date"))
    # R4 types ``url`` as a uri parameter; it is matched exactly, as a token of no system.
    add(
        "Subscription",
        _token("status", "Subscription", "status", "code"),
        _token("url", "Subscription", "channel.endpoint", "code"),
        _token("type", "Subscription", "channel.type", "code"),
    )
    del out["Subscription"]["identifier"]  # R4 Subscription has no identifier element
    out["CodeSystem"]["code"] = ParamDef(
        "code", "token", "CodeSystem.concept.code", ("concept",), "codesystem-code"
    )
    out["ValueSet"]["code"] = ParamDef(
        "code",
        "token",
        "ValueSet.expansion.contains.code | ValueSet.compose.include.concept.code",
        ("expansion.contains", "compose.include"),
        "valueset-code",
    )
    return out


SEARCH_PARAMS: dict[str, dict[str, ParamDef]] = _build()
"""Supported search parameters: resource type → parameter name → definition."""
