"""Read a stored result back into the neutral model: the inverse of ``result_bundle``.

:func:`result_from_fhir` maps one DiagnosticReport, with the resources it references and the
DocumentReferences that point back at it, to a :class:`~medledger.interop.model.Result`;
:func:`load_result` first fetches them from the records layer. What the FHIR mapping
(:mod:`medledger.interop.hl7.fhir_results`) does not keep cannot come back:

- ``Result.barcode`` and ``extra`` read back as None and ``{}``;
- a decimal keeps its value, not its spelling (JSON numbers): ``5.20`` reads back ``5.2``;
- an item status ``partial`` is stored, and reads back, as ``preliminary``;
- the interleaving of WADO-RS studies with other links: studies come first (in their
  order), then report images and viewer links (in theirs);
- a WADO-RS link's ``content_type`` (ImagingStudy has no element for it) and a
  ``study_uid`` on a report-image or viewer link read back as None;
- ``control_id`` is that of the message that wrote the report version read (``meta.source``).

``sender``, ``placer`` and ``placer_institution`` are not in the report: the caller passes
them (:func:`load_result` takes the sender from the report's filler identifier system, the
placer from the ``basedOn`` ServiceRequest's ``urn:medledger:id:<institution>:placer`` one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast, get_args
from urllib.parse import unquote

from medledger.errors import InputError
from medledger.interop.hl7.fhir_common import KIND_SNOMED, NATIONAL_ID_SYSTEM, SNOMED
from medledger.interop.hl7.fhir_results import STATUS_REASON
from medledger.interop.model import (
    Coded,
    ImageLink,
    Kind,
    Patient,
    Result,
    ResultItem,
    ResultStatus,
    Value,
    identifier_system,
)
from medledger.records.service import RecordService

__all__ = ["load_result", "result_from_fhir"]

_ID_PREFIX = "urn:medledger:id:"
_SOURCE_PREFIX = "urn:medledger:message:"
_KINDS = {code: kind for kind, (code, _, _) in KIND_SNOMED.items()}
_STATUSES = frozenset(get_args(ResultStatus))
_SEXES = ("male", "female", "other", "unknown")
_LINK_KINDS = {"报告图像": "report-image", "影像浏览": "viewer"}
_REF = re.compile(r"([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/([0-9]{1,10}))?")
_MAX_LINKS = 1000  # a transaction Bundle holds at most 1000 entries
_DR = "DiagnosticReport"


def result_from_fhir(
    report: dict[str, Any],
    children: Sequence[dict[str, Any]],
    patient: dict[str, Any] | None,
    *,
    sender: str,
    placer: str | None,
    placer_institution: str | None,
) -> Result:
    """Return the Result stored as ``report`` (the module docstring says what is lost).

    ``children`` hold the resources the report references (``result``, ``imagingStudy``) and
    the DocumentReferences whose ``context.related`` names it; others are ignored.
    ``patient`` is the subject; None needs a logical ``subject.identifier``. Raise
    ``InputError`` naming the element that is missing or malformed.
    """
    _obj(report, _DR, _DR)
    system = identifier_system(sender, "filler")
    filler = _identifier(report, system, _DR)
    if filler is None:
        raise _bad(f"{_DR}.identifier", "no filler identifier", report.get("identifier"), system)
    by_ref = {f"{c.get('resourceType')}/{c.get('id')}": c for c in children if isinstance(c, dict)}
    items: list[ResultItem] = []
    findings = None
    for i, ref in enumerate(_references(report, "result", _DR)):
        at = f"{_DR}.result[{i}]"
        obs = _child(by_ref, ref, "Observation", at)
        if _identifier(obs, system, at) == f"{filler}#findings":
            findings = _text(obs, at, "valueString")
        else:
            items.append(_item(obs, at))
    images = [
        _study(_child(by_ref, ref, "ImagingStudy", f"{_DR}.imagingStudy[{i}]"), i)
        for i, ref in enumerate(_references(report, "imagingStudy", _DR))
    ]
    images += _documents(children, report.get("id"), system, filler)
    interpreters = _each(report, "resultsInterpreter", _DR)
    meta = _obj(report.get("meta", {}), f"{_DR}.meta")
    source = _text(meta, f"{_DR}.meta", "source") or ""
    control = source.removeprefix(_SOURCE_PREFIX).partition(":")[2]
    return Result(
        sender=sender,
        placer_institution=placer_institution,
        patient=_patient(patient, report, (sender, placer_institution)),
        placer=placer,
        filler=filler,
        code=_coded(report.get("code"), f"{_DR}.code"),
        kind=_kind(report),
        status=_status(report, _DR),
        issued=_req(report, _DR, "issued"),
        items=tuple(items),
        conclusion=_text(report, _DR, "conclusion"),
        findings=findings,
        images=tuple(images),
        performer_name=_text(*interpreters[0], "display") if interpreters else None,
        control_id=unquote(control) if source.startswith(_SOURCE_PREFIX) and control else None,
        reason=_reason(report),
    )


def _reason(report: dict[str, Any]) -> str | None:
    """The recall or correction reason (the ``status-reason`` extension), or None."""
    for ext, at in _each(report, "extension", _DR):
        if ext.get("url") == STATUS_REASON:
            return _text(ext, at, "valueString")
    return None


def load_result(service: RecordService, report_ref: str) -> Result:
    """Read the DiagnosticReport ``report_ref`` and all it needs, and return its Result.

    ``report_ref`` is ``DiagnosticReport/<id>`` (the current version) or ``…/_history/<vid>``.
    Children are read as the report references them (unversioned: the current version). The
    records layer has no ``DocumentReference?related=`` search, so DocumentReferences are
    searched by identifier, ``<filler>#link#1``, ``#link#2`` … up to the first missing one,
    and kept when ``context.related`` names this report. Reads use the node's own (system)
    guard; ``NotFound`` and ``Gone`` (a deleted report, an erased patient) pass through.
    """
    rtype, rid, vid = _parse_ref(report_ref, "report_ref")
    if rtype != _DR:
        raise _bad("report_ref", "not a DiagnosticReport", report_ref, "DiagnosticReport/<id>")
    report = service.read(rtype, rid, vid).resource
    sender = _institution_in(report, "filler", _DR)
    if sender is None:
        raise _bad(f"{_DR}.identifier", "no filler identifier", report.get("identifier"))
    system = identifier_system(sender, "filler")
    filler = _identifier(report, system, _DR) or ""
    # A report version and its children are written in one transaction (one lastUpdated):
    # read each child as it was then, so a version sent late never carries newer results.
    written = str(report.get("meta", {}).get("lastUpdated", ""))
    children = [
        _as_of(service, _read(service, ref, f"{_DR}.{name}[{i}]"), written)
        for name in ("result", "imagingStudy")
        for i, ref in enumerate(_references(report, name, _DR))
    ]
    for n in range(1, _MAX_LINKS + 1):
        token = "|".join(re.sub(r"([\\,|$])", r"\\\1", t) for t in (system, f"{filler}#link#{n}"))
        found = service.search("DocumentReference", [("identifier", token)]).resources
        if not found:
            break
        children += [_as_of(service, doc, written) for doc in found]
    subject = _obj(report.get("subject"), f"{_DR}.subject")
    patient = None
    if isinstance(subject.get("reference"), str):
        patient = _read(service, subject["reference"], f"{_DR}.subject")
    placer = inst = None
    for based, at in _each(report, "basedOn", _DR):
        if str(based.get("reference")).startswith("ServiceRequest/"):
            order = _read(service, based["reference"], at)
            inst = _institution_in(order, "placer", "ServiceRequest")
            if inst is not None:
                placer = _identifier(order, identifier_system(inst, "placer"), "ServiceRequest")
            break
    return result_from_fhir(
        report, children, patient, sender=sender, placer=placer, placer_institution=inst
    )


def _parse_ref(ref: Any, field: str) -> tuple[str, str, int | None]:
    """Split ``Type/id[/_history/vid]``; raise InputError naming ``field``."""
    m = _REF.fullmatch(ref) if isinstance(ref, str) else None
    if m is None:
        raise _bad(field, "not a relative reference", ref, "Type/<id>[/_history/<vid>]")
    return m[1], m[2], int(m[3]) if m[3] else None


def _as_of(service: RecordService, resource: dict[str, Any], when: str) -> dict[str, Any]:
    """``resource`` (a current version) as it was at ``when`` (a lastUpdated): the newest
    version written then or before; the current one if it is not newer, or none is older."""
    meta = resource.get("meta", {})
    if not when or str(meta.get("lastUpdated", "")) <= when:
        return resource
    rtype, rid = str(resource.get("resourceType")), str(resource.get("id"))
    older = [v for v in service.history(rtype, rid) if v.ts <= when and not v.deleted]
    if not older:
        return resource
    return service.read(rtype, rid, max(v.vid for v in older)).resource


def _read(service: RecordService, ref: str, field: str) -> dict[str, Any]:
    """Read the resource (version) ``ref`` names."""
    rtype, rid, vid = _parse_ref(ref, field)
    return service.read(rtype, rid, vid).resource


def _institution_in(resource: dict[str, Any], kind: str, where: str) -> str | None:
    """Return ``<inst>`` of the first identifier system ``urn:medledger:id:<inst>:<kind>``."""
    for ident, _ in _each(resource, "identifier", where):
        system = ident.get("system")
        if isinstance(system, str) and system.startswith(_ID_PREFIX):
            inst = system[len(_ID_PREFIX) :].removesuffix(f":{kind}")
            if inst and inst != system[len(_ID_PREFIX) :]:
                return inst
    return None


def _bad(field: str, message: str, value: Any = None, expected: str | None = None) -> InputError:
    """Return the InputError for ``field``: ``message``, the ``value`` seen, what was wanted."""
    return InputError(f"{field}: {message}", field=field, value=value, expected=expected)


def _obj(node: Any, where: str, rtype: str | None = None) -> dict[str, Any]:
    """Return ``node`` if it is a JSON object (a ``rtype`` resource, when given)."""
    if not isinstance(node, dict):
        raise _bad(where, "not an object", node, "a JSON object")
    if rtype is not None and node.get("resourceType") != rtype:
        raise _bad(f"{where}.resourceType", "wrong type", node.get("resourceType"), rtype)
    return node


def _each(node: dict[str, Any], key: str, where: str) -> list[tuple[dict[str, Any], str]]:
    """Return each object of the array ``node[key]`` (absent: none) with its path."""
    value = node.get(key, [])
    if not isinstance(value, list):
        raise _bad(f"{where}.{key}", "not an array", value, "a JSON array")
    return [(_obj(v, f"{where}.{key}[{i}]"), f"{where}.{key}[{i}]") for i, v in enumerate(value)]


def _text(node: dict[str, Any], where: str, key: str) -> str | None:
    """Return ``node[key]`` as a string, or None when it is absent."""
    value = node.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad(f"{where}.{key}", "not a string", value, "a string")
    return value


def _req(node: dict[str, Any], where: str, key: str) -> str:
    """Return ``node[key]``, a string that must be there."""
    value = _text(node, where, key)
    if value is None:
        raise _bad(f"{where}.{key}", "missing", None, "a string")
    return value


def _references(node: dict[str, Any], key: str, where: str) -> list[str]:
    """Return the ``reference`` of each Reference in ``node[key]``."""
    return [_req(ref, at, "reference") for ref, at in _each(node, key, where)]


def _child(by_ref: dict[str, dict[str, Any]], ref: str, rtype: str, where: str) -> dict[str, Any]:
    """Return the child ``ref`` names (a version suffix is ignored)."""
    m = _REF.fullmatch(ref)
    child = by_ref.get(f"{m[1]}/{m[2]}") if m and m[1] == rtype else None
    if child is None:
        raise _bad(f"{where}.reference", "not among the children given", ref, f"{rtype}/<id>")
    return _obj(child, where, rtype)


def _identifier(resource: dict[str, Any], system: str, where: str) -> str | None:
    """Return the value of the resource's identifier under ``system``, else None."""
    return _find(resource, ("identifier", "system", system), "value", where)


