"""Read a result message (ORU^R01) into :class:`~medledger.interop.model.Result` values.

One Result per OBR; a message may carry several OBR/OBX groups, for several orders and even
several patients (each OBR belongs to the PID before it). OBX segments are read as
:mod:`medledger.interop.hl7.observations` describes.

=====================  =======================================================================
model                  HL7
=====================  =======================================================================
sender                 MSH-4 through the SenderMap (unknown → AR 103, empty → AR 101)
placer_institution     ORC-21 / ORC-13.4, else MSH-6, through the SenderMap; None if unknown
patient                PID before the OBR (AE 100 when there is none)
placer                 OBR-2.1, else ORC-2.1; may be empty → None (a mismatch for the gateway)
filler                 OBR-3.1, else ORC-3.1 — required (AE 101 naming OBR-3); unique in the
                       message (AE 205)
code                   OBR-4 — required (AE 101)
kind                   OBR-24, the same rule as orders (AE 101 / 103 naming OBR-24)
status                 OBR-25, table 0123 → FHIR: O I S → registered, A → partial,
                       P R → preliminary, F → final, C → corrected, X → cancelled; required
                       (AE 101), another code AE 103 — overridden by the recall rule below
issued                 OBR-22, else MSH-7 (an instant; +08:00 when no offset; AE 102 when bad)
performer_name         OBR-32.1: family & given name subcomponents, else the id subcomponent
reason                 NTE-3 of the NTEs directly after the OBR (before any OBX), by newlines
barcode                SPM-2.1, else OBR-18, else OBR-20 — lab kinds only
items                  OBX segments, see observations (also findings, conclusion, images)
control_id             MSH-10
=====================  =======================================================================

**Recall profile (报告召回)**: a sender recalls an issued report by sending it again with every
OBX marked OBX-11 ``W`` (post original as wrong) or ``D`` (delete), with OBR-25 ``C`` or ``F``
and, optionally, the reason in an NTE right after the OBR (``NTE|1||标本溶血``). When every
OBX of the group is W or D (and there is at least one), the Result's status is
``entered-in-error``, whatever OBR-25 says, and each item's status is ``entered-in-error``.
A report cancelled before it was issued is sent with OBR-25 ``X`` and reads as ``cancelled``;
whether that cancels an issued report is the gateway's decision. A **correction** is sent with
OBR-25 ``C`` and the changed OBX marked ``C``; the reason goes in the NTE as for a recall.
"""

from __future__ import annotations

from medledger.interop.hl7.codec import Decoded
from medledger.interop.hl7.fields import (
    facility_of,
    hd_names,
    lookup,
    no_segment,
    person,
    read_patient,
    require_time,
    sending_facility,
    service,
    time_field,
)
from medledger.interop.hl7.groups import Group, group_segments
from medledger.interop.hl7.observations import read_observations
from medledger.interop.hl7.segments import Seg
from medledger.interop.hl7.senders import SenderMap
from medledger.interop.hl7.vocab import REPORT_STATUS
from medledger.interop.model import LAB_KINDS, Patient, Result

__all__ = ["read_results"]


def read_results(decoded: Decoded, senders: SenderMap) -> list[Result]:
    """Map a decoded ORU^R01 to one Result per OBR; raise ``MessageRejected``."""
    msh = decoded.expect(("ORU",), "a result message", "ORU^R01")
    sender = sending_facility(msh, senders)
    groups = group_segments(decoded.segments)
    if not groups:
        raise no_segment("OBR", "a result message needs at least one OBR")
    default_placer = senders.lookup(hd_names(msh, 6))
    patients: dict[int, Patient] = {}
    out: list[Result] = []
    for g in groups:
        if g.pid is None:
            raise no_segment("PID", "the patient (PID) must come before the results")
        if id(g.pid) not in patients:
            patients[id(g.pid)] = read_patient(g.pid)
        placer_institution = default_placer
        if g.orc is not None:
            found, _ = facility_of(g.orc, senders, required=False)
            placer_institution = found or default_placer
        res = _result(g, msh, sender, placer_institution, patients[id(g.pid)], decoded)
        if any(r.filler == res.filler for r in out):
            assert g.obr is not None
            raise g.obr.fail(
                3,
                "the filler order number appears twice in the message",
                code="205",
                value=res.filler,
                expected="one OBR per filler order number",
            )
        out.append(res)
    return out


def _result(
    g: Group,
    msh: Seg,
    sender: str,
    placer_institution: str | None,
    patient: Patient,
    decoded: Decoded,
) -> Result:
    """Return the Result of one OBR group."""
    obr = g.require_obr()
    filler = g.number(3)
    if filler is None:
        raise obr.fail(
            3,
            "the filler order number is required but empty",
            expected="the filler order number (the report's id) in OBR-3",
        )
    code, kind = service(obr, sender)
    raw_status = obr.required(25, "result status").upper()
    status = lookup(
        obr,
        25,
        REPORT_STATUS,
        raw_status,
        "the result status is not a known code",
        value=raw_status,
        expected=" ".join(REPORT_STATUS),
    )
    obs = read_observations(g.observations, sender, status)
    items = obs.items
    if obs.count and obs.withdrawn == obs.count:
        status = "entered-in-error"
    issued = time_field(obr, 22, "results report date/time", instant=True)
    reasons = [t for t in (n.text(3) for n in g.notes) if t is not None]
    spm = g.specimens[0] if g.specimens else None
    barcode = None
    if kind in LAB_KINDS:
        barcode = (spm.get(2, 1, 1) if spm else None) or obr.comp(18) or obr.comp(20)
    return Result(
        sender=sender,
        placer_institution=placer_institution,
        patient=patient,
        placer=g.number(2),
        filler=filler,
        code=code,
        kind=kind,
        status=status,
        issued=issued or require_time(msh, 7, "message date/time", instant=True),
        items=tuple(items),
        conclusion="\n".join(obs.conclusion) or None,
        findings="\n".join(obs.findings) or None,
        images=tuple(obs.images),
        performer_name=person(obr, 32),
        control_id=decoded.control_id,
        reason="\n".join(reasons) or None,
        barcode=barcode,
    )
