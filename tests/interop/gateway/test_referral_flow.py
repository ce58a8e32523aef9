"""The referral flow end to end over real sockets and HTTP: a member hospital's orders over
MLLP, held until the dictionary mapping exists, results from the central hospital's LIS/PACS
(one arriving before its order), a correction and a recall, duplicates and malformed
messages; then reconciliation shows nothing lost, duplicated or mismatched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from medledger.interop.hl7.ack import parse_ack
from medledger.interop.hl7.codec import decode
from medledger.interop.hl7.results import read_results
from medledger.interop.hl7.senders import SenderMap
from medledger.interop.mllp.client import MllpClient
from medledger.interop.terminology import Mapping, concept_map
from tests.identity import CENTRAL, MEMBER
from tests.interop.gateway.server import Hub, Receiver

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("interop-e2e")]

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "hl7"
MAPPINGS = [
    Mapping("CT0101", "胸部CT平扫", "300101", "胸部CT平扫"),
    Mapping("XCG", "血常规", "250101", "血常规"),
    Mapping("SGN", "肾功能", "250301", "肾功能"),
]


def sample(name: str) -> bytes:
    # The samples name the member hospital's facility; the test's institution ids differ
    # from the samples' (hosp-member-east), which only the facility map sees.
    return (SAMPLES / name).read_bytes()


def send(hub: Hub, *messages: bytes) -> list[str]:
    """Send over MLLP; return the ACK codes (AA, AE, AR) in order."""

    async def go() -> list[bytes]:
        async with MllpClient("127.0.0.1", hub.mllp_port, timeout=30) as client:
            return [await client.send(m) for m in messages]

    return [parse_ack(a).code for a in asyncio.run(go())]


def wait_for(check, seconds: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """The member hospital's HIS, receiving pushed results over MLLP."""
    his = Receiver().start()
    try:
        yield his
    finally:
        his.stop()


@pytest.fixture
def hub(tmp_path: Path, receiver: Receiver) -> Iterator[Hub]:
    running = Hub(tmp_path, receiver_port=receiver.port)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def corrected(report: bytes) -> bytes:
    """The CT report sent again as a correction (OBR-25 C) with a new control id."""
    text = report.decode("utf-8")
    text = text.replace("PACS20240501000777", "PACS20240502000901")
    text = text.replace("||CT|F", "||CT|C", 1)
    text = text.replace("右肺下叶微小结节", "右肺下叶结节约6mm（更正）")
    return text.encode("utf-8")


