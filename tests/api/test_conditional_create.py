"""Conditional create under concurrency: 200 identical requests make exactly one resource.

HAPI (#3141), Medplum (#4234) and the Microsoft FHIR server (#1382) create duplicates here.
"""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.api.conftest import Live

SPECIMEN = {
    "resourceType": "Specimen",
    "identifier": [{"system": "urn:hosp-central:barcode", "value": "BC20261122-0001"}],
    "type": {"coding": [{"system": "http://snomed.info/sct", "code": "119297000"}]},
    "status": "available",
}
HEADERS = {
    "Content-Type": "application/fhir+json",
    "If-None-Exist": "identifier=urn:hosp-central:barcode|BC20261122-0001",
}


async def _fire(url: str, n: int, auth: dict[str, str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits, headers=auth) as client:
        return await asyncio.gather(
            *[
                client.post("/fhir/R4/Specimen", content=json.dumps(SPECIMEN), headers=HEADERS)
                for _ in range(n)
            ]
        )


def test_parallel_identical_conditional_creates_yield_one(live: Live) -> None:
    """200 concurrent identical conditional creates: one 201, the rest 200 with the same id."""
    responses = asyncio.run(_fire(live.url, 200, live.ids.headers()))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1, statuses
    assert statuses.count(200) == 199, statuses
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    bundle = live.client.get("/fhir/R4/Specimen?_total=accurate").json()
    assert bundle["total"] == 1
    with live.node.reader() as r:
        puts = [json.loads(r.get_entry(i)) for i in range(r.entry_count())]
    assert sum(e["type"] == "record.put" for e in puts) == 1


def test_conditional_create_with_several_matches_is_412(live: Live) -> None:
    """If the criteria match more than one resource the create is refused with 412."""
    plain = {"Content-Type": "application/fhir+json"}
    for _ in range(2):
        live.client.post("/fhir/R4/Specimen", content=json.dumps(SPECIMEN), headers=plain)
    r = live.client.post("/fhir/R4/Specimen", content=json.dumps(SPECIMEN), headers=HEADERS)
    assert r.status_code == 412, r.text


def _transaction(n: int) -> dict[str, object]:
    """A transaction whose Specimen is a conditional create, plus an unconditional Observation."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-2222-4333-8444-555555555555",
                "resource": SPECIMEN,
                "request": {
                    "method": "POST",
                    "url": "Specimen",
                    "ifNoneExist": HEADERS["If-None-Exist"],
                },
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": f"run {n}"},
                    "specimen": {"reference": "urn:uuid:11111111-2222-4333-8444-555555555555"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }


async def _fire_transactions(url: str, n: int, auth: dict[str, str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    plain = {"Content-Type": "application/fhir+json"}
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits, headers=auth) as client:
        return await asyncio.gather(
            *[
                client.post("/fhir/R4", content=json.dumps(_transaction(i)), headers=plain)
                for i in range(n)
            ]
        )


def test_parallel_conditional_creates_inside_transactions_yield_one(live: Live) -> None:
    """200 concurrent transactions with the same ifNoneExist: one Specimen, every one commits.

    Each transaction's Observation points at that one Specimen (urn:uuid resolved to the match).
    """
    responses = asyncio.run(_fire_transactions(live.url, 200, live.ids.headers()))
    assert [r.status_code for r in responses] == [200] * 200, {r.text[:300] for r in responses}
    specimen_ids = {r.json()["entry"][0]["response"]["location"].split("/")[1] for r in responses}
    assert len(specimen_ids) == 1
    created = [r.json()["entry"][0]["response"]["status"] for r in responses]
    assert created.count("201 Created") == 1, created
    bundle = live.client.get("/fhir/R4/Specimen?_total=accurate").json()
    assert bundle["total"] == 1
    (sid,) = specimen_ids
    observations = live.client.get(
        f"/fhir/R4/Observation?specimen=Specimen/{sid}&_total=accurate&_count=1"
    ).json()
    assert observations["total"] == 200
    for r in responses:  # the match is acknowledged only once it is on the ledger
        assert "extension" in r.json()["entry"][0]["response"], r.json()["entry"][0]


def test_transaction_with_two_identical_conditional_creates_is_refused(live: Live) -> None:
    """Two entries with the same ifNoneExist in one transaction: 422, nothing written."""
    doc = _transaction(0)
    doc["entry"] = [doc["entry"][0], {**doc["entry"][0], "fullUrl": "urn:uuid:9" + "0" * 35}]  # type: ignore[index]
    r = live.client.post(
        "/fhir/R4", content=json.dumps(doc), headers={"Content-Type": "application/fhir+json"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[1].request.ifNoneExist"]
    assert live.client.get("/fhir/R4/Specimen?_total=accurate").json()["total"] == 0
