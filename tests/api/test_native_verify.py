"""POST /api/v1/verify: a readable verdict for any certificate, with or without payload."""

from __future__ import annotations

import json

from tests.api.conftest import Live

FHIR = {"Content-Type": "application/fhir+json"}
PATIENT = {"resourceType": "Patient", "gender": "other", "name": [{"family": "赵"}]}


def test_verify_valid_and_altered(live: Live) -> None:
    """A genuine certificate verifies with its resource; an altered resource names the check."""
    c = live.client
    pid = c.post("/fhir/R4/Patient", content=json.dumps(PATIENT), headers=FHIR).json()["id"]
    resource = c.get(f"/fhir/R4/Patient/{pid}").json()
    cert = c.get(f"/fhir/R4/Patient/{pid}/_history/1/$certificate").json()
    ok = c.post("/api/v1/verify", json={"certificate": cert, "payload": resource}).json()
    assert ok["valid"] is True
    assert any("payload" in line for line in ok["checks"])
    resource["gender"] = "male"
    bad = c.post("/api/v1/verify", json={"certificate": cert, "payload": resource}).json()
    assert bad == {"valid": False, "check": "payload", "message": bad["message"]}
    cert["entry"]["ref"] = "Patient/x/_history/1"
    forged = c.post("/api/v1/verify", json={"certificate": cert}).json()
    assert forged["valid"] is False
    assert forged["check"] == "inclusion"


def test_verify_bad_requests(live: Live) -> None:
    """Malformed requests are 400 JSON errors naming the field, never 500."""
    for body in (
        '{"nope": 1}',
        "not json",
        '{"certificate": {"format": "x"}}',
        '{"certificate": {}, "payload": 5}',
    ):
        r = live.client.post(
            "/api/v1/verify", content=body, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400, (body, r.text)
        assert "error" in r.json()