def test_referral_flow_over_mllp(hub: Hub, receiver: Receiver) -> None:
    """Orders held for a mapping, a result before its order, correction and recall, a
    duplicate and bad messages: every ACK right, every outcome stored or explained."""
    report = sample("oru_ct_report.hl7")
    assert b"||CT|F" in report
    # A result before its order: accepted (AA) and held until the order arrives.
    assert send(hub, report) == ["AA"]
    # Orders whose codes have no mapping to the central dictionary yet: held, not dropped.
    assert send(hub, sample("orm_ct_chest.hl7"), sample("oml_lab.hl7")) == ["AA", "AA"]
    with hub.http() as http:
        held = http.get("/api/v1/interop/worklist").json()
        assert sorted(m["status"] for m in held) == ["held"] * 3
        assert any("CT0101" in " ".join(m["unmapped"]) for m in held)
        # The mapping arrives: the orders are released, then the result waiting for one.
        cm = concept_map(MEMBER, CENTRAL, MAPPINGS)
        made = http.post("/fhir/R4/ConceptMap", json=cm)
        assert made.status_code == 201, made.text
        assert wait_for(lambda: http.get("/api/v1/interop/worklist").json() == []), http.get(
            "/api/v1/interop/worklist"
        ).json()
    # Lab results, then the same message again (a lost ACK): AA both times, stored once.
    lab = sample("oru_lab.hl7")
    assert send(hub, lab, lab) == ["AA", "AA"]
    # A correction of the CT report and a recall of the 肾功能 report.
    assert send(hub, corrected(report), sample("oru_recall.hl7")) == ["AA", "AA"]
    # Bad messages: unreadable (AR), unknown facility (AR), a report without OBR-3 (AE).
    unknown = sample("orm_us_abdomen.hl7").replace("示例区中医院".encode(), b"NOWHERE", 1)
    no_filler = lab.replace(b"LIS20240501003344", b"LIS-NOFILLER-1").replace(
        b"|SQ202405010005|F2024050100051|", b"|SQ202405010005||"
    )
    assert send(hub, b"not hl7 at all", unknown, no_filler) == ["AR", "AR", "AE"]
    with hub.http("dr-member") as http:
        # The member hospital sees its CT report in two versions: final, then corrected.
        reports = http.get("/fhir/R4/DiagnosticReport", params={"_count": "50"}).json()
        by_status = sorted(e["resource"]["status"] for e in reports.get("entry", []))
        assert by_status == ["corrected", "entered-in-error", "final"], by_status
        ct = next(e["resource"] for e in reports["entry"] if e["resource"]["status"] == "corrected")
        history = http.get(f"/fhir/R4/DiagnosticReport/{ct['id']}/_history").json()
        assert [e["resource"]["status"] for e in history["entry"]] == ["corrected", "final"]
        assert ct["basedOn"][0]["reference"].startswith("ServiceRequest/")
        orders = http.get("/fhir/R4/ServiceRequest", params={"_count": "50"}).json()
        codes = {c["code"] for e in orders["entry"] for c in e["resource"]["code"]["coding"]}
        assert {"CT0101", "300101", "XCG", "250101", "SGN", "250301"} <= codes
        specimens = http.get("/fhir/R4/Specimen").json()
        group = [
            i["value"]
            for e in specimens["entry"]
            for i in e["resource"]["identifier"]
            if i["system"] == "urn:medledger:id:group:barcode"
        ]
        assert len(set(group)) == len(group) == 2  # one per lab specimen, unique
        assert all(len(v) == 14 and v.isdigit() and v.startswith("12") for v in group)
    # Every stored report version was pushed to the member hospital's HIS as ORU^R01 in the
    # route's charset (GB18030): the first CT report, its correction, both lab reports and
    # the recall; each decodes to the report it carries.
    assert wait_for(lambda: len(receiver.messages) >= 5), len(receiver.messages)
    pushed = [read_results(decode(m), SenderMap({"MEDLEDGER": CENTRAL})) for m in receiver.messages]
    assert all(b"GB18030" in m.split(b"\r", 1)[0] for m in receiver.messages)
    statuses = sorted(r.status for batch in pushed for r in batch)
    assert statuses == ["corrected", "entered-in-error", "final", "final", "final"], statuses
    with hub.http() as http:
        rec = http.get("/api/v1/interop/reconciliation").json()
        assert rec["totals"]["forwarded"] == rec["totals"]["delivered"] == 5
        assert rec["totals"]["lost"] == 0
        assert rec["totals"]["unfinished"] == 0
        assert rec["totals"]["duplicates"] == 1
        assert rec["totals"]["mismatches"] == 0
        assert rec["totals"]["stored"] == 6
        assert rec["totals"]["rejected"] == 2
        assert rec["totals"]["quarantined"] == 1
        assert sorted(g["status"] for g in rec["gaps"]) == ["quarantined", "rejected", "rejected"]
        assert all("张伟" not in str(g) for g in rec["gaps"])  # no patient data in the report
        # Every message is audited, under the sending institution's interface.
        events = http.get(
            "/fhir/R4/AuditEvent", params={"agent": "mllp.hosp-member", "_count": "50"},
            headers=hub.ids.headers("auditor"),
        ).json()  # fmt: skip
        assert len(events.get("entry", [])) >= 2


def test_every_gateway_route_needs_a_token(hub: Hub) -> None:
    """Each /api/v1/interop operation the running server documents answers 401 without a
    token (the list comes from the server itself, so new routes are covered)."""
    with httpx.Client(base_url=hub.url, timeout=30) as anonymous:
        paths = anonymous.get("/openapi.json").json()["paths"]
        operations = [
            (method.upper(), path.replace("{message_id}", "1").replace("{barcode}", "1"))
            for path, item in paths.items()
            if path.startswith("/api/v1/interop")
            for method in item
        ]
        assert any(p == "/api/v1/interop/hl7" for _, p in operations)
        for method, path in operations:
            r = anonymous.request(method, path)
            assert r.status_code == 401, (method, path, r.status_code)
