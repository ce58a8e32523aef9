"""Stored FHIR results read back into the model: result_from_fhir inverts result_bundle."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.errors import InputError, NotFound
from medledger.interop.fhir_read import load_result, result_from_fhir
from medledger.interop.hl7 import read_message, requisition_bundle, result_bundle
from medledger.interop.model import (
    Coded,
    Patient,
    Requisition,
    Result,
    ResultItem,
    Value,
    code_system,
    identifier_system,
)
from medledger.ledger.node import LedgerNode
from medledger.records.bundles import process_bundle
from medledger.records.service import RecordService
from tests.interop.hl7._util import CENTRAL, EAST, SENDERS, sample, sample_results
from tests.interop.hl7.test_roundtrip import results

LOINC = "http://loinc.org"


def fhir_view(res: Result) -> Result:
    """Return ``res`` as the FHIR mapping keeps it (the losses fhir_read's docstring lists).

    Excluded, each for its reason: ``barcode`` and ``extra`` (no FHIR element is written for
    them); an item status ``partial`` (Observation has none: preliminary); the
    order of studies among other links (studies and DocumentReferences are separate lists);
    a study's content type (ImagingStudy has no element) and a non-study link's study UID
    (DocumentReference gets none); the spelling of decimals (JSON numbers, see ``numbers``).
    """
    items = tuple(
        replace(i, status="preliminary" if i.status == "partial" else i.status) for i in res.items
    )
    studies = [replace(x, content_type=None) for x in res.images if x.kind == "wado-rs"]
    others = [replace(x, study_uid=None) for x in res.images if x.kind != "wado-rs"]
    view = replace(res, items=items, images=tuple(studies + others), barcode=None, extra={})
    return numbers(view)


def numbers(res: Result) -> Result:
    """Return ``res`` with every decimal in one canonical spelling (value kept, 5.20 → 5.2)."""

    def canonical(v: Value | None) -> Value | None:
        if v is None or v.number is None:
            return v
        d = Decimal(v.number) + 0  # + 0 turns -0 into 0
        return replace(v, number=format(d.normalize(), "f"))

    return replace(res, items=tuple(replace(i, value=canonical(i.value)) for i in res.items))


def stored(bundle: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Simulate the server: ids ``Type/<n>`` for the urn:uuid full URLs, references resolved,
    the resources round-tripped through JSON; return (report, children, patient)."""
    ids = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{n}"
        for n, e in enumerate(bundle["entry"], start=1)
    }

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: ids[v] if k == "reference" and v in ids else resolve(v) for k, v in node.items()
            }
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    out = []
    for e in bundle["entry"]:
        resource = resolve(e["resource"])
        resource["id"] = ids[e["fullUrl"]].split("/")[1]
        out.append(json.loads(json.dumps(resource)))
    (report,) = [r for r in out if r["resourceType"] == "DiagnosticReport"]
    (patient,) = [r for r in out if r["resourceType"] == "Patient"]
    children = [r for r in out if r["resourceType"] not in ("DiagnosticReport", "Patient")]
    return report, children, patient


def read_back(res: Result, children_order: Any = None) -> Result:
    """Map ``res`` to FHIR, store it in simulation, and read it back."""
    report, children, patient = stored(result_bundle(res, order_ref=None, existing=None))
    if children_order is not None:
        children = children_order(children)
    return result_from_fhir(
        report,
        children,
        patient,
        sender=res.sender,
        placer=res.placer,
        placer_institution=res.placer_institution,
    )


