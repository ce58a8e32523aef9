"""Map a :class:`~medledger.interop.model.Result` to a FHIR R4 transaction Bundle.

The Bundle holds (conventions in :mod:`medledger.interop.hl7.fhir_common`):

- the **Patient**, unless ``patient_existing`` names it;
- the **DiagnosticReport**: identifier ``identifier_system(sender, "filler")`` (typed FILL);
  ``basedOn`` ``order_ref`` when the gateway matched the order; status; category coded in
  HL7 table 0074 (lab ``LAB``, radiology ``RAD``, ultrasound ``RUS``, endoscopy ``OTH`` —
  0074 has no endoscopy code —, pathology ``PAT``) plus the kind's SNOMED CT code; code; subject;
  ``effectiveDateTime`` (the first item's observed time, else issued); issued; performer
  the sending institution (logical reference); resultsInterpreter by display;
  ``conclusion``; ``result`` → the Observations; ``imagingStudy`` → the ImagingStudies;
- one **Observation** per item: status (``partial`` becomes ``preliminary``), category
  (laboratory, imaging or procedure), code, subject, effectiveDateTime, issued,
  ``valueQuantity`` (``value`` and the unit as sent in ``unit``), ``valueString`` or
  ``valueCodeableConcept``, ``referenceRange.text``, and ``interpretation`` coded in
  v3-ObservationInterpretation when the flag is one of its codes (``↑``/``↓`` read as H/L),
  else as text only;
- the **findings** (检查所见) as one more Observation, code LOINC 18782-3, ``valueString``:
  DiagnosticReport has no element for them, and ``conclusion`` holds the 诊断意见;
- one **ImagingStudy** per WADO-RS link: status ``available`` (``entered-in-error`` /
  ``cancelled`` with the report), the study UID as identifier (system ``urn:dicom:uid``,
  value ``urn:oid:<uid>``), and the WADO-RS URL in the extension ``urn:medledger:wado-rs``
  (``valueUrl``): ``ImagingStudy.endpoint`` needs an Endpoint resource we do not serve;
- one **DocumentReference** per report-image or viewer link: ``content.attachment`` with
  url and contentType, ``context.related`` → the DiagnosticReport. FHIR's
  ``Attachment.hash`` is base64 SHA-1; our hash (``sha256:<hex>`` / ``sm3:<hex>``) goes in
  the extension ``urn:medledger:content-hash`` (``valueString``) on the attachment, and on
  the ImagingStudy for a study link;
- the recall or correction reason (报告召回/更正原因, the NTE after the OBR) in the
  DiagnosticReport extension ``urn:medledger:status-reason`` (``valueString``): R4's
  DiagnosticReport has no ``note``.

Every child resource has an identifier under ``identifier_system(sender, "filler")`` whose
value :func:`result_children` lists: ``<filler>#obs#<code>#<n>`` (the n-th item with that
code, standing in for OBX-3 + OBX-4, since the model keeps no sub-id), ``<filler>#findings``,
``<filler>#study#<n>`` and ``<filler>#link#<n>``. A correction or recall of a stored report
passes ``existing`` (the report's id and version) and ``existing_children`` (child
identifier value → id and version): those resources are PUT with ``ifMatch``, so a
correction updates the same Observations; children not listed are POSTed (conditionally).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medledger.errors import InputError
from medledger.interop.hl7.fhir_common import (
    KIND_SNOMED,
    SNOMED,
    bundle,
    concept,
    entry,
    full_url,
    identifier,
    institution,
    json_number,
    meta,
    patient_part,
    translations_for,
)
from medledger.interop.model import (
    Coded,
    ImageLink,
    Result,
    ResultItem,
    ResultStatus,
    identifier_system,
)

__all__ = ["STATUS_REASON", "result_bundle", "result_children"]

_V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
_SECTION = {
    "lab": "LAB",
    "radiology": "RAD",
    "ultrasound": "RUS",
    "endoscopy": "OTH",
    "pathology": "PAT",
}
_OBS_CATEGORY = {
    "lab": "laboratory",
    "pathology": "laboratory",
    "radiology": "imaging",
    "ultrasound": "imaging",
    "endoscopy": "procedure",
}
_INTERPRETATION = frozenset(
    [
        "L",
        "H",
        "LL",
        "HH",
        "N",
        "A",
        "AA",
        "<",
        ">",
        "U",
        "D",
        "B",
        "W",
        "S",
        "R",
        "I",
        "NEG",
        "POS",
        "IND",
        "DET",
        "ND",
        "HU",
        "LU",
    ]
)
_ARROWS = {"↑": "H", "↓": "L"}
_FINDINGS = Coded("http://loinc.org", "18782-3", "Radiology Study observation (narrative)")


STATUS_REASON = "urn:medledger:status-reason"


def result_children(res: Result) -> list[tuple[str, str]]:
    """List (resource type, identifier value) of every child resource ``res`` maps to."""
    out = [("Observation", key) for key, _ in _keyed_items(res)]
    if res.findings:
        out.append(("Observation", f"{res.filler}#findings"))
    out += [(_link_type(link), key) for key, link in _keyed_links(res)]
    return out


def result_bundle(
    res: Result,
    *,
    order_ref: str | None,
    existing: tuple[str, int] | None,
    patient_existing: str | None = None,
    existing_children: Mapping[str, tuple[str, int]] | None = None,
    translations: Mapping[tuple[str, str], Sequence[Coded]] | None = None,
) -> dict[str, Any]:
    """Return the transaction Bundle for ``res`` (see the module docstring)."""
    if order_ref is not None and not order_ref.startswith(("ServiceRequest/", "urn:uuid:")):
        raise InputError(
            "order_ref must reference a ServiceRequest",
            field="order_ref",
            value=order_ref,
            expected="ServiceRequest/<id>",
        )
    children = existing_children or {}
    translations = translations or {}
    source = meta(res.sender, res.control_id)
    entries, patient_ref = patient_part(res.patient, res.sender, source, patient_existing)
    system = identifier_system(res.sender, "filler")
    report_url = full_url("DiagnosticReport", f"{system}|{res.filler}")
    based_on = [{"reference": order_ref}] if order_ref else []
    common = {"meta": source, "subject": {"reference": patient_ref}}
    results: list[dict[str, str]] = []
    studies: list[dict[str, str]] = []
    child_entries: list[dict[str, Any]] = []

    def add(resource: dict[str, Any], key: str) -> str:
        """Add a child resource with its identifier and entry; return its fullUrl."""
        url = full_url(resource["resourceType"], f"{system}|{key}")
        resource["identifier"] = [*resource.get("identifier", []), identifier(system, key)]
        child_entries.append(
            entry(resource, url, if_none_exist=(system, key), existing=children.get(key))
        )
        return url

    for key, item in _keyed_items(res):
        obs = _observation(res, item, common, based_on, translations)
        results.append({"reference": add(obs, key)})
    if res.findings:
        findings = ResultItem(_FINDINGS, None, _obs_status(res.status))
        obs = _observation(res, findings, common, based_on, {})
        obs["code"]["text"] = "检查所见"
        obs["valueString"] = res.findings
        results.append({"reference": add(obs, f"{res.filler}#findings")})
    for key, link in _keyed_links(res):
        if link.kind == "wado-rs":
            studies.append({"reference": add(_study(res, link, common, based_on), key)})
        else:
            add(_document(res, link, common, report_url), key)
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        **common,
        "identifier": [identifier(system, res.filler, "FILL")],
        "status": res.status,
        "category": [_category(res.kind)],
        "code": concept(res.code, translations_for(res.code, translations)),
        "effectiveDateTime": next((i.observed for i in res.items if i.observed), res.issued),
        "issued": res.issued,
        "performer": [institution(res.sender)],
    }
    if based_on:
        report["basedOn"] = based_on
    if res.performer_name:
        report["resultsInterpreter"] = [{"display": res.performer_name}]
    if results:
        report["result"] = results
    if studies:
        report["imagingStudy"] = studies
    if res.conclusion:
        report["conclusion"] = res.conclusion
    if res.reason:  # R4 DiagnosticReport has no element for why it was recalled or corrected
        report["extension"] = [{"url": STATUS_REASON, "valueString": res.reason}]
    entries.append(entry(report, report_url, if_none_exist=(system, res.filler), existing=existing))
    return bundle(entries + child_entries)


def _keyed_items(res: Result) -> list[tuple[str, ResultItem]]:
    """Pair each item with its child key ``<filler>#obs#<code>#<n>``."""
    seen: dict[str, int] = {}
    out = []
    for item in res.items:
        seen[item.code.code] = seen.get(item.code.code, 0) + 1
        out.append((f"{res.filler}#obs#{item.code.code}#{seen[item.code.code]}", item))
    return out