def _find(node: dict[str, Any], match: tuple[str, str, str], key: str, where: str) -> str | None:
    """Return ``<key>`` of the first element of ``node[match[0]]`` whose ``match[1]`` is
    ``match[2]`` (e.g. an extension's value by url), else None."""
    for el, at in _each(node, match[0], where):
        if el.get(match[1]) == match[2]:
            return _text(el, at, key)
    return None


def _coded(concept: Any, where: str) -> Coded:
    """Return the first coding of a CodeableConcept (translations follow it)."""
    codings = _each(_obj(concept, where), "coding", where)
    if not codings:
        raise _bad(f"{where}.coding", "no coding", None, "at least one coding")
    first, at = codings[0]
    return Coded(_req(first, at, "system"), _req(first, at, "code"), _text(first, at, "display"))


def _kind(report: dict[str, Any]) -> Kind:
    """Return the kind from the category's SNOMED CT code."""
    for cat, at in _each(report, "category", _DR):
        for c, _ in _each(cat, "coding", at):
            if c.get("system") == SNOMED and c.get("code") in _KINDS:
                return cast(Kind, _KINDS[c["code"]])
    raise _bad(f"{_DR}.category", "names no kind", report.get("category"), "a SNOMED CT kind")


def _status(resource: dict[str, Any], where: str) -> ResultStatus:
    """Return the status, one of the model's result statuses."""
    status = resource.get("status")
    if status not in _STATUSES:
        raise _bad(f"{where}.status", "not a result status", status, " ".join(sorted(_STATUSES)))
    return cast(ResultStatus, status)


