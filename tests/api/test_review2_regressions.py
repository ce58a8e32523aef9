"""Regressions for the records/API review: each of these once failed."""

from __future__ import annotations

import base64
import json
import socket

from sqlalchemy import text

from tests.api.conftest import Live

FHIR = {"Content-Type": "application/fhir+json"}


def _pat(mrn: str, **extra: object) -> dict[str, object]:
    return {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}], **extra}


def _cond(live: Live, mrn: str) -> tuple[int, str]:
    r = live.client.post(
        "/fhir/R4/Patient",
        content=json.dumps(_pat(mrn)),
        headers={**FHIR, "If-None-Exist": f"identifier=urn:mrn|{mrn}"},
    )
    return r.status_code, r.json().get("id", "")


def test_conditional_create_after_delete_or_change(live: Live) -> None:
    """A conditional create whose old match was deleted or changed creates anew."""
    status, first = _cond(live, "M1")
    assert status == 201
    live.client.delete(f"/fhir/R4/Patient/{first}")
    status, second = _cond(live, "M1")
    assert (status, second != first) == (201, True)
    live.client.put(
        f"/fhir/R4/Patient/{second}", content=json.dumps({**_pat("M9"), "id": second}), headers=FHIR
    )
    status, third = _cond(live, "M1")
    assert status == 201
    assert third not in (first, second)
    assert _cond(live, "M1") == (200, third)


def test_transaction_checks_ids_and_full_urls(live: Live) -> None:
    """Transactions refuse bad ids, id mismatches and duplicate fullUrls like REST does."""

    def tx(*entries: dict[str, object]) -> int:
        body = {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}
        return live.client.post("/fhir/R4", content=json.dumps(body), headers=FHIR).status_code

    pat = {"resourceType": "Patient"}
    assert tx({"request": {"method": "PUT", "url": "Patient/张三"}, "resource": pat}) == 422
    assert (
        tx({"request": {"method": "PUT", "url": "Patient/a"}, "resource": {**pat, "id": "b"}})
        == 422
    )
    dup = {
        "fullUrl": "urn:uuid:1",
        "request": {"method": "POST", "url": "Patient"},
        "resource": pat,
    }
    assert tx(dup, dup) == 422
    bad = {"request": {"method": "POST", "url": "Patient", "ifNoneExist": 5}, "resource": pat}
    assert tx(bad) == 422
    with live.node.reader() as r:
        assert r.entry_count() == 0


def test_delete_honours_if_match(live: Live) -> None:
    """DELETE with a stale If-Match is a 412 and deletes nothing."""
    pid = live.client.post("/fhir/R4/Patient", content=json.dumps(_pat("D1")), headers=FHIR).json()[
        "id"
    ]
    live.client.put(
        f"/fhir/R4/Patient/{pid}", content=json.dumps({**_pat("D1"), "id": pid}), headers=FHIR
    )
    r = live.client.delete(f"/fhir/R4/Patient/{pid}", headers={"If-Match": 'W/"1"'})
    assert r.status_code == 412
    assert live.client.get(f"/fhir/R4/Patient/{pid}").status_code == 200


def test_client_id_is_not_stored_in_search_rows(live: Live) -> None:
    """A client-sent id (which could hold PHI) is replaced and never indexed in clear."""
    live.client.post(
        "/fhir/R4/Patient",
        content=json.dumps({**_pat("X1"), "id": "ZHANGSAN-110101199001011234"}),
        headers=FHIR,
    )
    with live.node.store.engine.connect() as conn:
        rows = conn.execute(text("SELECT value FROM record_search")).scalars().all()
    assert not any("ZHANGSAN" in v for v in rows)


def test_identifier_without_system_is_distinct(live: Live) -> None:
    """identifier=|X1 finds only identifiers without a system; identifier=X1 finds any."""
    live.client.post("/fhir/R4/Patient", content=json.dumps(_pat("X1")), headers=FHIR)
    live.client.post(
        "/fhir/R4/Patient",
        headers=FHIR,
        content=json.dumps({"resourceType": "Patient", "identifier": [{"value": "X1"}]}),
    )

    def count(q: str) -> int:
        return len(live.client.get(f"/fhir/R4/Patient?{q}").json().get("entry", []))

    assert (count("identifier=X1"), count("identifier=|X1"), count("identifier=urn:mrn|X1")) == (
        2,
        1,
        1,
    )


def test_out_of_range_inputs_are_4xx(live: Live) -> None:
    """Huge page tokens and version ids, and oversize declared bodies, are client errors."""
    token = base64.urlsafe_b64encode(json.dumps({"o": 10**30}).encode()).decode().rstrip("=")
    assert live.client.get(f"/fhir/R4/Patient?_page_token={token}").status_code == 400
    assert live.client.get("/fhir/R4/Patient/x/_history/99999999999999999999").status_code == 404
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        # Declare a gigabyte and send none of it: the answer must come before any buffering.
        auth = live.ids.headers()["Authorization"].encode()
        sock.sendall(
            b"POST /fhir/R4/Patient HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + b"\r\n"
            b"Content-Type: application/fhir+json\r\nContent-Length: 1000000000\r\n\r\n"
        )
        reply = sock.recv(200)
    assert reply.startswith(b"HTTP/1.1 413"), reply
