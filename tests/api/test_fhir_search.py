"""FHIR search over a real HTTP server, checked against the reference matcher."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest

from medledger.records.search_params import parse_search
from tests.api.conftest import Live

FHIR = {"Content-Type": "application/fhir+json"}


def _post(live: Live, body: dict[str, object]) -> dict[str, object]:
    r = live.client.post(f"/fhir/R4/{body['resourceType']}", content=json.dumps(body), headers=FHIR)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _patient(family: str, given: str, mzh: str) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "identifier": [{"system": "urn:hosp-central:mzh", "value": mzh}],
        "gender": "female",
    }


def _obs(pid: str, code: str, status: str, when: str) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "status": status,
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
    }


@pytest.fixture
def world(live: Live) -> dict[str, object]:
    p1 = _post(live, _patient("张", "三", "MZH-001"))
    p2 = _post(live, _patient("李", "四", "MZH-002"))
    obs = [
        _post(live, _obs(str(p1["id"]), "718-7", "final", "2026-11-01T08:00:00+08:00")),
        _post(live, _obs(str(p1["id"]), "2345-7", "amended", "2026-11-15T09:30:00+08:00")),
        _post(live, _obs(str(p2["id"]), "718-7", "final", "2026-10-20")),
        _post(live, _obs(str(p2["id"]), "6690-2", "preliminary", "2026-11-30T23:59:00+08:00")),
    ]
    return {"p1": p1, "p2": p2, "obs": obs}


def _ids(bundle: dict[str, object]) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", [])}  # type: ignore[attr-defined,index]


@pytest.mark.parametrize(
    "query",
    [
        "code=http://loinc.org|718-7",
        "code=718-7",
        "code=718-7,6690-2",
        "status=final",
        "status=amended,preliminary",
        "category=laboratory",
        "date=ge2026-11-01",
        "date=lt2026-11-01",
        "date=2026-11",
        "date=ge2026-11-01&date=le2026-11-15",
        "code=718-7&status=final",
    ],
)
def test_observation_search_matches_reference(
    live: Live, world: dict[str, object], query: str
) -> None:
    """Each search returns exactly the resources the reference matcher accepts."""
    params = parse_qsl(query)
    bundle = live.client.get(f"/fhir/R4/Observation?{query}&_count=100").json()
    assert bundle["type"] == "searchset"
    stored = [live.client.get(f"/fhir/R4/Observation/{o['id']}").json() for o in world["obs"]]  # type: ignore[attr-defined]
    oracle = parse_search("Observation", params)
    assert _ids(bundle) == {r["id"] for r in stored if oracle.matches(r)}, query


def test_subject_identifier_and_name(live: Live, world: dict[str, object]) -> None:
    """References, blind-indexed identifiers and names find the right resources."""
    p1 = world["p1"]["id"]  # type: ignore[index]
    got = live.client.get(f"/fhir/R4/Observation?subject=Patient/{p1}").json()
    assert len(_ids(got)) == 2
    assert _ids(
        live.client.get("/fhir/R4/Patient?identifier=urn:hosp-central:mzh|MZH-002").json()
    ) == {world["p2"]["id"]}  # type: ignore[index]
    assert _ids(live.client.get("/fhir/R4/Patient?identifier=MZH-001").json()) == {p1}
    assert _ids(live.client.get("/fhir/R4/Patient?name=张").json()) == {p1}
    assert _ids(live.client.get("/fhir/R4/Patient?identifier=MZH-999").json()) == set()


def test_paging_total_sort_and_exclusions(live: Live, world: dict[str, object]) -> None:
    """_count pages with next links, _total counts, deleted and erased resources vanish."""
    first = live.client.get("/fhir/R4/Observation?_count=3&_total=accurate").json()
    assert first["total"] == 4
    assert len(first["entry"]) == 3
    nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = live.client.get(urlsplit(nxt).path + "?" + urlsplit(nxt).query).json()
    assert len(second["entry"]) == 1
    assert not _ids(first) & _ids(second)
    newest = live.client.get("/fhir/R4/Observation?_sort=-_lastUpdated&_count=1").json()
    assert _ids(newest) == {world["obs"][-1]["id"]}  # type: ignore[index]
    live.client.delete(f"/fhir/R4/Observation/{world['obs'][0]['id']}")  # type: ignore[index]
    live.service.erase_patient(str(world["p2"]["id"]), "REQ-9", force=True)  # type: ignore[index]
    left = live.client.get("/fhir/R4/Observation?_total=accurate").json()
    assert left["total"] == 1
    assert _ids(left) == {world["obs"][1]["id"]}  # type: ignore[index]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("colour=red", "colour"),
        ("date=ap2026", "ap"),
        ("_count=0", "_count"),
        ("_include=Observation:subject", "_include"),
        ("_page_token=garbage", "_page_token"),
    ],
)
def test_bad_search_is_400(live: Live, query: str, needle: str) -> None:
    """Unsupported parameters, prefixes and tokens are 400 OperationOutcomes naming them."""
    r = live.client.get(f"/fhir/R4/Observation?{query}")
    assert r.status_code == 400, r.text
    assert needle in json.dumps(r.json())


def test_post_search(live: Live, world: dict[str, object]) -> None:
    """POST _search with form parameters equals GET."""
    r = live.client.post("/fhir/R4/Observation/_search", data={"code": "718-7"})
    assert r.status_code == 200, r.text
    assert len(_ids(r.json())) == 2
