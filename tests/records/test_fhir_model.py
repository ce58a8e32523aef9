"""FHIR resource validation: valid data passes untouched, every problem is named by its path."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medledger.errors import (
    EntryTooLarge,
    Gone,
    InputError,
    MedLedgerError,
    NotFound,
    PreconditionFailed,
    ProofInvalid,
    ResourceInvalid,
    StateError,
    StorageError,
    UnknownResourceType,
    VerificationFailed,
)
from medledger.records.fhir_codes import REQUIRED_CODES
from medledger.records.fhir_model import (
    SUPPORTED_TYPES,
    operation_outcome,
    outcome_for,
    validate_resource,
)
from medledger.records.fhir_shape import MAX_ISSUES, model_info, resource_model
from medledger.samples.fhir import clinical_set

OBS: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}], "text": "葡萄糖"},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-11-22T08:30:00+08:00",
    "valueQuantity": {"value": 5.6, "unit": "mmol/L", "system": "http://unitsofmeasure.org"},
}


def _issues(resource: Any, **kwargs: Any) -> list[tuple[str, list[str]]]:
    with pytest.raises(ResourceInvalid) as caught:
        validate_resource(resource, **kwargs)
    return [(i["code"], i["expression"]) for i in caught.value.issues]


def _obs(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(OBS)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def test_supported_types_are_the_sixteen() -> None:
    """The server serves exactly the 16 agreed resource types, each with an R4B model."""
    assert len(SUPPORTED_TYPES) == len(set(SUPPORTED_TYPES)) == 16
    assert all(resource_model(t) is not None for t in SUPPORTED_TYPES)


@pytest.mark.parametrize("seed", range(12))
def test_realistic_samples_of_every_type_pass_unchanged(seed: int) -> None:
    """Generated hospital data of all 15 clinical types validates and comes back unchanged."""
    resources = clinical_set(seed)
    # A Subscription is registered by a system, not part of a clinical episode.
    assert {r["resourceType"] for r in resources} == set(SUPPORTED_TYPES) - {"Subscription"}
    for resource in resources:
        before = copy.deepcopy(resource)
        assert validate_resource(resource, expected_type=resource["resourceType"]) is resource
        assert resource == before


def test_samples_cover_final_amended_and_entered_in_error_reports() -> None:
    """The generator yields reports in each status a lab sends."""
    statuses = {
        r["status"]
        for seed in range(30)
        for r in clinical_set(seed)
        if r["resourceType"] == "DiagnosticReport"
    }
    assert statuses == {"final", "amended", "entered-in-error"}


def test_valid_resource_keeps_key_order_and_number_form() -> None:
    """The returned dict serialises to the very bytes the client sent."""
    text = json.dumps(_obs(valueQuantity={"value": 5.60, "unit": "mmol/L"}), ensure_ascii=False)
    assert json.dumps(validate_resource(json.loads(text)), ensure_ascii=False) == text


INVALID: list[tuple[str, dict[str, Any], str, list[str]]] = [
    ("no status", _obs(status=None), "required", ["Observation.status"]),
    ("no code", _obs(code=None), "required", ["Observation.code"]),
    ("unknown element", _obs(colour="red"), "structure", ["Observation.colour"]),
    (
        "unknown nested element",
        _obs(code={"coding": [{"system": "http://loinc.org", "cod": "1"}]}),
        "structure",
        ["Observation.code.coding[0].cod"],
    ),
    ("bad status code", _obs(status="done"), "code-invalid", ["Observation.status"]),
    ("bad date", _obs(effectiveDateTime="2026-13-01"), "value", ["Observation.effectiveDateTime"]),
    (
        "dateTime without zone",
        _obs(effectiveDateTime="2026-11-22T08:30:00"),
        "value",
        ["Observation.effectiveDateTime"],
    ),
    (
        "timestamp as dateTime",
        _obs(effectiveDateTime=1764000000),
        "structure",
        ["Observation.effectiveDateTime"],
    ),
    (
        "number as uri",
        _obs(code={"coding": [{"system": 5, "code": "1"}]}),
        "structure",
        ["Observation.code.coding[0].system"],
    ),
    ("string as CodeableConcept", _obs(code="2345-7"), "structure", ["Observation.code"]),
    ("JSON text as object", _obs(code='{"text": "x"}'), "structure", ["Observation.code"]),
    (
        "array for single",
        _obs(subject=[{"reference": "Patient/1"}]),
        "structure",
        ["Observation.subject"],
    ),
    ("object for array", _obs(category={"text": "lab"}), "structure", ["Observation.category"]),
    (
        "string as decimal",
        _obs(valueQuantity={"value": "5.6"}),
        "structure",
        ["Observation.valueQuantity.value"],
    ),
    (
        "boolean as string",
        _obs(valueQuantity=None, valueBoolean="true"),
        "structure",
        ["Observation.valueBoolean"],
    ),
    ("null element", _obs(issued=None) | {"issued": None}, "structure", ["Observation.issued"]),
    ("null in array", _obs(performer=[None]), "structure", ["Observation.performer[0]"]),
    ("empty array", _obs(performer=[]), "structure", ["Observation.performer"]),
    ("empty object", _obs(method={}), "structure", ["Observation.method"]),
    (
        "two choices",
        _obs(valueString="5.6"),
        "structure",
        ["Observation.valueQuantity", "Observation.valueString"],
    ),
    (
        "backbone without code",
        _obs(component=[{"valueString": "x"}]),
        "required",
        ["Observation.component[0].code"],
    ),
    (
        "extension without url",
        _obs(extension=[{"valueString": "x"}]),
        "required",
        ["Observation.extension[0].url"],
    ),
    ("id syntax", _obs(id="obs 1"), "value", ["Observation.id"]),
    (
        "integer overflow",
        _obs(valueQuantity=None, valueInteger=2**31),
        "value",
        ["Observation.valueInteger"],
    ),
    (
        "non-finite decimal",
        _obs(valueQuantity={"value": float("nan")}),
        "value",
        ["Observation.valueQuantity.value"],
    ),
    ("library-only key", _obs(fhir_comments="hi"), "structure", ["Observation.fhir_comments"]),
    ("python field name", _obs(status__ext={"id": "x"}), "structure", ["Observation.status__ext"]),
    (
        "unknown contained type",
        _obs(contained=[{"resourceType": "Robot", "id": "r"}]),
        "not-supported",
        ["Observation.contained[0].resourceType"],
    ),
    (
        "bad code in contained",
        _obs(contained=[{"resourceType": "Patient", "id": "p", "gender": "M"}]),
        "code-invalid",
        ["Observation.contained[0].gender"],
    ),
    (
        "bad comparator",
        _obs(valueQuantity={"value": 1, "comparator": "=="}),
        "code-invalid",
        ["Observation.valueQuantity.comparator"],
    ),
]


@pytest.mark.parametrize(
    ("resource", "code", "expression"),
    [pytest.param(r, c, e, id=name) for name, r, c, e in INVALID],
)
def test_invalid_resource_names_the_element(
    resource: dict[str, Any], code: str, expression: list[str]
) -> None:
    """Each defect is one issue with the exact FHIRPath and FHIR issue type."""
    assert _issues(resource) == [(code, expression)]


def test_other_types_have_their_own_paths() -> None:
    """Paths start at the resource type and follow backbone elements and renamed fields."""
    patient = {"resourceType": "Patient", "gender": "M", "active": "yes"}
    assert _issues(patient) == [
        ("code-invalid", ["Patient.gender"]),
        ("structure", ["Patient.active"]),
    ]
    encounter = {"resourceType": "Encounter", "status": "finished", "class_fhir": {"code": "AMB"}}
    assert ("structure", ["Encounter.class_fhir"]) in _issues(encounter)
    study = {
        "resourceType": "ImagingStudy",
        "status": "available",
        "subject": {"reference": "Patient/1"},
        "numberOfSeries": "1",
        "series": [{"uid": "1.2", "modality": {"code": "CT"}, "instance": [{"uid": "1.2.3"}]}],
    }
    assert _issues(study) == [
        ("structure", ["ImagingStudy.numberOfSeries"]),
        ("required", ["ImagingStudy.series[0].instance[0].sopClass"]),
    ]


def test_every_issue_is_reported_at_once() -> None:
    """Shape issues and model issues of different elements are all listed."""
    found = _issues(_obs(status=None, colour="red", effectiveDateTime="2026-02-30"))
    assert sorted(found) == [
        ("required", ["Observation.status"]),
        ("structure", ["Observation.colour"]),
        ("value", ["Observation.effectiveDateTime"]),
    ]


def test_bundle_entry_path_prefixes_every_expression() -> None:
    """Inside a Bundle the issue points at the entry's element."""
    bad = _obs(code={"coding": [{"system": 1}]})
    found = _issues(bad, path="Bundle.entry[2].resource")
    assert found == [("structure", ["Bundle.entry[2].resource.code.coding[0].system"])]


