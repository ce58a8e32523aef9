"""Type-level history: GET /fhir/R4/{type}/_history, newest first, paged, with _since."""

from __future__ import annotations

import json
import time

from tests.api.conftest import Live

FHIR = {"Content-Type": "application/fhir+json"}


def _obs(value: float) -> str:
    return json.dumps(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
            "valueQuantity": {"value": value, "unit": "g/L"},
        }
    )


def test_type_history_lists_every_version_newest_first_with_paging(live: Live) -> None:
    """Creates, an update and a delete all appear, newest first, across pages via next links."""
    ids = [
        live.client.post("/fhir/R4/Observation", content=_obs(i + 0.5), headers=FHIR).json()["id"]
        for i in range(3)
    ]
    body = json.loads(_obs(9.5)) | {"id": ids[0]}
    assert (
        live.client.put(f"/fhir/R4/Observation/{ids[0]}", json=body, headers=FHIR).status_code
        == 200
    )
    assert live.client.delete(f"/fhir/R4/Observation/{ids[1]}").status_code == 204
    live.client.post("/fhir/R4/Patient", json={"resourceType": "Patient"}, headers=FHIR)

    seen: list[tuple[str, str, str]] = []
    url: str | None = "/fhir/R4/Observation/_history?_count=2"
    pages = 0
    while url:
        page = live.client.get(url)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("application/fhir+json")
        bundle = page.json()
        assert bundle["type"] == "history"
        assert len(bundle["entry"]) <= 2
        for e in bundle["entry"]:
            rid = e["fullUrl"].rsplit("/", 1)[1]
            seen.append((rid, e["response"]["etag"], e["request"]["method"]))
            if e["request"]["method"] == "DELETE":
                assert "resource" not in e
            else:
                assert e["resource"]["id"] == rid
                assert e["resource"]["meta"]["versionId"] == e["response"]["etag"][3:-1]
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = nxt[0] if nxt else None
        pages += 1
    assert pages == 3
    assert seen[0] == (ids[1], 'W/"2"', "DELETE")
    assert seen[1] == (ids[0], 'W/"2"', "PUT")
    assert sorted(seen) == sorted(
        [
            (ids[0], 'W/"1"', "PUT"),
            (ids[0], 'W/"2"', "PUT"),
            (ids[1], 'W/"1"', "PUT"),
            (ids[1], 'W/"2"', "DELETE"),
            (ids[2], 'W/"1"', "PUT"),
        ]
    )


def test_type_history_since_leaves_out_older_versions(live: Live) -> None:
    """_since keeps versions at or after the instant; a sub-millisecond instant rounds up."""
    older = live.client.post("/fhir/R4/Observation", content=_obs(1.5), headers=FHIR).json()
    time.sleep(0.01)
    newer = live.client.post("/fhir/R4/Observation", content=_obs(2.5), headers=FHIR).json()

    def since(stamp: str) -> list[str]:
        r = live.client.get("/fhir/R4/Observation/_history", params={"_since": stamp})
        assert r.status_code == 200, r.text
        return [e["resource"]["id"] for e in r.json()["entry"]]

    first = older["meta"]["lastUpdated"]  # e.g. 2026-11-22T08:00:00.123Z
    assert since(first) == [newer["id"], older["id"]]
    assert since(newer["meta"]["lastUpdated"]) == [newer["id"]]
    # 0.5 ms after the older version: it must be left out, not floored back in.
    assert older["id"] not in since(first[:-1] + "500Z")
    assert since("2999-01-01T00:00:00+08:00") == []


def test_type_history_bad_parameters_are_400(live: Live) -> None:
    """Bad _count, _since or an unknown parameter: 400 naming it; unknown type: 404."""
    for query, field in (
        ("_count=0", "_count"),
        ("_count=abc", "_count"),
        ("_since=yesterday", "_since"),
        ("_since=2026-11-22", "_since"),
        ("status=final", "status"),
        ("_page_token=xyz", "_page_token"),
    ):
        r = live.client.get(f"/fhir/R4/Observation/_history?{query}")
        assert r.status_code == 400, (query, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"
        assert field in json.dumps(r.json()), (query, r.text)
    assert live.client.get("/fhir/R4/Nope/_history").status_code == 404
