"""GET /api/v1/interop/specimens: the rows a performing LIS downloads, over a real server."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from medledger.interop.model import code_system, identifier_system
from medledger.records.guard import SystemGuard
from tests.interop.specimens._orders import CENTRAL, COLLECTED, EAST, MEMBER, OTHER, V2_0487
from tests.interop.specimens.conftest import Site

URL = "/api/v1/interop/specimens"
EAST_DICT = code_system(EAST)


def _get(site: Site, who: str, **params: str) -> dict[str, Any]:
    with site.client(who) as client:
        response = client.get(URL, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def _all_pages(site: Site, who: str, **params: str) -> list[list[dict[str, Any]]]:
    """Follow next_page_token to the end; return each page's rows."""
    pages, token = [], params.pop("_page_token", None)
    while True:
        extra = {"_page_token": token} if token else {}
        body = _get(site, who, **params, **extra)
        pages.append(body["rows"])
        token = body["next_page_token"]
        if token is None:
            assert body["next"] is None
            return pages
        assert f"_page_token={token}" in body["next"]


def _item(site: Site, placer: str, code: str, name: str, kind: str = "lab") -> dict[str, Any]:
    translated = {"1001": "血细胞分析（五分类）"} if code == "XCG" else {}
    return {
        "placer": placer, "system": EAST_DICT, "code": code, "name": name,
        "performer_code": next(iter(translated), None),
        "performer_name": next(iter(translated.values()), None),
        "kind": kind, "status": "active",
        "fhir_ref": f"ServiceRequest/{site.order(EAST, placer)['id']}",
    }  # fmt: skip


