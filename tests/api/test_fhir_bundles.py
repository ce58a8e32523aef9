"""Transaction and batch Bundles over HTTP: urn:uuid resolution, atomicity, per-entry outcomes."""

from __future__ import annotations

import json

from tests.api.conftest import Live

FHIR = {"Content-Type": "application/fhir+json"}
P, SR, SP, OBS, DR = (f"urn:uuid:0000000{i}-aaaa-4bbb-8ccc-000000000000" for i in range(5))


def _referral() -> dict[str, object]:
    """A member hospital's lab referral: patient, order, specimen, result, report."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": P,
                "request": {"method": "POST", "url": "Patient"},
                "resource": {
                    "resourceType": "Patient",
                    "name": [{"family": "周", "given": ["六"]}],
                    "identifier": [{"system": "urn:hosp-member:zyh", "value": "ZYH-9"}],
                },
            },
            {
                "fullUrl": SR,
                "request": {"method": "POST", "url": "ServiceRequest"},
                "resource": {
                    "resourceType": "ServiceRequest",
                    "status": "active",
                    "intent": "order",
                    "subject": {"reference": P},
                    "code": {
                        "coding": [
                            {"system": "urn:hosp-central:items", "code": "XCG", "display": "血常规"}
                        ]
                    },
                },
            },
            {
                "fullUrl": SP,
                "request": {"method": "POST", "url": "Specimen"},
                "resource": {
                    "resourceType": "Specimen",
                    "subject": {"reference": P},
                    "request": [{"reference": SR}],
                    "identifier": [{"system": "urn:barcode", "value": "BC-77"}],
                },
            },
            {
                "fullUrl": OBS,
                "request": {"method": "POST", "url": "Observation"},
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                    "subject": {"reference": P},
                    "basedOn": [{"reference": SR}],
                    "specimen": {"reference": SP},
                },
            },
            {
                "fullUrl": DR,
                "request": {"method": "POST", "url": "DiagnosticReport"},
                "resource": {
                    "resourceType": "DiagnosticReport",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2"}]},
                    "subject": {"reference": P},
                    "result": [{"reference": OBS}],
                },
            },
        ],
    }


def _entries(live: Live) -> int:
    with live.node.reader() as r:
        return r.entry_count()


def test_transaction_resolves_references_and_anchors_all(live: Live) -> None:
    """Every entry is created, urn:uuid references point at the new ids, all on the ledger."""
    r = live.client.post("/fhir/R4", content=json.dumps(_referral()), headers=FHIR)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    assert [e["response"]["status"] for e in out["entry"]] == ["201 Created"] * 5
    loc = {e["fullUrl"]: e["response"]["location"].split("/_history")[0] for e in out["entry"]}
    obs = live.client.get(f"/fhir/R4/{loc[OBS]}").json()
    assert obs["subject"]["reference"] == loc[P]
    assert obs["specimen"]["reference"] == loc[SP]
    assert obs["basedOn"][0]["reference"] == loc[SR]
    found = live.client.get(f"/fhir/R4/Observation?subject={loc[P]}").json()
    assert len(found["entry"]) == 1
    assert _entries(live) == 5


def test_transaction_is_all_or_nothing(live: Live) -> None:
    """One invalid entry fails the whole transaction with its path; nothing is written."""
    bundle = _referral()
    bundle["entry"][3]["resource"]["status"] = "not-a-status"  # type: ignore[index]
    r = live.client.post("/fhir/R4", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 422, r.text
    paths = [p for i in r.json()["issue"] for p in i.get("expression", [])]
    assert any(p.startswith("Bundle.entry[3].resource") for p in paths), paths
    assert _entries(live) == 0
    assert live.client.get("/fhir/R4/Patient?_total=accurate").json()["total"] == 0


def test_dangling_urn_reference_is_refused(live: Live) -> None:
    """A reference to a urn:uuid that no entry declares fails the transaction."""
    bundle = _referral()
    bundle["entry"] = bundle["entry"][1:2]  # type: ignore[index]
    r = live.client.post("/fhir/R4", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 422
    assert _entries(live) == 0


def test_batch_entries_succeed_or_fail_alone(live: Live) -> None:
    """In a batch, a bad entry gets its own error and the others are still written."""
    good = {"resourceType": "Patient", "gender": "male"}
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "POST", "url": "Patient"}, "resource": good},
            {
                "request": {"method": "POST", "url": "Patient"},
                "resource": {"resourceType": "Patient", "gender": "robot"},
            },
            {"request": {"method": "DELETE", "url": "Patient/nope"}},
        ],
    }
    r = live.client.post("/fhir/R4", content=json.dumps(batch), headers=FHIR)
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses == ["201 Created", "422", "404"]
    assert r.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert _entries(live) == 1


def test_bad_bundles_are_4xx(live: Live) -> None:
    """Wrong Bundle types, methods and URLs are refused with the entry path."""
    for body in (
        {"resourceType": "Bundle", "type": "collection", "entry": []},
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "PATCH", "url": "Patient/1"}}],
        },
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "request": {"method": "POST", "url": "Patient/1"},
                    "resource": {"resourceType": "Patient"},
                }
            ],
        },
        {"resourceType": "Patient"},
    ):
        r = live.client.post("/fhir/R4", content=json.dumps(body), headers=FHIR)
        assert 400 <= r.status_code < 500, (body, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"
    assert _entries(live) == 0
