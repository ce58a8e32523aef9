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


async def _fire(url: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        return await asyncio.gather(
            *[
                client.post("/fhir/R4/Specimen", content=json.dumps(SPECIMEN), headers=HEADERS)
                for _ in range(n)
            ]
        )


def test_parallel_identical_conditional_creates_yield_one(live: Live) -> None:
    """200 concurrent identical conditional creates: one 201, the rest 200 with the same id."""
    responses = asyncio.run(_fire(live.url, 200))
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