def test_not_an_object_is_a_structure_error() -> None:
    """A JSON array or string is not a resource."""
    assert _issues([OBS]) == [("structure", ["Resource"])]
    assert _issues("x", path="Bundle.entry[0].resource") == [
        ("structure", ["Bundle.entry[0].resource"])
    ]


@pytest.mark.parametrize("value", [None, 7, "", ["Observation"]])
def test_missing_or_odd_resource_type_is_a_structure_error(value: Any) -> None:
    """resourceType must be present and a non-empty string."""
    resource = _obs(resourceType=value) if value is not None else _obs(resourceType=None)
    assert _issues(resource) == [("structure", ["Resource.resourceType"])]


def test_unsupported_type_names_it_and_lists_supported() -> None:
    """A Bundle or Medication is refused with the list of served types."""
    with pytest.raises(UnknownResourceType) as caught:
        validate_resource({"resourceType": "Medication"})
    assert "Medication" in caught.value.message
    assert all(t in caught.value.message for t in SUPPORTED_TYPES)
    assert caught.value.field == "resourceType"
    with pytest.raises(UnknownResourceType, match="Foo"):
        validate_resource(OBS, expected_type="Foo")
    with pytest.raises(UnknownResourceType) as caught:
        validate_resource({"resourceType": "Bundle"}, path="Bundle.entry[1].resource")
    assert outcome_for(caught.value)["issue"][0]["expression"] == [
        "Bundle.entry[1].resource.resourceType"
    ]


