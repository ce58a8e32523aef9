"""Write model values as HL7 v2.5 messages: ORU^R01 for results, ORM^O01 for requisitions.

The messages follow the same profile the readers accept, so that reading one back
(``read_results(decode(result_message(r)))``) gives the value written, with ``control_id``
set to the message's. What cannot be written exactly:

- ``amended`` (report or item) is written as corrected (``C``) and reads back as corrected;
- an ``entered-in-error`` result is written as a recall: OBR-25 ``C`` and every OBX-11 ``W``
  (item statuses are overwritten); it needs at least one OBX (an item, a link, findings or
  a conclusion), else ``InputError``. Conversely, a result whose every item is
  ``entered-in-error`` (and which has no other OBX) reads back as a recall;
- an item whose code is one of the findings/conclusion codes and whose value is text reads
  back as findings or conclusion;
- a ``partial`` item status is written ``P`` and reads back as preliminary;
- ``Result.extra`` is not written;
- codes of the sender's own dictionary are written with coding system ``L``; other systems
  as their table 0396 mnemonic (``LN``, ``SCT`` …) or, failing one, as the URI itself.

The sending and receiving facility (MSH-4, MSH-6) are written as given; ``Result.sender`` is
read back through the reader's SenderMap from MSH-4, ``placer_institution`` and the
requisition's ``sender`` from ORC-21 (written as the institution id).
"""

from __future__ import annotations

from datetime import datetime

from medledger.errors import InputError
from medledger.interop.hl7.datatypes import fhir_to_hl7_date, fhir_to_hl7_ts, hl7_now
from medledger.interop.hl7.vocab import (
    KIND_OUT,
    PRIORITY_OUT,
    REPORT_STATUS_OUT,
    SEX_OUT,
    item_status_out,
    mnemonic_for,
)
from medledger.interop.hl7.writer import Writer, codec_or_fail
from medledger.interop.model import Coded, ImageLink, Patient, Requisition, Result, ResultItem

__all__ = ["order_message", "result_message"]

_ORDER_CONTROL = {"active": "NW", "revoked": "CA", "on-hold": "HD", "completed": "SC"}
_FINDINGS = Coded("http://loinc.org", "18782-3", "检查所见")
_CONCLUSION = Coded("http://loinc.org", "19005-8", "诊断意见")


def result_message(
    res: Result,
    *,
    control_id: str,
    sending: tuple[str, str],
    receiving: tuple[str, str],
    charset: str = "UTF-8",
    now: datetime,
) -> bytes:
    """Return an ORU^R01 carrying ``res``: MSH, PID, ORC (RE), OBR, NTE, OBX, NTE.

    ``sending`` and ``receiving`` are (application, facility); ``charset`` is written in
    MSH-18 and used to encode. Raise ``InputError`` for values the message cannot carry.
    """
    w = Writer(codec_or_fail(charset))
    recall = res.status == "entered-in-error"
    if recall and not (res.items or res.images or res.findings or res.conclusion):
        raise InputError(
            "a recalled (entered-in-error) result needs at least one observation to mark W",
            field="status",
            value=res.status,
            expected="items, images, findings or a conclusion",
        )
    segments = [
        _msh(w, "ORU^R01^ORU_R01", control_id, sending, receiving, charset, now),
        _pid(w, res.patient),
        w.segment(
            "ORC",
            {
                1: "RE",
                2: w.esc(res.placer),
                3: w.esc(res.filler),
                21: w.esc(res.placer_institution),
            },
        ),
        w.segment(
            "OBR",
            {
                1: "1",
                2: w.esc(res.placer),
                3: w.esc(res.filler),
                4: _coded(w, res.code, res.sender),
                18: w.esc(res.barcode),
                22: _ts(res.issued, "issued"),
                24: KIND_OUT[res.kind],
                25: REPORT_STATUS_OUT[res.status],
                32: w.subs(None, res.performer_name),
            },
        ),
    ]
    if res.reason:
        segments.append(w.segment("NTE", {1: "1", 3: w.esc(res.reason)}))
    report_obx = "W" if recall else item_status_out(res.status)
    n = 0
    for item in res.items:
        n += 1
        segments.append(_item_obx(w, n, item, res.sender, "W" if recall else None))
    for link in res.images:
        n += 1
        segments += _link_obx(w, n, link, report_obx)
    for text, code in ((res.findings, _FINDINGS), (res.conclusion, _CONCLUSION)):
        if text:
            n += 1
            fields = {1: str(n), 2: "TX", 3: _coded(w, code, res.sender), 5: w.esc(text)}
            segments.append(w.segment("OBX", {**fields, 11: report_obx}))
    return w.encode(segments)


