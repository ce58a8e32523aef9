"""The hub demo's gateway: HL7 v2 over MLLP beside the HTTP API.

The member hospital's HIS sends an ORM^O01 (a chest CT) whose item code the gateway translates
with a mapping the member hospital imported; the central PACS answers with an ORU^R01 in
GB18030, as many Chinese systems do. Both are journalled, stored, anchored and acknowledged;
the printed reconciliation command shows the counts.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timedelta, timezone

import httpx

from medledger.access.audit_trail import AuditTrail
from medledger.interop.config import parse_gateway
from medledger.interop.dictionaries import mapping_id
from medledger.interop.hl7.ack import parse_ack
from medledger.interop.hl7.outbound import order_message, result_message
from medledger.interop.mllp.client import MllpClient
from medledger.interop.model import Coded, OrderItem, Patient, Requisition, Result, code_system
from medledger.interop.runtime import Interop
from medledger.interop.terminology import Mapping, concept_map
from medledger.records.service import RecordService

__all__ = ["MEMBER_FACILITY", "open_gateway", "send_referral"]

CENTRAL, MEMBER = "hosp-central", "hosp-member-east"
CENTRAL_FACILITY, MEMBER_FACILITY = "示例市第一人民医院", "示例区中医院"
CST = timezone(timedelta(hours=8))


def open_gateway(service: RecordService, trail: AuditTrail, host: str) -> tuple[Interop, int]:
    """The gateway with an MLLP listener on a free port of ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        port = int(s.getsockname()[1])
    config = parse_gateway(
        {
            "facilities": {MEMBER_FACILITY: MEMBER, CENTRAL_FACILITY: CENTRAL},
            "barcodes": {"institutions": {MEMBER: "12", CENTRAL: "10"}},
        }
    )
    return Interop.open(service, config, trail=trail, listen=(host, port)), port


def send_referral(his: httpx.Client, host: str, port: int) -> list[str]:
    """Import the member's mapping over HTTP, then send an order and its report over MLLP;
    return the two ACK codes."""
    cm = concept_map(MEMBER, CENTRAL, [Mapping("JC0101", "胸部CT平扫", "300101", "胸部CT平扫")])
    cm["id"] = mapping_id(MEMBER, CENTRAL)
    his.put(f"/fhir/R4/ConceptMap/{cm['id']}", json=cm).raise_for_status()
    now = datetime.now(CST).replace(microsecond=0)
    patient = Patient(id="MZ20990001", name="赵敏", sex="female", birth_date="1985-06-01")
    req = Requisition(
        sender=MEMBER,
        performer=CENTRAL,
        patient=patient,
        items=(
            OrderItem(
                placer="HL7-SQ0001",
                code=Coded(code_system(MEMBER), "JC0101", "胸部CT平扫"),
                kind="radiology",
                note="咳嗽两周",
            ),
        ),
        authored=now.isoformat(),
    )
    res = Result(
        sender=CENTRAL,
        placer_institution=MEMBER,
        patient=patient,
        placer="HL7-SQ0001",
        filler="HL7-CT0001",
        code=Coded(code_system(CENTRAL), "300101", "胸部CT平扫"),
        kind="radiology",
        status="final",
        issued=now.isoformat(),
        findings="双肺纹理清晰，未见实变影。",
        conclusion="胸部CT平扫未见明显异常。",
    )
    messages = [
        order_message(
            req,
            control_id="DEMO-ORM-1",
            sending=("HIS", MEMBER_FACILITY),
            receiving=("RIS", CENTRAL_FACILITY),
            now=now,
        ),
        result_message(
            res,
            control_id="DEMO-ORU-1",
            sending=("PACS", CENTRAL_FACILITY),
            receiving=("HIS", MEMBER_FACILITY),
            charset="GB18030",
            now=now,
        ),
    ]

    async def go() -> list[bytes]:
        async with MllpClient(host, port, timeout=30) as client:
            return [await client.send(m) for m in messages]

    return [parse_ack(a).code for a in asyncio.run(go())]
