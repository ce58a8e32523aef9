"""FHIR mapping: every resource validates, identifiers make the Bundles idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from medledger.errors import InputError
from medledger.interop.hl7 import (
    read_message,
    requisition_bundle,
    result_bundle,
    result_children,
)
from medledger.interop.model import Coded, Requisition, code_system
from medledger.ledger.node import LedgerNode
from medledger.records.bundles import process_bundle
from medledger.records.fhir_model import validate_resource
from medledger.records.service import RecordService
from tests.data.hl7.make_samples import REPORT_IMAGE_SHA256, SAMPLES
from tests.interop.hl7._util import CENTRAL, EAST, SENDERS, sample, sample_order, sample_results

LOINC = "http://loinc.org"


def _bundles() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in SAMPLES:
        model = read_message(sample(name), SENDERS)
        if isinstance(model, Requisition):
            yield name, requisition_bundle(model)
        else:
            assert isinstance(model, list)
            for res in model:
                yield name, result_bundle(res, order_ref="ServiceRequest/sr-1", existing=None)


def _by_type(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_every_resource_of_every_sample_validates() -> None:
    """Each resource of each sample's Bundle passes the records layer's FHIR R4 validation."""
    count = 0
    for name, bundle in _bundles():
        assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "transaction"), name
        urls = [e["fullUrl"] for e in bundle["entry"]]
        assert len(set(urls)) == len(urls), name
        for i, e in enumerate(bundle["entry"]):
            validate_resource(e["resource"], path=f"{name}.entry[{i}]")
            assert e["resource"]["meta"]["source"].startswith("urn:medledger:message:")
            count += 1
    assert count > 30


def test_requisition_bundle_content() -> None:
    """Patient, ServiceRequest and Specimen carry the mapped fields and conditional creates."""
    bundle = requisition_bundle(
        sample_order("oml_lab"),
        translations={(code_system(EAST), "XCG"): [Coded(LOINC, "58410-2", "CBC panel")]},
    )
    (patient,) = _by_type(bundle, "Patient")
    assert patient["request"] == {
        "method": "POST",
        "url": "Patient",
        "ifNoneExist": "identifier=urn:medledger:id:hosp-member-east:patient|MZ20240005",
    }
    assert patient["resource"]["name"] == [{"text": "刘洋"}]
    assert patient["resource"]["gender"] == "male"
    srs = _by_type(bundle, "ServiceRequest")
    first = srs[0]["resource"]
    assert first["identifier"][0]["system"] == "urn:medledger:id:hosp-member-east:placer"
    assert first["identifier"][0]["value"] == "SQ202405010005"
    assert (first["status"], first["intent"], first["priority"]) == ("active", "order", "stat")
    assert first["category"][0]["coding"][0]["code"] == "108252007"
    assert [c["code"] for c in first["code"]["coding"]] == ["XCG", "58410-2"]
    assert first["subject"]["reference"] == patient["fullUrl"]
    assert first["performer"] == [
        {"identifier": {"system": "urn:medledger:institution", "value": CENTRAL}}
    ]
    assert first["requester"] == {"display": "周敏"}
    assert first["authoredOn"] == "2024-05-01T07:45:00+08:00"
    assert first["encounter"]["identifier"]["value"] == "MZ20240501005"
    specimens = _by_type(bundle, "Specimen")
    assert len(specimens) == 2
    sp = specimens[0]["resource"]
    assert sp["identifier"][0] == {
        "system": "urn:medledger:id:hosp-member-east:barcode",
        "value": "BC2024050100051",
    }
    assert sp["collection"] == {"collectedDateTime": "2024-05-01T07:55:00+08:00"}
    assert sp["request"] == [{"reference": srs[0]["fullUrl"]}]
    assert first["specimen"] == [{"reference": specimens[0]["fullUrl"]}]


def test_national_id_goes_into_the_patient_only() -> None:
    """The 身份证号 is a Patient identifier under the WS/T 500 OID, and nowhere else."""
    bundle = requisition_bundle(sample_order("orm_ct_chest"))
    (patient,) = _by_type(bundle, "Patient")
    ids = {i["system"]: i["value"] for i in patient["resource"]["identifier"]}
    assert ids["urn:oid:2.16.156.10011.1.3"] == "110101197803150017"
    (sr,) = _by_type(bundle, "ServiceRequest")
    assert "110101197803150017" not in str(sr)
    assert sr["resource"]["bodySite"] == [{"text": "胸部"}]
    assert "specimen" not in sr["resource"]


def test_existing_orders_are_updated_with_if_match() -> None:
    """A placer listed in ``existing`` becomes PUT ServiceRequest/<id> with ifMatch W/"v"."""
    req = sample_order("orm_ct_chest")
    bundle = requisition_bundle(
        req, existing={"SQ202405010001": ("sr-77", 3)}, patient_existing="p-1"
    )
    assert not _by_type(bundle, "Patient")
    (sr,) = _by_type(bundle, "ServiceRequest")
    assert sr["request"] == {"method": "PUT", "url": "ServiceRequest/sr-77", "ifMatch": 'W/"3"'}
    assert sr["resource"]["id"] == "sr-77"
    assert sr["resource"]["subject"] == {"reference": "Patient/p-1"}
    with pytest.raises(InputError):
        requisition_bundle(req, existing={"SQ202405010001": ("bad id!", 1)})


def test_result_bundle_content() -> None:
    """DiagnosticReport, findings Observation, ImagingStudy and DocumentReference are mapped."""
    (res,) = sample_results("oru_ct_report")
    bundle = result_bundle(res, order_ref="ServiceRequest/sr-1", existing=None)
    (dr,) = _by_type(bundle, "DiagnosticReport")
    report = dr["resource"]
    assert report["identifier"][0]["value"] == "CT20240501008"
    assert report["basedOn"] == [{"reference": "ServiceRequest/sr-1"}]
    assert report["category"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
        "code": "RAD",
    }
    assert report["conclusion"] == "右肺下叶炎症，建议抗炎治疗后复查。"
    assert report["resultsInterpreter"] == [{"display": "赵强"}]
    (findings,) = _by_type(bundle, "Observation")
    assert findings["resource"]["code"]["coding"][0]["code"] == "18782-3"
    assert findings["resource"]["valueString"].startswith("双肺纹理增多")
    assert report["result"] == [{"reference": findings["fullUrl"]}]
    (study,) = _by_type(bundle, "ImagingStudy")
    assert study["resource"]["identifier"] == [
        {
            "system": "urn:dicom:uid",
            "value": "urn:oid:1.2.840.113619.2.55.3.604688119.971.1714528800.1",
        },
        {"system": "urn:medledger:id:hosp-central:filler", "value": "CT20240501008#study#1"},
    ]
    assert study["resource"]["extension"][0]["url"] == "urn:medledger:wado-rs"
    assert report["imagingStudy"] == [{"reference": study["fullUrl"]}]
    image, viewer = _by_type(bundle, "DocumentReference")
    attachment = image["resource"]["content"][0]["attachment"]
    assert attachment["contentType"] == "image/jpeg"
    assert attachment["extension"] == [
        {"url": "urn:medledger:content-hash", "valueString": f"sha256:{REPORT_IMAGE_SHA256}"}
    ]
    assert image["resource"]["context"]["related"] == [{"reference": dr["fullUrl"]}]
    assert viewer["resource"]["content"][0]["attachment"]["url"].endswith("&token=t1")


def test_lab_observations() -> None:
    """Items become Observations: quantity with the unit as sent, H/L interpretation coded."""
    first, second = sample_results("oru_lab")
    obs = [
        e["resource"]
        for e in _by_type(result_bundle(first, order_ref=None, existing=None), "Observation")
    ]
    assert obs[0]["valueQuantity"] == {"value": 11.2, "unit": "10*9/L"}
    assert obs[1]["valueQuantity"] == {"value": 135, "unit": "g/L"}
    assert obs[0]["interpretation"][0]["coding"][0]["code"] == "H"
    assert obs[0]["referenceRange"] == [{"text": "3.5-9.5"}]
    assert obs[0]["category"][0]["coding"][0]["code"] == "laboratory"
    assert "basedOn" not in obs[0]
    gfr = _by_type(result_bundle(second, order_ref=None, existing=None), "Observation")[3]
    assert gfr["resource"]["valueString"] == ">90"


def test_corrections_update_the_same_resources() -> None:
    """existing + existing_children turn the report and matched Observations into PUTs."""
    (res,) = sample_results("oru_correction")
    children = result_children(res)
    assert children[0] == ("Observation", "F2024050100071#obs#K#1")
    bundle = result_bundle(
        res,
        order_ref="ServiceRequest/sr-9",
        existing=("dr-5", 1),
        existing_children={"F2024050100071#obs#K#1": ("obs-k", 1)},
        patient_existing="Patient/p-5",
    )
    methods = [(e["resource"]["resourceType"], e["request"]["method"]) for e in bundle["entry"]]
    assert methods == [
        ("DiagnosticReport", "PUT"),
        ("Observation", "PUT"),
        ("Observation", "POST"),
        ("Observation", "POST"),
    ]
    assert bundle["entry"][1]["request"]["url"] == "Observation/obs-k"
    assert bundle["entry"][1]["resource"]["status"] == "corrected"


def test_recall_marks_everything_entered_in_error() -> None:
    """A recalled report and its Observations carry status entered-in-error."""
    (res,) = sample_results("oru_recall")
    bundle = result_bundle(res, order_ref=None, existing=("dr-2", 4))
    statuses = {
        e["resource"]["status"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] != "Patient"
    }
    assert statuses == {"entered-in-error"}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("oru_recall", "标本溶血，报告召回"),
        ("oru_correction", "血钾结果复核后更正，原结果因标本放置过久偏高"),
    ],
)
def test_the_recall_or_correction_reason_is_kept(name: str, reason: str) -> None:
    """The NTE after the OBR (why the report was recalled or corrected) is stored on the
    DiagnosticReport: R4 has no element for it, so in the urn:medledger:status-reason
    extension."""
    (res,) = sample_results(name)
    bundle = result_bundle(res, order_ref=None, existing=None)
    (report,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    assert report["extension"] == [{"url": "urn:medledger:status-reason", "valueString": reason}]


def test_bad_references_are_input_errors() -> None:
    """order_ref must name a ServiceRequest; patient_existing must be an id."""
    (res,) = sample_results("oru_recall")
    with pytest.raises(InputError):
        result_bundle(res, order_ref="Patient/1", existing=None)
    with pytest.raises(InputError):
        result_bundle(res, order_ref=None, existing=None, patient_existing="no such id!")


def test_bundles_are_deterministic() -> None:
    """The same message gives the same Bundle (stable urn:uuid full URLs)."""
    assert requisition_bundle(sample_order("oml_lab")) == requisition_bundle(
        sample_order("oml_lab")
    )
    entry = requisition_bundle(sample_order("oml_lab"))["entry"][0]
    assert dict(parse_qsl(entry["request"]["ifNoneExist"])) == {
        "identifier": "urn:medledger:id:hosp-member-east:patient|MZ20240005"
    }


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RecordService]:
    """A real records service over a fresh SQLite ledger."""
    node = LedgerNode.init(tmp_path / "d", node=CENTRAL, block_max_wait_ms=1)
    svc = RecordService.open(node)
    try:
        yield svc
    finally:
        node.close()


def _statuses(out: dict[str, Any]) -> list[str]:
    return [e["response"]["status"] for e in out["entry"]]


def test_records_layer_accepts_and_deduplicates(service: RecordService) -> None:
    """The real records layer stores each Bundle; sending it again creates nothing new."""
    order = requisition_bundle(sample_order("oml_lab"))
    assert _statuses(process_bundle(service, order)) == ["201 Created"] * 5
    assert _statuses(process_bundle(service, order)) == ["200 OK"] * 5
    (res,) = sample_results("oru_ct_report")
    report = result_bundle(res, order_ref=None, existing=None)
    assert set(_statuses(process_bundle(service, report))) == {"201 Created"}
    assert set(_statuses(process_bundle(service, report))) == {"200 OK"}


def test_records_layer_applies_a_cancel_as_an_update(service: RecordService) -> None:
    """A cancel sent as PUT with ifMatch makes version 2 of the stored ServiceRequest."""
    req = sample_order("orm_ct_chest")
    created = process_bundle(service, requisition_bundle(req))
    location = created["entry"][1]["response"]["location"]
    rid = location.split("/")[1]
    cancel = replace(req, items=(replace(req.items[0], status="revoked"),))
    updated = process_bundle(
        service, requisition_bundle(cancel, existing={"SQ202405010001": (rid, 1)})
    )
    assert updated["entry"][1]["response"]["location"] == f"ServiceRequest/{rid}/_history/2"
