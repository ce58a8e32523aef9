"""FHIR REST over a real HTTP server: CRUD, versions, headers, certificates, error envelope."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medledger.crypto.canonical import canonical_bytes
from medledger.verify.certificate import parse_certificate, verify_certificate
from tests.api.conftest import Live

FHIR = {"Content-Type": "application/fhir+json"}
PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:hosp-central:mzh", "value": "MZH-77"}],
    "name": [{"family": "张", "given": ["三"]}],
    "gender": "male",
    "birthDate": "1980-01-02",
}


def _obs(patient_id: str, status: str = "final") -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hb"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueQuantity": {"value": 135, "unit": "g/L"},
    }


def test_create_read_update_delete_history(live: Live) -> None:
    """Create, read, update with If-Match, delete, and read the whole history back."""
    c = live.client
    r = c.post("/fhir/R4/Patient", content=json.dumps(PATIENT), headers=FHIR)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    pid = r.json()["id"]
    assert r.headers["ETag"] == 'W/"1"'
    assert r.headers["Location"] == f"/fhir/R4/Patient/{pid}/_history/1"
    assert int(r.headers["X-Ledger-Index"]) >= 0
    assert "Last-Modified" in r.headers
    obs = c.post("/fhir/R4/Observation", content=json.dumps(_obs(pid)), headers=FHIR).json()
    oid = obs["id"]
    got = c.get(f"/fhir/R4/Observation/{oid}")
    assert got.status_code == 200
    assert got.json()["valueQuantity"] == {"value": 135, "unit": "g/L"}
    amended = {**_obs(pid, "amended"), "id": oid}
    stale = c.put(
        f"/fhir/R4/Observation/{oid}",
        content=json.dumps(amended),
        headers={**FHIR, "If-Match": 'W/"7"'},
    )
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    ok = c.put(
        f"/fhir/R4/Observation/{oid}",
        content=json.dumps(amended),
        headers={**FHIR, "If-Match": 'W/"1"'},
    )
    assert ok.status_code == 200
    assert ok.headers["ETag"] == 'W/"2"'
    assert c.delete(f"/fhir/R4/Observation/{oid}").status_code == 204
    assert c.get(f"/fhir/R4/Observation/{oid}").status_code == 410
    v1 = c.get(f"/fhir/R4/Observation/{oid}/_history/1").json()
    assert v1["status"] == "final"
    hist = c.get(f"/fhir/R4/Observation/{oid}/_history").json()
    assert hist["type"] == "history"
    assert [e["response"]["etag"] for e in hist["entry"]] == ['W/"3"', 'W/"2"', 'W/"1"']


def test_certificate_verifies_the_served_resource(live: Live, tmp_path: Path) -> None:
    """$certificate of a version verifies offline with the resource as served as payload."""
    c = live.client
    pid = c.post("/fhir/R4/Patient", content=json.dumps(PATIENT), headers=FHIR).json()["id"]
    resource = c.get(f"/fhir/R4/Patient/{pid}/_history/1").json()
    cert = c.get(f"/fhir/R4/Patient/{pid}/_history/1/$certificate").json()
    assert cert["format"] == "medledger-cert/1"
    assert "payload_salt" in cert
    report = verify_certificate(
        parse_certificate(cert), live.node.trust, payload=canonical_bytes(resource)
    )
    assert report.passed[-1].startswith("payload")
    resource["gender"] = "female"
    with pytest.raises(Exception, match="payload"):
        verify_certificate(
            parse_certificate(cert), live.node.trust, payload=canonical_bytes(resource)
        )


def test_nothing_identifying_goes_on_chain(live: Live) -> None:
    """Ledger entries written for records hold refs, pseudonyms and hashes only."""
    c = live.client
    pid = c.post("/fhir/R4/Patient", content=json.dumps(PATIENT), headers=FHIR).json()["id"]
    c.post("/fhir/R4/Observation", content=json.dumps(_obs(pid)), headers=FHIR)
    with live.node.reader() as r:
        chain = b"".join(r.get_entry(i) for i in range(r.entry_count()))
    for secret in ("张", "MZH-77", "1980-01-02", pid):
        assert secret.encode() not in chain or secret == pid  # ids are refs, by design
    assert b"MZH-77" not in chain


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        ("post", "/fhir/R4/Patient", "{not json", FHIR, 400),
        ("post", "/fhir/R4/Patient", json.dumps(PATIENT), {"Content-Type": "text/plain"}, 415),
        ("post", "/fhir/R4/Patient", json.dumps({**PATIENT, "gender": "robot"}), FHIR, 422),
        (
            "post",
            "/fhir/R4/Patient",
            json.dumps({**PATIENT, "resourceType": "Observation"}),
            FHIR,
            422,
        ),
        ("post", "/fhir/R4/Spaceship", json.dumps({"resourceType": "Spaceship"}), FHIR, 404),
        ("post", "/fhir/R4/Patient", json.dumps({**PATIENT, "x": "y" * 70000}), FHIR, 413),
        ("get", "/fhir/R4/Patient/does-not-exist", None, {}, 404),
        ("get", "/fhir/R4/Patient/bad id!", None, {}, 400),
        ("put", "/fhir/R4/Patient/p1", json.dumps({**PATIENT, "id": "p2"}), FHIR, 400),
    ],
)
def test_bad_requests_get_operation_outcomes(
    live: Live, method: str, path: str, body: str | None, headers: dict[str, str], status: int
) -> None:
    """Malformed, mistyped, oversize and unknown requests get a 4xx OperationOutcome."""
    r = live.client.request(method, path, content=body, headers=headers)
    assert r.status_code == status, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    with live.node.reader() as rd:
        assert rd.entry_count() == 0  # nothing was written


def test_metadata_and_health(live: Live) -> None:
    """/metadata is a CapabilityStatement; /healthz and /readyz answer."""
    cap = live.client.get("/fhir/R4/metadata").json()
    assert cap["resourceType"] == "CapabilityStatement"
    assert cap["fhirVersion"] == "4.0.1"
    assert len(cap["rest"][0]["resource"]) == 16
    assert live.client.get("/healthz").json() == {"status": "ok"}
    assert live.client.get("/readyz").json()["status"] == "ready"


def test_erased_patient_reads_410(live: Live) -> None:
    """After crypto-shredding, every version of the patient's resources answers 410 Gone."""
    c = live.client
    pid = c.post("/fhir/R4/Patient", content=json.dumps(PATIENT), headers=FHIR).json()["id"]
    oid = c.post("/fhir/R4/Observation", content=json.dumps(_obs(pid)), headers=FHIR).json()["id"]
    live.service.erase_patient(pid, "REQ-7", force=True)
    for path in (f"/fhir/R4/Patient/{pid}", f"/fhir/R4/Observation/{oid}/_history/1"):
        r = c.get(path)
        assert r.status_code == 410, r.text
        assert r.json()["issue"][0]["code"] == "deleted"