def _keyed_links(res: Result) -> list[tuple[str, ImageLink]]:
    """Pair each link with its child key ``<filler>#study#<n>`` or ``#link#<n>``."""
    counts = {"study": 0, "link": 0}
    out = []
    for link in res.images:
        kind = "study" if link.kind == "wado-rs" else "link"
        counts[kind] += 1
        out.append((f"{res.filler}#{kind}#{counts[kind]}", link))
    return out


def _link_type(link: ImageLink) -> str:
    """Return the resource type a link maps to."""
    return "ImagingStudy" if link.kind == "wado-rs" else "DocumentReference"


def _category(kind: str) -> dict[str, Any]:
    """Return the DiagnosticReport category of a kind (v2-0074 and SNOMED CT)."""
    code, display, text = KIND_SNOMED[kind]
    codings = [
        {"system": _V2_0074, "code": _SECTION[kind]},
        {"system": SNOMED, "code": code, "display": display},
    ]
    return {"coding": codings, "text": text}


def _obs_status(status: ResultStatus) -> ResultStatus:
    """Return the Observation status for a result status (partial → preliminary)."""
    return "preliminary" if status == "partial" else status


def _observation(
    res: Result,
    item: ResultItem,
    common: dict[str, Any],
    based_on: list[dict[str, str]],
    translations: Mapping[tuple[str, str], Sequence[Coded]],
) -> dict[str, Any]:
    """Return the Observation of one item."""
    obs_category = "http://terminology.hl7.org/CodeSystem/observation-category"
    out: dict[str, Any] = {
        "resourceType": "Observation",
        **common,
        "status": _obs_status(item.status),
        "category": [{"coding": [{"system": obs_category, "code": _OBS_CATEGORY[res.kind]}]}],
        "code": concept(item.code, translations_for(item.code, translations)),
        "issued": res.issued,
    }
    if based_on:
        out["basedOn"] = based_on
    if item.observed:
        out["effectiveDateTime"] = item.observed
    v = item.value
    if v is not None and v.kind == "quantity" and v.number is not None:
        quantity: dict[str, Any] = {"value": json_number(v.number, field="value.number")}
        if v.unit:
            quantity["unit"] = v.unit
        out["valueQuantity"] = quantity
    elif v is not None and v.kind == "text" and v.text:
        out["valueString"] = v.text
    elif v is not None and v.kind == "coded" and v.code is not None:
        out["valueCodeableConcept"] = concept(v.code)
    if item.reference_range:
        out["referenceRange"] = [{"text": item.reference_range}]
    if item.interpretation:
        out["interpretation"] = [_interpretation(item.interpretation)]
    return out