def test_type_must_match_the_url() -> None:
    """POST /Patient with an Observation body is invalid at resourceType."""
    assert _issues(OBS, expected_type="Patient") == [("invalid", ["Observation.resourceType"])]


def test_issue_count_is_capped() -> None:
    """A hostile document with thousands of unknown keys yields a bounded answer."""
    resource = _obs(**{f"x{i}": i for i in range(5000)})
    assert len(_issues(resource)) == MAX_ISSUES


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    """Extensions nested a thousand deep are one structure issue."""
    ext: dict[str, Any] = {"url": "http://x", "valueString": "leaf"}
    for _ in range(1000):
        ext = {"url": "http://x", "extension": [ext]}
    found = _issues(_obs(extension=[ext]))
    assert len(found) == 1
    assert found[0][0] == "structure"


def test_required_code_table_names_real_elements() -> None:
    """Every (class, element) in the required-binding table exists in the R4B models."""
    seen: dict[str, set[str]] = {}

    def walk(info: Any) -> None:
        if info.model.__name__ in seen:
            return
        seen[info.model.__name__] = set(info.elements)
        for element in info.elements.values():
            if element.model is not None:
                walk(model_info(element.model))

    for rtype in SUPPORTED_TYPES:
        model = resource_model(rtype)
        assert model is not None
        walk(model_info(model))
    missing = [key for key in REQUIRED_CODES if key[1] not in seen.get(key[0], set())]
    assert not missing


