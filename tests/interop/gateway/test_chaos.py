"""Chaos over real sockets: kill -9 mid-stream, connections dropped before the ACK, every
message sent again, results before their orders. Afterwards every ACKed message is stored
exactly once, and reconciliation shows 0 lost, 0 duplicated, 0 mismatched."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from medledger.errors import EnvironmentFailure
from medledger.interop.hl7.ack import parse_ack
from medledger.interop.hl7.outbound import order_message, result_message
from medledger.interop.mllp.client import MllpClient
from medledger.interop.mllp.framing import encode_frame
from medledger.interop.model import (
    Coded,
    OrderItem,
    Patient,
    Requisition,
    Result,
    code_system,
)
from medledger.interop.terminology import Mapping, concept_map
from tests.identity import CENTRAL, MEMBER
from tests.interop.gateway.server import CENTRAL_FACILITY, MEMBER_FACILITY, Hub

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("interop-e2e")]

CST = timezone(timedelta(hours=8))
N = 24  # orders, each with one result


def messages() -> list[tuple[str, bytes]]:
    """(control id, bytes): N orders and their results; every third result comes first."""
    now = datetime(2024, 5, 1, 9, 0, tzinfo=CST)
    out: list[tuple[str, bytes]] = []
    for i in range(N):
        patient = Patient(id=f"MZ{i:04d}", name=f"测试{i}", sex="female", birth_date="1980-02-03")
        req = Requisition(
            sender=MEMBER,
            performer=CENTRAL,
            patient=patient,
            items=(
                OrderItem(
                    placer=f"SQ{i:06d}",
                    code=Coded(code_system(MEMBER), "CT0101", "胸部CT平扫"),
                    kind="radiology",
                ),
            ),
            authored="2024-05-01T08:00:00+08:00",
        )
        res = Result(
            sender=CENTRAL,
            placer_institution=MEMBER,
            patient=patient,
            placer=f"SQ{i:06d}",
            filler=f"CT{i:06d}",
            code=Coded(code_system(CENTRAL), "300101", "胸部CT平扫"),
            kind="radiology",
            status="final",
            issued="2024-05-01T15:00:00+08:00",
            conclusion="双肺未见明显异常。",
        )
        orm = order_message(
            req,
            control_id=f"ORM{i:04d}",
            sending=("HIS", MEMBER_FACILITY),
            receiving=("RIS", CENTRAL_FACILITY),
            now=now,
        )
        oru = result_message(
            res,
            control_id=f"ORU{i:04d}",
            sending=("PACS", CENTRAL_FACILITY),
            receiving=("HIS", MEMBER_FACILITY),
            charset="GB18030" if i % 2 else "UTF-8",
            now=now,
        )
        pair = [(f"ORM{i:04d}", orm), (f"ORU{i:04d}", oru)]
        out += pair[::-1] if i % 3 == 0 else pair
    return out


async def _send_one(port: int, raw: bytes) -> str | None:
    """Send one message on its own connection; its ACK code, or None if none came."""
    try:
        async with MllpClient("127.0.0.1", port, timeout=15) as client:
            return parse_ack(await client.send(raw)).code
    except EnvironmentFailure:
        return None


def drop_before_ack(port: int, raw: bytes) -> None:
    """Write the message and close at once, never reading the ACK."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(encode_frame(raw))


def test_kill_drop_resend_and_duplicates(hub: Hub) -> None:
    """Every message ends stored exactly once whatever happened on the way."""
    with hub.http() as http:
        made = http.post(
            "/fhir/R4/ConceptMap",
            json=concept_map(MEMBER, CENTRAL, [Mapping("CT0101", "胸部CT平扫", "300101")]),
        )
        assert made.status_code == 201, made.text
    rng = random.Random(7)
    todo = messages()
    acked: dict[str, str] = {}
    killed = threading.Event()

    def killer() -> None:
        time.sleep(0.4)
        hub.kill()  # kill -9 while messages are in flight
        killed.set()

    threading.Thread(target=killer, daemon=True).start()
    unacked: list[tuple[str, bytes]] = []
    for control, raw in todo:
        if not killed.is_set() and rng.random() < 0.15:
            with contextlib.suppress(OSError):
                drop_before_ack(hub.mllp_port, raw)
        code = None if killed.is_set() else asyncio.run(_send_one(hub.mllp_port, raw))
        if code is None:
            unacked.append((control, raw))
        else:
            acked[control] = code
    killed.wait(30)
    assert unacked, "the kill came after the last message: nothing was tested"
    hub.start()  # recovery, then every unacknowledged message again, then all once more
    for control, raw in unacked + todo:
        code = asyncio.run(_send_one(hub.mllp_port, raw))
        assert code is not None, (control, hub.tail())
        acked.setdefault(control, code)
    assert set(acked.values()) == {"AA"}
    assert len(acked) == 2 * N
    with hub.http() as http:
        rec = http.get("/api/v1/interop/reconciliation").json()
        totals = rec["totals"]
        assert totals["distinct"] == 2 * N
        assert totals["stored"] == 2 * N, rec["gaps"]
        assert totals["lost"] == totals["unfinished"] == totals["mismatches"] == 0
        assert totals["duplicates"] >= N  # everything was sent at least twice
        for rtype in ("ServiceRequest", "DiagnosticReport", "Patient"):
            found = http.get(f"/fhir/R4/{rtype}", params={"_total": "accurate", "_count": "1"})
            assert found.json()["total"] == N, rtype  # nothing created twice
