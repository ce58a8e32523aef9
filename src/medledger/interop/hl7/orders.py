"""Read an order message (ORM^O01, OML^O21) into a :class:`~medledger.interop.model.Requisition`.

Field mapping (segments are grouped as :mod:`medledger.interop.hl7.groups` describes; each
ORC/OBR group is one :class:`~medledger.interop.model.OrderItem`):

==================  ==========================================================================
model               HL7
==================  ==========================================================================
patient             PID (see :mod:`medledger.interop.hl7.fields`); one patient per message
visit               PV1-19.1
sender              ORC-21 (XON.1 or XON.10) of the first group, else ORC-13.4 (PL facility),
                    else MSH-4 — through the :class:`SenderMap`; unknown → AR 103
performer           MSH-6 through the SenderMap; None when empty; unknown → AR 103
authored            ORC-9 of the first group, else MSH-7 (TS; +08:00 when no offset)
requester           ORC-12 of the first group: family+given name, else the id (XCN.1)
control_id          MSH-10
item.placer         OBR-2.1, else ORC-2.1 — required (AE 101 naming OBR-2); unique (AE 205)
item.filler         OBR-3.1, else ORC-3.1
item.code           OBR-4 (code ^ text ^ coding system) — required (AE 101)
item.kind           OBR-24, see :mod:`medledger.interop.hl7.vocab` (AE 101 / 103 naming OBR-24)
item.status         ORC-1: NW XO RL → active; CA OC DC CR → revoked; HD → on-hold; SC reads
                    ORC-5 (CM → completed, CA DC → revoked, HD → on-hold, IP SC A → active);
                    no ORC → active; another code → AE 103
item.priority       ORC-7.6, else OBR-27.6, else TQ1-9.1: S stat, A asap, R routine,
                    U/URGENT/T urgent, P C PRN routine; empty → routine; another → AE 103
item.note           OBR-13 (relevant clinical information, text)
item.specimen_type  SPM-4 (OML), else OBR-15.1 (``code & text & system`` subcomponents)
item.body_site      OBR-15.4 (text subcomponent, else code)
item.collected      SPM-17.1 (OML), else OBR-7 — lab kinds only
item.barcode        SPM-2.1 (OML, placer's specimen id), else OBR-18 (placer field 1, where
                    Chinese HIS put the 送检条码), else OBR-20 — lab kinds only
==================  ==========================================================================

A bad date anywhere is AE 102 naming the field. ORC-9, ORC-12 and ORC-21 of later groups are
not read: one requisition has one author and one ordering institution; a later group naming
another ordering facility is AE 207.
"""

from __future__ import annotations

from typing import Literal, cast

from medledger.errors import MessageRejected
from medledger.interop.hl7.codec import Decoded
from medledger.interop.hl7.fields import (
    coded,
    facility_of,
    hd_names,
    lookup,
    no_segment,
    person,
    read_patient,
    require_time,
    sending_facility,
    service,
    sub_coded,
    time_field,
)
from medledger.interop.hl7.groups import Group, group_segments
from medledger.interop.hl7.segments import Seg
from medledger.interop.hl7.senders import SenderMap
from medledger.interop.hl7.vocab import CONTROL_STATUS, PRIORITY, STATUS_CODES
from medledger.interop.model import LAB_KINDS, OrderItem, Requisition

__all__ = ["read_order"]

_Priority = Literal["routine", "urgent", "asap", "stat"]
_Status = Literal["active", "revoked", "on-hold", "completed"]


def read_order(decoded: Decoded, senders: SenderMap) -> Requisition:
    """Map a decoded ORM^O01 or OML^O21 to a Requisition; raise ``MessageRejected``."""
    msh = decoded.expect(("ORM", "OML"), "an order message", "ORM^O01 or OML^O21")
    code = decoded.header.message_code
    groups = group_segments(decoded.segments)
    if not groups:
        raise no_segment("ORC", "an order message needs at least one ORC/OBR group")
    first = groups[0]
    if first.pid is None:
        raise no_segment("PID", "the patient (PID) must come before the orders")
    for g in groups:
        if g.pid is not first.pid:
            raise no_segment("PID", "one order message carries one patient", sequence=2)
    sender = _sender(groups, msh, senders)
    performer = _performer(msh, senders)
    items = tuple(_item(g, sender, oml=code == "OML") for g in groups)
    _unique(groups, items)
    authored = time_field(first.orc, 9, "transaction date/time") if first.orc else None
    return Requisition(
        sender=sender,
        performer=performer,
        patient=read_patient(first.pid),
        items=items,
        authored=authored or require_time(msh, 7, "message date/time"),
        requester=person(first.orc, 12) if first.orc else None,
        control_id=decoded.control_id,
        visit=first.pv1.comp(19) if first.pv1 else None,
    )