def test_operation_outcome_envelope_is_pinned() -> None:
    """The OperationOutcome has exactly this shape and is a valid R4 resource."""
    issue = {
        "severity": "error",
        "code": "required",
        "diagnostics": "Observation.status: required",
        "expression": ["Observation.status"],
    }
    outcome = operation_outcome([issue])
    assert outcome == {"resourceType": "OperationOutcome", "issue": [issue]}
    OperationOutcome.model_validate(outcome)
    assert operation_outcome([]) == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": "ok"}],
    }


def test_outcome_for_resource_invalid_carries_its_issues() -> None:
    """A validation failure answers with every issue of the resource."""
    with pytest.raises(ResourceInvalid) as caught:
        validate_resource(_obs(status="x", colour=1))
    outcome = outcome_for(caught.value)
    assert [i["expression"] for i in outcome["issue"]] == [
        ["Observation.status"],
        ["Observation.colour"],
    ]
    OperationOutcome.model_validate(outcome)


@pytest.mark.parametrize(
    ("error", "code", "expression"),
    [
        (NotFound("no such resource", field="id"), "not-found", ["id"]),
        (UnknownResourceType("no Foo", field="resourceType"), "not-supported", ["resourceType"]),
        (EntryTooLarge("too big"), "too-long", None),
        (PreconditionFailed("version moved"), "conflict", None),
        (Gone("erased"), "deleted", None),
        (StateError("busy"), "conflict", None),
        (InputError("bad _count", field="_count", value="0"), "invalid", ["_count"]),
        (ProofInvalid("bad proof", check="inclusion"), "invalid", None),
        (VerificationFailed("bad", check="x"), "invalid", None),
        (StorageError("disk full"), "transient", None),
        (MedLedgerError("boom"), "exception", None),
    ],
)
def test_outcome_for_maps_each_error(
    error: MedLedgerError, code: str, expression: list[str] | None
) -> None:
    """Every error class answers with one issue of the mapped type and its message."""
    outcome = outcome_for(error)
    expected: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": error.message}
    if expression:
        expected["expression"] = expression
    assert outcome == {"resourceType": "OperationOutcome", "issue": [expected]}
    OperationOutcome.model_validate(outcome)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def fhirish(draw: st.DrawFn) -> dict[str, Any]:
    """A resource of a supported type whose elements hold arbitrary JSON."""
    rtype = draw(st.sampled_from(SUPPORTED_TYPES))
    model = resource_model(rtype)
    assert model is not None
    names = sorted(model_info(model).elements)
    body = draw(st.dictionaries(st.sampled_from(names), JSON, max_size=6))
    return {"resourceType": rtype, **body}


@st.composite
def mutated_sample(draw: st.DrawFn) -> dict[str, Any]:
    """A realistic resource with one subtree replaced by arbitrary JSON."""
    resource = copy.deepcopy(draw(st.sampled_from(clinical_set(7))))
    node: Any = resource
    for _ in range(draw(st.integers(0, 4))):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        if draw(st.booleans()) or not isinstance(node[key], (dict, list)):
            node[key] = draw(JSON)
            break
        node = node[key]
    return resource


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(JSON, fhirish(), mutated_sample()))
def test_arbitrary_json_raises_only_our_errors(obj: Any) -> None:
    """Whatever is thrown at it, validation returns or raises a MedLedgerError, nothing else."""
    try:
        assert validate_resource(obj) is obj
    except MedLedgerError as exc:
        outcome = outcome_for(exc)
        assert outcome["issue"]
        json.dumps(outcome)