def order_message(
    req: Requisition,
    *,
    control_id: str,
    sending: tuple[str, str],
    receiving: tuple[str, str],
    charset: str = "UTF-8",
    now: datetime,
) -> bytes:
    """Return an ORM^O01 carrying ``req``: MSH, PID, PV1 (when there is a visit), ORC/OBR."""
    w = Writer(codec_or_fail(charset))
    segments = [
        _msh(w, "ORM^O01^ORM_O01", control_id, sending, receiving, charset, now),
        _pid(w, req.patient),
    ]
    if req.visit:
        segments.append(w.segment("PV1", {1: "1", 2: "U", 19: w.esc(req.visit)}))
    for i, item in enumerate(req.items, start=1):
        control = _ORDER_CONTROL[item.status]
        priority = w.join_comps("", "", "", "", "", PRIORITY_OUT[item.priority])
        orc = {
            1: control,
            2: w.esc(item.placer),
            3: w.esc(item.filler),
            5: "CM" if item.status == "completed" else "",
            7: priority,
            9: _ts(req.authored, "authored"),
            12: w.comps(None, req.requester),
            21: w.esc(req.sender),
        }
        specimen = ""
        if item.specimen_type is not None:
            c = item.specimen_type
            specimen = w.subs(c.code, c.display, mnemonic_for(c.system, req.sender))
        obr = {
            1: str(i),
            2: w.esc(item.placer),
            3: w.esc(item.filler),
            4: _coded(w, item.code, req.sender),
            7: _ts(item.collected, "collected") if item.collected else "",
            13: w.esc(item.note),
            15: w.join_comps(specimen, "", "", w.subs(None, item.body_site)),
            18: w.esc(item.barcode),
            24: KIND_OUT[item.kind],
            27: priority,
        }
        segments += [w.segment("ORC", orc), w.segment("OBR", obr)]
    return w.encode(segments)


def _msh(
    w: Writer,
    mtype: str,
    control_id: str,
    sending: tuple[str, str],
    receiving: tuple[str, str],
    charset: str,
    now: datetime,
) -> str:
    """Return the MSH segment of an outgoing message."""
    return w.msh(
        {
            3: w.esc(sending[0]),
            4: w.esc(sending[1]),
            5: w.esc(receiving[0]),
            6: w.esc(receiving[1]),
            7: hl7_now(now),
            9: mtype,
            10: w.esc(control_id),
            11: "P",
            12: "2.5",
            18: w.esc(charset),
        }
    )


def _pid(w: Writer, p: Patient) -> str:
    """Return the PID segment of a patient."""
    ids = [w.join_comps(w.esc(p.id), "", "", "", "PI")]
    if p.national_id:
        ids.append(w.join_comps(w.esc(p.national_id), "", "", "", "NI"))
    return w.segment(
        "PID",
        {
            1: "1",
            3: w.join_reps(*ids),
            5: w.esc(p.name),
            7: fhir_to_hl7_date(p.birth_date, field="patient.birth_date") if p.birth_date else "",
            8: SEX_OUT[p.sex] if p.sex else "",
        },
    )


def _coded(w: Writer, c: Coded, sender: str) -> str:
    """Return a CE/CWE field for a code."""
    return w.comps(c.code, c.display, mnemonic_for(c.system, sender))


def _ts(value: str, field: str) -> str:
    """Return the HL7 TS of a FHIR dateTime; raise InputError naming ``field``."""
    return fhir_to_hl7_ts(value, field=field)


def _item_obx(w: Writer, n: int, item: ResultItem, sender: str, status: str | None) -> str:
    """Return the OBX segment of one result item."""
    fields = {
        1: str(n),
        3: _coded(w, item.code, sender),
        7: w.esc(item.reference_range),
        8: w.esc(item.interpretation),
        11: status or item_status_out(item.status),
        14: _ts(item.observed, "observed") if item.observed else "",
    }
    v = item.value
    if v is not None and v.kind == "quantity":
        fields |= {2: "NM", 5: w.esc(v.number), 6: w.esc(v.unit)}
    elif v is not None and v.kind == "text":
        fields |= {2: "TX" if v.text and "\n" in v.text else "ST", 5: w.esc(v.text)}
    elif v is not None and v.kind == "coded" and v.code is not None:
        fields |= {2: "CWE", 5: _coded(w, v.code, sender)}
    return w.segment("OBX", fields)


def _link_obx(w: Writer, n: int, link: ImageLink, status: str) -> list[str]:
    """Return the RP OBX of a link, and its content-hash NTE."""
    if link.content_type and "/" in link.content_type:
        top, sub = link.content_type.split("/", 1)
    else:
        top, sub = ("IM" if link.kind == "report-image" else "AP"), ""
    pointer = w.comps(link.url, None, top, sub)
    out = [w.segment("OBX", {1: str(n), 2: "RP", 3: _link_code(w, link), 5: pointer, 11: status})]
    if link.content_hash:
        out.append(w.segment("NTE", {1: "1", 3: w.esc(link.content_hash), 4: "content-hash"}))
    return out


def _link_code(w: Writer, link: ImageLink) -> str:
    """Return the OBX-3 of a link OBX."""
    names = {"wado-rs": "影像", "viewer": "影像浏览", "report-image": "报告图像"}
    return w.comps(link.kind, names[link.kind], "L")