def _item(obs: dict[str, Any], where: str) -> ResultItem:
    """Return the ResultItem of one Observation."""
    ranges = _each(obs, "referenceRange", where)
    flags = _each(obs, "interpretation", where)
    flag = (_text(*flags[0], "text") or _coded(*flags[0]).code) if flags else None
    return ResultItem(
        code=_coded(obs.get("code"), f"{where}.code"),
        value=_value(obs, where),
        status=_status(obs, where),
        reference_range=_text(*ranges[0], "text") if ranges else None,
        interpretation=flag,
        observed=_text(obs, where, "effectiveDateTime"),
    )


def _value(obs: dict[str, Any], where: str) -> Value | None:
    """Return the Observation's value[x] as a Value (None when it has none)."""
    if "valueQuantity" in obs:
        at = f"{where}.valueQuantity"
        q = _obj(obs["valueQuantity"], at)
        number = q.get("value")
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise _bad(f"{at}.value", "not a number", number, "a JSON number")
        text = str(number) if isinstance(number, int) else repr(number)  # shortest exact text
        text = format(Decimal(text), "f") if "e" in text.lower() else text
        return Value("quantity", number=text, unit=_text(q, at, "unit"))
    if "valueString" in obs:
        return Value("text", text=_req(obs, where, "valueString"))
    if "valueCodeableConcept" in obs:
        at = f"{where}.valueCodeableConcept"
        return Value("coded", code=_coded(obs["valueCodeableConcept"], at))
    return None