@settings(max_examples=150)
@given(results(), st.randoms(use_true_random=False))
def test_result_bundle_reads_back(res: Result, rnd: Any) -> None:
    """result_from_fhir(stored(result_bundle(r))) == r, but for the documented losses."""

    def shuffle(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rnd.shuffle(children)
        return children

    assert numbers(read_back(res, shuffle)) == fhir_view(res)


def test_ct_report_golden() -> None:
    """The CT sample reads back field by field; the code is the sender's, not a translation."""
    (res,) = sample_results("oru_ct_report")
    translations = {(code_system(CENTRAL), "CT0101"): [Coded(LOINC, "24627-2", "Chest CT")]}
    bundle = result_bundle(res, order_ref=None, existing=None, translations=translations)
    report, children, patient = stored(bundle)
    back = result_from_fhir(
        report, children, patient, sender=CENTRAL, placer="SQ202405010001", placer_institution=EAST
    )
    assert back == replace(res, reason=None, barcode=None)  # nothing else is lost here
    assert back.code == Coded(code_system(CENTRAL), "CT0101", "胸部CT平扫")
    assert (back.findings or "").startswith("双肺纹理增多")
    assert [x.kind for x in back.images] == ["wado-rs", "report-image", "viewer"]
    assert back.images[0].study_uid == "1.2.840.113619.2.55.3.604688119.971.1714528800.1"
    assert back.control_id == "PACS20240501000777"
    assert back.patient == Patient("MZ20240001", "张伟", "male", "1978-03-15", "110101197803150017")


def test_decimals_keep_their_value_and_never_get_an_exponent() -> None:
    """5.20 reads back 5.2, 007 as 7, 0.0000001 as plain 0.0000001 (never 1e-07)."""
    (res,) = sample_results("oru_ct_report")
    code = Coded(code_system(CENTRAL), "X")
    items = tuple(
        ResultItem(code, Value("quantity", number=n, unit="g/L"))
        for n in ("5.20", "007", "0.0000001", "-3")
    )
    back = read_back(replace(res, items=items, images=()))
    assert [i.value.number for i in back.items if i.value] == ["5.2", "7", "0.0000001", "-3"]


def test_unrelated_document_references_are_ignored() -> None:
    """A DocumentReference of another report, or with another identifier, is not a link."""
    (res,) = sample_results("oru_ct_report")
    report, children, patient = stored(result_bundle(res, order_ref=None, existing=None))
    other = copy.deepcopy(next(c for c in children if c["resourceType"] == "DocumentReference"))
    other["id"] = "99"
    other["context"]["related"] = [{"reference": "DiagnosticReport/elsewhere"}]
    unnumbered = copy.deepcopy(other)
    unnumbered["context"]["related"] = [{"reference": f"DiagnosticReport/{report['id']}"}]
    unnumbered["identifier"][0]["value"] = "CT20240501008#link#x"
    back = result_from_fhir(
        report,
        [*children, other, unnumbered],
        patient,
        sender=CENTRAL,
        placer=None,
        placer_institution=None,
    )
    assert len(back.images) == 3


def test_a_logical_subject_gives_the_patient_id_alone() -> None:
    """Without a Patient resource, the subject's logical identifier is the patient id."""
    (res,) = sample_results("oru_ct_report")
    report, children, _ = stored(result_bundle(res, order_ref=None, existing=None))
    report["subject"] = {"identifier": {"system": "urn:x", "value": "MZ20240001"}}
    back = result_from_fhir(
        report, children, None, sender=CENTRAL, placer=None, placer_institution=None
    )
    assert back.patient == Patient("MZ20240001")


def _broken(path: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The stored lab result with one element broken, as ``path`` says."""
    first, _ = sample_results("oru_lab")
    report, children, patient = stored(result_bundle(first, order_ref=None, existing=None))
    if path == "report":
        report = ["not", "a", "report"]  # type: ignore[assignment]
    elif path == "identifier":
        report["identifier"] = []
    elif path == "result":
        children = children[1:]
    elif path == "quantity":
        children[0]["valueQuantity"]["value"] = "11.2"
    elif path == "status":
        report["status"] = "done"
    elif path == "patient":
        patient["identifier"] = [{"system": "urn:x", "value": "1"}]
    elif path == "category":
        report["category"] = [{"text": "检验"}]
    return report, children, patient


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("report", "DiagnosticReport"),
        ("identifier", "DiagnosticReport.identifier"),
        ("result", "DiagnosticReport.result[0].reference"),
        ("quantity", "DiagnosticReport.result[0].valueQuantity.value"),
        ("status", "DiagnosticReport.status"),
        ("patient", "Patient.identifier"),
        ("category", "DiagnosticReport.category"),
    ],
)
def test_malformed_resources_are_input_errors_naming_the_element(path: str, field: str) -> None:
    """Each malformed element raises InputError whose field names it."""
    report, children, patient = _broken(path)
    with pytest.raises(InputError) as info:
        result_from_fhir(
            report, children, patient, sender=CENTRAL, placer=None, placer_institution=None
        )
    assert info.value.field == field, info.value.to_dict()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RecordService]:
    """A real records service over a fresh SQLite ledger of the central hospital."""
    node = LedgerNode.init(tmp_path / "d", node=CENTRAL, block_max_wait_ms=1)
    svc = RecordService.open(node)
    try:
        yield svc
    finally:
        node.close()


def store_order(service: RecordService, name: str) -> dict[str, str]:
    """Store the requisition sample ``name``; return placer number → ServiceRequest ref."""
    req = read_message(sample(name), SENDERS)
    assert isinstance(req, Requisition)
    process_bundle(service, requisition_bundle(req))
    out = {}
    for item in req.items:
        token = f"{identifier_system(req.sender, 'placer')}|{item.placer}"
        (sr,) = service.search("ServiceRequest", [("identifier", token)]).resources
        out[item.placer] = f"ServiceRequest/{sr['id']}"
    return out


def store_result(service: RecordService, res: Result, order_ref: str | None) -> str:
    """Store ``res`` through the real transaction path; return its report's version ref."""
    response = process_bundle(service, result_bundle(res, order_ref=order_ref, existing=None))
    (ref,) = [
        e["response"]["location"]
        for e in response["entry"]
        if e["response"]["location"].startswith("DiagnosticReport/")
    ]
    return str(ref)


def test_load_result_reads_what_was_stored(service: RecordService) -> None:
    """load_result gives the stored result, placer and placer institution from the order."""
    orders = store_order(service, "orm_ct_chest")
    (res,) = sample_results("oru_ct_report")
    ref = store_result(service, res, orders["SQ202405010001"])
    assert ref.endswith("/_history/1")
    expected = replace(res, reason=None, barcode=None)
    assert load_result(service, ref) == expected
    assert load_result(service, ref.split("/_history/")[0]) == expected


def test_load_result_of_lab_results_and_an_unmatched_one(service: RecordService) -> None:
    """Lab results read back with their numbers; without basedOn placer and institution are None."""
    orders = store_order(service, "oml_lab")
    first, second = sample_results("oru_lab")
    back = load_result(service, store_result(service, first, orders[first.placer or ""]))
    assert numbers(back) == fhir_view(first)
    assert [i.value.number for i in back.items if i.value] == ["11.2", "135", "98"]
    back = load_result(service, store_result(service, second, None))
    assert numbers(back) == fhir_view(replace(second, placer=None, placer_institution=None))


def test_load_result_reads_the_version_asked_for(service: RecordService) -> None:
    """After a correction, the old version still reads as it was; the current one is new."""
    (res,) = sample_results("oru_ct_report")
    response = process_bundle(service, result_bundle(res, order_ref=None, existing=None))
    locations = [e["response"]["location"] for e in response["entry"]]
    (v1,) = [x for x in locations if x.startswith("DiagnosticReport/")]
    rid = v1.split("/")[1]
    fixed = replace(res, status="corrected", conclusion="右肺下叶炎症（更正）", control_id="PACS2")
    process_bundle(service, result_bundle(fixed, order_ref=None, existing=(rid, 1)))
    assert load_result(service, v1).conclusion == res.conclusion
    now = load_result(service, f"DiagnosticReport/{rid}")
    assert (now.status, now.conclusion, now.control_id) == ("corrected", fixed.conclusion, "PACS2")


@pytest.mark.parametrize(
    ("ref", "error", "field"),
    [
        ("Patient/1", InputError, "report_ref"),
        ("DiagnosticReport", InputError, "report_ref"),
        ("DiagnosticReport/a b", InputError, "report_ref"),
        ("DiagnosticReport/nope", NotFound, "id"),
    ],
)
def test_load_result_refuses_bad_refs(
    service: RecordService, ref: str, error: type[InputError], field: str
) -> None:
    """A ref that is not a DiagnosticReport, malformed, or unknown raises naming the field."""
    with pytest.raises(error) as info:
        load_result(service, ref)
    assert info.value.field == field


def test_an_old_version_reads_with_the_results_it_had(service: RecordService) -> None:
    """A report version sent late (a push retried after a correction was stored) carries the
    observations as they were when that version was written, not their corrected values."""
    from medledger.interop.hl7.fhir_results import result_children

    res = sample_results("oru_lab")[0]
    response = process_bundle(service, result_bundle(res, order_ref=None, existing=None))
    locations = [e["response"]["location"] for e in response["entry"]]
    (v1,) = [x for x in locations if x.startswith("DiagnosticReport/")]
    rid = v1.split("/")[1]
    report = service.read("DiagnosticReport", rid).resource
    ids = [str(r["reference"]).split("/")[1] for r in report["result"]]
    keys = [key for rtype, key in result_children(res) if rtype == "Observation"]
    first = res.items[0]
    assert first.value is not None
    assert first.value.kind == "quantity"
    changed = replace(first, value=replace(first.value, number="99.9"), status="corrected")
    fixed = replace(res, status="corrected", items=(changed, *res.items[1:]), control_id="LIS2")
    children = {key: (oid, 1) for key, oid in zip(keys, ids, strict=True)}
    process_bundle(
        service,
        result_bundle(fixed, order_ref=None, existing=(rid, 1), existing_children=children),
    )
    old, new = load_result(service, v1), load_result(service, f"DiagnosticReport/{rid}")
    assert old.items[0].value == first.value
    assert old.items[0].status == first.status
    assert (new.items[0].value, new.items[0].status) == (changed.value, "corrected")