def _interpretation(flag: str) -> dict[str, Any]:
    """Return the interpretation concept of an abnormal flag."""
    code = _ARROWS.get(flag.strip(), flag.strip().upper())
    if code not in _INTERPRETATION:
        return {"text": flag}
    system = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
    return {"coding": [{"system": system, "code": code}], "text": flag}


def _hash_extension(link: ImageLink) -> list[dict[str, str]]:
    """Return the content-hash extension of a link (empty when it has no hash)."""
    if not link.content_hash:
        return []
    return [{"url": "urn:medledger:content-hash", "valueString": link.content_hash}]


def _study(
    res: Result, link: ImageLink, common: dict[str, Any], based_on: list[dict[str, str]]
) -> dict[str, Any]:
    """Return the ImagingStudy of a WADO-RS link."""
    status = {"entered-in-error": "entered-in-error", "cancelled": "cancelled"}
    out: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        **common,
        "extension": [
            {"url": "urn:medledger:wado-rs", "valueUrl": link.url},
            *_hash_extension(link),
        ],
        "status": status.get(res.status, "available"),
    }
    if link.study_uid:
        uid = link.study_uid
        value = f"urn:oid:{uid}" if uid.replace(".", "").isdigit() else uid
        out["identifier"] = [{"system": "urn:dicom:uid", "value": value}]
    if based_on:
        out["basedOn"] = based_on
    return out


def _document(
    res: Result, link: ImageLink, common: dict[str, Any], report_url: str
) -> dict[str, Any]:
    """Return the DocumentReference of a report-image or viewer link."""
    attachment: dict[str, Any] = {"url": link.url}
    if link.content_type:
        attachment["contentType"] = link.content_type
    if link.content_hash:
        attachment["extension"] = _hash_extension(link)
    doc_status = {
        "preliminary": "preliminary",
        "partial": "preliminary",
        "registered": "preliminary",
        "final": "final",
        "amended": "amended",
        "corrected": "amended",
        "entered-in-error": "entered-in-error",
    }
    out: dict[str, Any] = {
        "resourceType": "DocumentReference",
        **common,
        "status": "entered-in-error" if res.status == "entered-in-error" else "current",
        "type": {"text": "报告图像" if link.kind == "report-image" else "影像浏览"},
        "date": res.issued,
        "content": [{"attachment": attachment}],
        "context": {"related": [{"reference": report_url}]},
    }
    if res.status in doc_status:
        out["docStatus"] = doc_status[res.status]
    return out