def _sender(groups: list[Group], msh: Seg, senders: SenderMap) -> str:
    """Return the ordering institution: ORC-21/ORC-13 of the groups, else MSH-4."""
    chosen: str | None = None
    seen: set[int] = set()
    for g in groups:
        if g.orc is None or id(g.orc) in seen:
            continue
        seen.add(id(g.orc))
        found, position = facility_of(g.orc, senders)
        if found is not None and chosen is not None and found != chosen:
            raise g.orc.fail(
                position,
                "a later order names another ordering facility",
                code="207",
                expected="one ordering institution per message",
            )
        chosen = chosen or found
    return chosen if chosen is not None else sending_facility(msh, senders)


def _performer(msh: Seg, senders: SenderMap) -> str | None:
    """Return the institution of MSH-6, None when empty; reject an unknown one."""
    names = hd_names(msh, 6)
    if not any(names):
        return None
    found = senders.lookup(names)
    if found is None:
        raise msh.fail(
            6,
            "the receiving facility is not one we know",
            code="103",
            ack="AR",
            value=" / ".join(x for x in names if x),
            expected="a facility configured in the sender map",
        )
    return found


def _item(g: Group, sender: str, *, oml: bool) -> OrderItem:
    """Return the OrderItem of one ORC/OBR group."""
    obr = g.require_obr()
    placer = g.number(2)
    if placer is None:
        raise obr.fail(
            2,
            "the placer order number is required but empty",
            expected="a placer order number in OBR-2 or ORC-2",
        )
    code, kind = service(obr, sender)
    spm = g.specimens[0] if oml and g.specimens else None
    lab = kind in LAB_KINDS
    specimen = coded(spm, 4, sender, what="specimen type") if spm else sub_coded(obr, 15, 1, sender)
    collected = None
    barcode = None
    if lab:
        if spm is not None:
            collected = time_field(spm, 17, "specimen collection date/time")
            barcode = spm.get(2, 1, 1) or spm.get(2, 2, 1)
        collected = collected or time_field(obr, 7, "observation date/time")
        barcode = barcode or obr.comp(18) or obr.comp(20)
    return OrderItem(
        placer=placer,
        code=code,
        kind=kind,
        filler=g.number(3),
        barcode=barcode,
        specimen_type=specimen,
        collected=collected,
        priority=_priority(g),
        status=_status(g.orc),
        note=obr.text(13),
        body_site=obr.get(15, 4, 2) or obr.get(15, 4, 1),
    )


def _priority(g: Group) -> _Priority:
    """Return the priority of a group from ORC-7, OBR-27 or TQ1-9."""
    for seg, n, comp in ((g.orc, 7, 6), (g.obr, 27, 6), (g.tq1, 9, 1)):
        if seg is None:
            continue
        raw = seg.comp(n, comp)
        if raw is None:
            continue
        mapped = lookup(
            seg,
            n,
            PRIORITY,
            raw.strip().upper(),
            "the priority is not a known code",
            value=raw,
            expected="S, A, R, U, T, P, C or PRN",
        )
        return cast(_Priority, mapped)
    return "routine"


def _status(orc: Seg | None) -> _Status:
    """Return the item status from ORC-1 (and ORC-5 for SC)."""
    if orc is None:
        return "active"
    control = orc.required(1, "order control code").upper()
    if control == "SC":
        order_status = (orc.comp(5) or "SC").upper()
        mapped = lookup(
            orc,
            5,
            STATUS_CODES,
            order_status,
            "the order status is not a known code",
            value=order_status,
            expected=" ".join(STATUS_CODES),
        )
        return cast(_Status, mapped)
    mapped = lookup(
        orc,
        1,
        CONTROL_STATUS,
        control,
        "the order control code is not one we take",
        value=control,
        expected=" ".join([*CONTROL_STATUS, "SC"]),
    )
    return cast(_Status, mapped)


def _unique(groups: list[Group], items: tuple[OrderItem, ...]) -> None:
    """Reject a message naming one placer order number twice (AE 205)."""
    seen: set[str] = set()
    for g, item in zip(groups, items, strict=True):
        if item.placer in seen:
            assert g.obr is not None
            raise MessageRejected(
                f"{g.obr.where(2)}: the placer order number appears twice in the message",
                segment="OBR",
                sequence=g.obr.sequence,
                position=2,
                hl7_error="205",
                value=item.placer,
                expected="one OBR per placer order number",
            )
        seen.add(item.placer)