def _row(
    site: Site, own: str, patient: str, items: list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    """The row expected for the Specimen with the member's barcode ``own``."""
    spec = site.specimen(EAST, own)
    found = site.service.search(
        "Patient", [("identifier", f"{identifier_system(EAST, 'patient')}|{patient}")]
    )
    pseudonym = site.service.indexer.patient_pseudonym(f"Patient/{found.resources[0]['id']}")
    orders = [site.service.read(*i["fhir_ref"].split("/")).resource for i in items]
    updated = max([spec["meta"]["lastUpdated"], *(o["meta"]["lastUpdated"] for o in orders)])
    row = {
        "barcode": site.barcodes.get(own, own), "member_barcode": own,
        "placers": [i["placer"] for i in items], "sender": EAST, "performer": CENTRAL,
        "patient_pseudonym": pseudonym, "items": items,
        "specimen_type": {"system": V2_0487, "code": "BLD", "name": "全血"},
        "collected": COLLECTED, "ordered": "2026-11-23T08:05:00+08:00", "status": "active",
        "updated": updated,
        "fhir": {"specimen": f"Specimen/{spec['id']}",
                 "service_requests": [i["fhir_ref"] for i in items]},
    }  # fmt: skip
    return {**row, **fields}


def _expected(site: Site) -> list[dict[str, Any]]:
    """The three downloadable specimens of the seeded orders for the central hospital."""
    crp = site.barcodes["CRP"]
    return [
        _row(
            site, "E0001", "MZ0001",
            [_item(site, "SQ-0001", "XCG", "血常规"), _item(site, "SQ-0002", "GGN", "肝功能")],
        ),
        _row(
            site, "E0002", "MZ0002",
            [_item(site, "SQ-0004", "BL01", "组织病理检查", "pathology")],
            specimen_type={"system": V2_0487, "code": "TISS", "name": "组织"},
            collected="2026-11-23T09:10:00+08:00",
        ),
        _row(
            site, crp, "MZ0001", [_item(site, "SQ-0006", "CRP", "C反应蛋白")],
            member_barcode=None,
        ),
    ]  # fmt: skip


def test_download_rows_are_exact(shared: Site) -> None:
    """The central LIS gets one row per labelled lab specimen, exactly, oldest first."""
    expected = _expected(shared)
    body = _get(shared, "dr-central", performer=CENTRAL, status="active", _count="100")
    assert body == {"rows": expected, "next_page_token": None, "next": None}
    assert _get(shared, "hub", performer=CENTRAL)["rows"] == expected


def test_rows_carry_no_patient_name(shared: Site) -> None:
    """Neither patient names nor patient ids appear anywhere in a download."""
    with shared.client("hub") as client:
        text = client.get(URL).text
    for secret in ("张三", "李四", "王五", "赵六", "MZ0001", "MZ0002", "MZ9001"):
        assert secret not in text


def test_performer_filter_and_visibility(shared: Site) -> None:
    """Each caller sees only the specimens its institution may see, per performer."""
    hub = [r["member_barcode"] for r in _get(shared, "hub")["rows"]]
    assert hub == ["E0001", "E0002", None, "M0001"]
    assert [r["performer"] for r in _get(shared, "hub", performer=EAST)["rows"]] == [EAST]
    assert _get(shared, "hub", performer=OTHER)["rows"] == []
    central = _get(shared, "dr-central")["rows"]
    assert [r["member_barcode"] for r in central] == ["E0001", "E0002", None]
    member = _get(shared, "dr-member")["rows"]
    assert [(r["sender"], r["member_barcode"]) for r in member] == [(MEMBER, "M0001")]
    assert _get(shared, "dr-member", performer=CENTRAL)["rows"] == []
    east = _get(shared, "dr-central", performer=EAST)["rows"]
    assert east == []  # hosp-member's order to hosp-member-east is none of the central's


def test_unrelated_institution_sees_nothing(shared: Site) -> None:
    """A clinician of an institution that neither sent nor performs gets no rows."""
    for params in ({}, {"performer": CENTRAL}, {"performer": EAST}, {"performer": OTHER}):
        assert _get(shared, "dr-other", **params) == {
            "rows": [], "next_page_token": None, "next": None,
        }  # fmt: skip


def test_paging_follows_the_keyset(shared: Site) -> None:
    """Pages of one row come in order; a Specimen without group barcode leaves a page empty."""
    pages = _all_pages(shared, "dr-central", performer=CENTRAL, _count="1")
    assert all(len(p) <= 1 for p in pages)
    assert [r for p in pages for r in p] == _expected(shared)
    assert [len(p) for p in pages] == [1, 1, 0, 1]  # E0003 is scanned but has no group barcode


def test_a_specimen_changed_while_paging_comes_again_last(seeded: Site) -> None:
    """A Specimen written again after its page was read moves behind the cursor: not lost."""
    first = _get(seeded, "hub", performer=CENTRAL, _count="1")
    assert first["rows"][0]["member_barcode"] == "E0001"
    spec = seeded.specimen(EAST, "E0002")  # not read yet: must not be skipped either
    seeded.service.update("Specimen", spec["id"], {**spec, "status": "available"},
                          guard=SystemGuard(EAST))  # fmt: skip
    spec = seeded.specimen(EAST, "E0001")
    seeded.service.update("Specimen", spec["id"], {**spec, "status": "available"},
                          guard=SystemGuard(EAST))  # fmt: skip
    rest = _all_pages(
        seeded, "hub", performer=CENTRAL, _count="1", _page_token=first["next_page_token"]
    )
    seen = [r["member_barcode"] for p in rest for r in p]
    assert seen == [None, "E0002", "E0001"]


def test_since_shows_changed_orders_and_status_filters(seeded: Site) -> None:
    """A cancelled item brings its specimen back under since; status filters by item status."""
    time.sleep(0.01)
    since = datetime.now(UTC).isoformat()
    assert _get(seeded, "hub", performer=CENTRAL, since=since)["rows"] == []
    order = seeded.order(EAST, "SQ-0002")
    seeded.service.update("ServiceRequest", order["id"], {**order, "status": "revoked"},
                          guard=SystemGuard(EAST))  # fmt: skip
    rows = _get(seeded, "hub", performer=CENTRAL, since=since)["rows"]
    assert [r["member_barcode"] for r in rows] == ["E0001"]
    assert [i["status"] for i in rows[0]["items"]] == ["active", "revoked"]
    assert rows[0]["status"] == "active"
    assert rows[0]["updated"] == seeded.order(EAST, "SQ-0002")["meta"]["lastUpdated"]
    revoked = _get(seeded, "hub", performer=CENTRAL, status="revoked")["rows"]
    assert [r["member_barcode"] for r in revoked] == ["E0001"]
    assert _get(seeded, "hub", performer=CENTRAL, status="completed,on-hold")["rows"] == []
    order = seeded.order(EAST, "SQ-0001")
    seeded.service.update("ServiceRequest", order["id"], {**order, "status": "revoked"},
                          guard=SystemGuard(EAST))  # fmt: skip
    active = _get(seeded, "hub", performer=CENTRAL, status="active")["rows"]
    assert [r["member_barcode"] for r in active] == ["E0002", None]
    gone = _get(seeded, "hub", performer=CENTRAL, status="revoked")["rows"]
    assert [(r["member_barcode"], r["status"]) for r in gone] == [("E0001", "revoked")]


def test_deleted_order_drops_its_item(seeded: Site) -> None:
    """A deleted ServiceRequest is no item; a specimen left without items is no row."""
    seeded.service.delete("ServiceRequest", seeded.order(EAST, "SQ-0004")["id"])
    rows = _get(seeded, "hub", performer=CENTRAL)["rows"]
    assert [r["member_barcode"] for r in rows] == ["E0001", None]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("patient=MZ0001", "patient"),
        ("since=yesterday", "since"),
        ("since=2026-11-23T08:00:00", "since"),
        ("status=cancelled", "status"),
        ("status=active,", "status"),
        ("_count=0", "_count"),
        ("_count=1001", "_count"),
        ("_page_token=not-a-token", "_page_token"),
        ("performer=Hosp%20Central", "performer"),
        ("performer=hosp-central&performer=hosp-other", "performer"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(shared: Site, query: str, field: str) -> None:
    """Every refused parameter is a 400 whose error names the field and what was wanted."""
    with shared.client("dr-central") as client:
        response = client.get(f"{URL}?{query}")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "input.invalid"
    assert error["details"]["field"] == field
    assert error["details"]["expected"]


def test_download_needs_a_token(shared: Site) -> None:
    """Without a bearer token the download is a 401, like every non-public route."""
    with httpx.Client(base_url=shared.url) as client:
        response = client.get(URL)
    assert response.status_code == 401
