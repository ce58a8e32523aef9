"""Golden search-index extractions: one small resource of each supported type, and its entries.

Dates without an offset are China Standard Time days; bounds are UTC, half-open.
"""

from __future__ import annotations

from typing import Any

SID = "http://hospital.example.org/fhir/sid"
LOINC = "http://loinc.org"
CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
# 2026-11-22 in China Standard Time, as UTC bounds.
D22 = ("2026-11-21T16:00:00.000000Z", "2026-11-22T16:00:00.000000Z")


def _t(param: str, value: str, system: str | None = None) -> tuple[Any, ...]:
    return (param, "token", system, value, None, None)


def _r(param: str, value: str) -> tuple[Any, ...]:
    return (param, "reference", None, value, None, None)


def _s(param: str, value: str) -> tuple[Any, ...]:
    return (param, "string", None, value, None, None)


def _d(param: str, value: str, low: str | None, high: str | None) -> tuple[Any, ...]:
    return (param, "date", None, value, low, high)


GOLDEN: list[tuple[dict[str, Any], set[tuple[Any, ...]]]] = [
    (
        {
            "resourceType": "Patient",
            "id": "p1",
            "meta": {"lastUpdated": "2026-11-22T10:00:00.000+08:00"},
            "identifier": [{"system": f"{SID}/mzh", "value": "MZ1"}, {"value": "X9"}],
            "name": [{"text": "张三", "family": "张", "given": ["三"]}],
            "gender": "male",
            "birthDate": "1980-05",
        },
        {
            _t("_id", "p1"),
            _d(
                "_lastUpdated",
                "2026-11-22T10:00:00.000+08:00",
                "2026-11-22T02:00:00.000000Z",
                "2026-11-22T02:00:00.001000Z",
            ),
            _t("identifier", "MZ1", f"{SID}/mzh"),
            _t("identifier", "X9"),
            _s("name", "张三"),
            _s("name", "张"),
            _s("name", "三"),
            _s("family", "张"),
            _s("given", "三"),
            _d(
                "birthdate", "1980-05", "1980-04-30T16:00:00.000000Z", "1980-05-31T16:00:00.000000Z"
            ),
            _t("gender", "male"),
        },
    ),
    (
        {
            "resourceType": "Practitioner",
            "id": "pr1",
            "identifier": [{"system": f"{SID}/gh", "value": "GH1"}],
        },
        {_t("_id", "pr1"), _t("identifier", "GH1", f"{SID}/gh")},
    ),
    (
        {"resourceType": "Organization", "name": "示例医院", "identifier": [{"value": "H1"}]},
        {_t("identifier", "H1")},
    ),
    (
        {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"code": "IMP"},
            "subject": {"reference": "https://other.example.org/fhir/Patient/p1/_history/3"},
            "period": {"start": "2026-11-22T08:00:00+08:00"},
            "basedOn": [{"reference": "ServiceRequest/sr1"}],
        },
        {
            _r("patient", "Patient/p1"),
            _r("subject", "Patient/p1"),
            _t("status", "in-progress"),
            _d("date", "2026-11-22T08:00:00+08:00/", "2026-11-22T00:00:00.000000Z", None),
            _r("based-on", "ServiceRequest/sr1"),
        },
    ),
    (
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "code": {"coding": [{"system": f"{SID}/exam", "code": "CT001"}], "text": "胸部CT"},
            "category": [{"coding": [{"code": "imaging"}]}],
            "subject": {
                "reference": "urn:uuid:0f9b8a8e-0000-4000-8000-000000000001",
                "type": "Patient",
            },
            "requester": {"reference": "Practitioner/pr1"},
            "performer": [{"reference": "Organization/o1"}, {"display": "放射科"}],
            "specimen": [{"reference": "#local"}],
            "occurrencePeriod": {"start": "2026-11-22", "end": "2026-11-23"},
        },
        {
            _r("patient", "urn:uuid:0f9b8a8e-0000-4000-8000-000000000001"),
            _r("subject", "urn:uuid:0f9b8a8e-0000-4000-8000-000000000001"),
            _t("code", "CT001", f"{SID}/exam"),
            _t("status", "active"),
            _t("category", "imaging"),
            _r("performer", "Organization/o1"),
            _r("requester", "Practitioner/pr1"),
            _d("occurrence", "2026-11-22/2026-11-23", D22[0], "2026-11-23T16:00:00.000000Z"),
        },
    ),
    (
        {
            "resourceType": "Specimen",
            "identifier": [{"system": f"{SID}/barcode", "value": "2611220001"}],
            "status": "available",
            "subject": {"reference": "Group/g1"},
            "collection": {"collectedDateTime": "2026-11-22T07:45:00+08:00"},
        },
        {
            _t("identifier", "2611220001", f"{SID}/barcode"),
            _r("subject", "Group/g1"),
            _t("status", "available"),
            _d(
                "collected",
                "2026-11-22T07:45:00+08:00",
                "2026-11-21T23:45:00.000000Z",
                "2026-11-21T23:45:01.000000Z",
            ),
        },
    ),
    (
        {
            "resourceType": "Observation",
            "identifier": [{"system": f"{SID}/lis", "value": "R1"}],
            "basedOn": [{"reference": "ServiceRequest/sr1"}],
            "status": "final",
            "category": [{"coding": [{"system": CAT, "code": "laboratory"}]}],
            "code": {
                "coding": [
                    {"system": LOINC, "code": "718-7"},
                    {"system": f"{SID}/item", "code": "L001"},
                ]
            },
            "subject": {"reference": "Patient/p1"},
            "effectiveTiming": {"event": ["2026-11-22T08:00:00+08:00", "2026-11-20"]},
            "performer": [{"reference": "Practitioner/pr1"}],
            "specimen": {"reference": "Specimen/s1"},
        },
        {
            _t("identifier", "R1", f"{SID}/lis"),
            _r("based-on", "ServiceRequest/sr1"),
            _t("status", "final"),
            _t("category", "laboratory", CAT),
            _t("code", "718-7", LOINC),
            _t("code", "L001", f"{SID}/item"),
            _r("patient", "Patient/p1"),
            _r("subject", "Patient/p1"),
            _d(
                "date",
                "2026-11-20/2026-11-22T08:00:00+08:00",
                "2026-11-19T16:00:00.000000Z",
                "2026-11-22T00:00:01.000000Z",
            ),
            _r("performer", "Practitioner/pr1"),
            _r("specimen", "Specimen/s1"),
        },
    ),
    (
        {
            "resourceType": "DiagnosticReport",
            "status": "amended",
            "code": {"coding": [{"system": LOINC, "code": "58410-2"}]},
            "subject": {"reference": "Patient/p1"},
            "effectivePeriod": {
                "start": "2026-11-22T08:00:00+08:00",
                "end": "2026-11-22T09:00:00+08:00",
            },
            "performer": [{"reference": "Organization/o1"}],
            "specimen": [{"reference": "Specimen/s1"}, {"reference": "Specimen/s2"}],
        },
        {
            _t("status", "amended"),
            _t("code", "58410-2", LOINC),
            _r("patient", "Patient/p1"),
            _r("subject", "Patient/p1"),
            _d(
                "date",
                "2026-11-22T08:00:00+08:00/2026-11-22T09:00:00+08:00",
                "2026-11-22T00:00:00.000000Z",
                "2026-11-22T01:00:01.000000Z",
            ),
            _r("performer", "Organization/o1"),
            _r("specimen", "Specimen/s1"),
            _r("specimen", "Specimen/s2"),
        },
    ),
    (
        {
            "resourceType": "ImagingStudy",
            "status": "available",
            "subject": {"reference": "Patient/p1"},
            "started": "2026-11-22T09:30:00+08:00",
            "basedOn": [{"reference": "ServiceRequest/sr2"}],
            "endpoint": [{"reference": "#wado"}],
            "series": [
                {
                    "uid": "1.2.3",
                    "modality": {"code": "CT"},
                    "performer": [{"actor": {"reference": "Practitioner/pr2"}}],
                }
            ],
        },
        {
            _r("patient", "Patient/p1"),
            _r("subject", "Patient/p1"),
            _t("status", "available"),
            _d(
                "started",
                "2026-11-22T09:30:00+08:00",
                "2026-11-22T01:30:00.000000Z",
                "2026-11-22T01:30:01.000000Z",
            ),
            _r("basedon", "ServiceRequest/sr2"),
            _r("performer", "Practitioner/pr2"),
        },
    ),
    (
        {
            "resourceType": "DocumentReference",
            "masterIdentifier": {"system": f"{SID}/doc", "value": "DOC1"},
            "identifier": [{"system": f"{SID}/pacs", "value": "ACC1"}],
            "status": "current",
            "category": [{"coding": [{"code": "exam-report"}]}],
            "subject": {"reference": "Patient/p1"},
            "date": "2026-11-22T02:00:00Z",
            "content": [{"attachment": {"url": "https://docs.example.org/1.pdf"}}],
        },
        {
            _t("identifier", "DOC1", f"{SID}/doc"),
            _t("identifier", "ACC1", f"{SID}/pacs"),
            _r("patient", "Patient/p1"),
            _r("subject", "Patient/p1"),
            _t("status", "current"),
            _t("category", "exam-report"),
            _d(
                "date",
                "2026-11-22T02:00:00Z",
                "2026-11-22T02:00:00.000000Z",
                "2026-11-22T02:00:01.000000Z",
            ),
        },
    ),
    (
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": {"text": "privacy"},
            "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
            "patient": {"reference": "Patient/p1"},
            "dateTime": "2026-11-22",
        },
        {
            _t("status", "active"),
            _t("category", "59284-0", LOINC),
            _r("patient", "Patient/p1"),
            _d("date", "2026-11-22", *D22),
        },
    ),
    (
        {
            "resourceType": "Provenance",
            "target": [{"reference": "Observation/o1"}, {"reference": "Patient/p1"}],
            "recorded": "2026-11-22T10:00:00.5+08:00",
            "agent": [{"who": {"reference": "Organization/o1"}}],
        },
        {
            _r("patient", "Patient/p1"),
            _d(
                "recorded",
                "2026-11-22T10:00:00.5+08:00",
                "2026-11-22T02:00:00.500000Z",
                "2026-11-22T02:00:00.600000Z",
            ),
        },
    ),
    (
        {
            "resourceType": "CodeSystem",
            "url": f"{SID}/item",
            "status": "active",
            "content": "complete",
            "date": "2026",
            "concept": [{"code": "L001", "concept": [{"code": "L001a"}]}, {"code": "L002"}],
        },
        {
            _t("status", "active"),
            _d("date", "2026", "2025-12-31T16:00:00.000000Z", "2026-12-31T16:00:00.000000Z"),
            _t("code", "L001", f"{SID}/item"),
            _t("code", "L002", f"{SID}/item"),
        },
    ),
    (
        {
            "resourceType": "ValueSet",
            "status": "draft",
            "compose": {"include": [{"system": LOINC, "concept": [{"code": "718-7"}]}]},
            "expansion": {
                "timestamp": "2026-11-22T10:00:00+08:00",
                "contains": [
                    {
                        "system": f"{SID}/item",
                        "code": "L001",
                        "contains": [{"system": LOINC, "code": "6690-2"}],
                    }
                ],
            },
        },
        {
            _t("status", "draft"),
            _t("code", "718-7", LOINC),
            _t("code", "L001", f"{SID}/item"),
            _t("code", "6690-2", LOINC),
        },
    ),
    (
        {
            "resourceType": "ConceptMap",
            "identifier": {"system": f"{SID}/cm", "value": "CM1"},
            "status": "retired",
            "date": "2026-11-22T10:00:00+08:00",
        },
        {
            _t("identifier", "CM1", f"{SID}/cm"),
            _t("status", "retired"),
            _d(
                "date",
                "2026-11-22T10:00:00+08:00",
                "2026-11-22T02:00:00.000000Z",
                "2026-11-22T02:00:01.000000Z",
            ),
        },
    ),
]