def _study(study: dict[str, Any], n: int) -> ImageLink:
    """Return the WADO-RS link of an ImagingStudy."""
    where = f"ImagingStudy[{n}]"
    url = _find(study, ("extension", "url", "urn:medledger:wado-rs"), "valueUrl", where)
    if url is None:
        raise _bad(f"{where}.extension", "no WADO-RS URL", None, "urn:medledger:wado-rs")
    uid = _identifier(study, "urn:dicom:uid", where)
    if uid is not None and uid.startswith("urn:oid:") and uid[8:].replace(".", "").isdigit():
        uid = uid[8:]
    content_hash = _find(
        study, ("extension", "url", "urn:medledger:content-hash"), "valueString", where
    )
    return ImageLink(url, "wado-rs", uid, content_hash)


def _documents(
    children: Sequence[dict[str, Any]], report_id: Any, system: str, filler: str
) -> list[ImageLink]:
    """Return the links of the DocumentReferences related to the report, by link number."""
    numbered: list[tuple[int, ImageLink]] = []
    for i, doc in enumerate(children):
        if not isinstance(doc, dict) or doc.get("resourceType") != "DocumentReference":
            continue
        where = f"DocumentReference[{i}]"
        key = _identifier(doc, system, where) or ""
        number = key.removeprefix(f"{filler}#link#")
        refs = _references(_obj(doc.get("context", {}), f"{where}.context"), "related", where)
        related = report_id is None or any(r.split("/")[:2] == [_DR, report_id] for r in refs)
        if key == number or not number.isdigit() or not related:
            continue
        contents = _each(doc, "content", where)
        at = f"{where}.content[0].attachment"
        attached = _obj(contents[0][0].get("attachment") if contents else None, at)
        label = _text(_obj(doc.get("type", {}), f"{where}.type"), f"{where}.type", "text")
        if label not in _LINK_KINDS:
            raise _bad(f"{where}.type.text", "not a link kind", label, " or ".join(_LINK_KINDS))
        link = ImageLink(
            url=_req(attached, at, "url"),
            kind=cast(Any, _LINK_KINDS[label]),
            content_hash=_find(
                attached, ("extension", "url", "urn:medledger:content-hash"), "valueString", at
            ),
            content_type=_text(attached, at, "contentType"),
        )
        numbered.append((int(number), link))
    return [link for _, link in sorted(numbered, key=lambda p: p[0])]


def _patient(
    patient: dict[str, Any] | None, report: dict[str, Any], known: tuple[str, str | None]
) -> Patient:
    """Return the Patient; its id is the one under the sender's system, else the placer's
    (``known``), else any institution's. The name is ``name[0].text``, as mapped."""
    if patient is None:
        at = f"{_DR}.subject.identifier"
        ident = _obj(_obj(report.get("subject"), f"{_DR}.subject").get("identifier"), at)
        return Patient(_req(ident, at, "value"))
    _obj(patient, "Patient", "Patient")
    pid = None
    for inst in (*known, _institution_in(patient, "patient", "Patient")):
        if pid is None and inst is not None:
            pid = _identifier(patient, identifier_system(inst, "patient"), "Patient")
    if pid is None:
        raise _bad("Patient.identifier", "no patient id", None, "urn:medledger:id:<inst>:patient")
    names = _each(patient, "name", "Patient")
    gender = patient.get("gender")
    return Patient(
        id=pid,
        name=_text(*names[0], "text") if names else None,
        sex=cast(Any, gender) if gender in _SEXES else None,
        birth_date=_text(patient, "Patient", "birthDate"),
        national_id=_identifier(patient, NATIONAL_ID_SYSTEM, "Patient"),
    )
