"""Pieces both FHIR mappings share: entries, identifiers, codings, the Patient, categories.

Conventions of every transaction Bundle we build:

- each entry has a ``fullUrl`` ``urn:uuid:<uuid5>`` derived from the resource type and its
  business identifier, so the same message gives the same Bundle;
- a new resource is a ``POST`` with ``request.ifNoneExist`` ``identifier=<system>|<value>``
  (percent-encoded where a query needs it): sending a message twice creates nothing twice;
- a resource the gateway says exists is a ``PUT <Type>/<id>`` with ``ifMatch W/"<version>"``;
- every resource has ``meta.source`` ``urn:medledger:message:<sender>:<control id>`` (no
  patient data), percent-encoded;
- institutions are logical references, ``{"identifier": {"system":
  "urn:medledger:institution", "value": <institution id>}}``: we do not serve Organization.

Kind categories (SNOMED CT): lab 108252007 *Laboratory procedure*, radiology 363679005
*Imaging*, ultrasound 16310003 *Ultrasonography*, endoscopy 423827005 *Endoscopy*, pathology
108257001 *Anatomic pathology procedure*.

The national id (身份证号) uses ``urn:oid:2.16.156.10011.1.3``, the OID WS/T 500 (电子病历共享
文档规范) gives the patient's identity-card number.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from medledger.errors import InputError
from medledger.interop.model import Coded, Patient, identifier_system

__all__ = [
    "INSTITUTION_SYSTEM",
    "KIND_SNOMED",
    "NATIONAL_ID_SYSTEM",
    "SNOMED",
    "bundle",
    "concept",
    "entry",
    "full_url",
    "identifier",
    "institution",
    "json_number",
    "meta",
    "patient_part",
    "translations_for",
]

INSTITUTION_SYSTEM = "urn:medledger:institution"
NATIONAL_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
SNOMED = "http://snomed.info/sct"
KIND_SNOMED: dict[str, tuple[str, str, str]] = {
    "lab": ("108252007", "Laboratory procedure", "检验"),
    "radiology": ("363679005", "Imaging", "放射"),
    "ultrasound": ("16310003", "Ultrasonography", "超声"),
    "endoscopy": ("423827005", "Endoscopy", "内镜"),
    "pathology": ("108257001", "Anatomic pathology procedure", "病理"),
}
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_NAMESPACE = uuid.UUID("6f1c7c1e-2f57-5b1a-9a43-1d0b2e8c7a10")


def meta(sender: str, control_id: str | None) -> dict[str, Any]:
    """Return ``meta`` naming the message a resource came from."""
    source = f"urn:medledger:message:{quote(sender, safe='')}"
    if control_id:
        source += f":{quote(control_id, safe='')}"
    return {"source": source}


def full_url(rtype: str, key: str) -> str:
    """Return the stable ``urn:uuid`` of a resource within a Bundle."""
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{rtype}|{key}')}"


def identifier(system: str, value: str, v2_type: str | None = None) -> dict[str, Any]:
    """Return an Identifier, typed with an HL7 v2 table 0203 code when given."""
    out: dict[str, Any] = {"system": system, "value": value}
    if v2_type:
        v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
        out["type"] = {"coding": [{"system": v2, "code": v2_type}]}
    return out


def institution(inst: str) -> dict[str, Any]:
    """Return a logical reference to an institution."""
    return {"identifier": {"system": INSTITUTION_SYSTEM, "value": inst}}


def concept(c: Coded, extra: Sequence[Coded] = ()) -> dict[str, Any]:
    """Return a CodeableConcept of ``c`` (and translations), its display as text."""
    codings = []
    for x in (c, *extra):
        coding = {"system": x.system, "code": x.code}
        if x.display:
            coding["display"] = x.display
        codings.append(coding)
    out: dict[str, Any] = {"coding": codings}
    if c.display:
        out["text"] = c.display
    return out


def json_number(text: str, *, field: str) -> int | float:
    """Return a decimal text as a JSON number (an int when it has no fraction)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise InputError(
            f"{field}: not a decimal number",
            field=field,
            value=text,
            expected="a decimal such as 5.20",
        )
    if "." not in text and "e" not in text.lower():
        return int(value)
    return float(value)


def entry(
    resource: dict[str, Any],
    url: str,
    *,
    if_none_exist: tuple[str, str] | None = None,
    existing: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """Return a transaction entry: PUT when ``existing`` (id, version) is known, else POST."""
    rtype = resource["resourceType"]
    if existing is not None:
        rid, vid = existing
        if not isinstance(rid, str) or not _ID.fullmatch(rid) or not isinstance(vid, int):
            raise InputError(
                f"existing {rtype} must be (id, version)",
                field="existing",
                value=repr(existing),
                expected="(a FHIR id, an int version)",
            )
        request = {"method": "PUT", "url": f"{rtype}/{rid}", "ifMatch": f'W/"{vid}"'}
        return {"fullUrl": url, "resource": {**resource, "id": rid}, "request": request}
    request = {"method": "POST", "url": rtype}
    if if_none_exist is not None:
        system, value = if_none_exist
        request["ifNoneExist"] = "identifier=" + quote(f"{system}|{value}", safe=":/|")
    return {"fullUrl": url, "resource": resource, "request": request}


def bundle(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a transaction Bundle of ``entries`` (deep-copied: no two share a sub-object)."""
    return copy.deepcopy({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def patient_part(
    patient: Patient, sender: str, source: dict[str, Any], existing: str | None
) -> tuple[list[dict[str, Any]], str]:
    """Return the Patient entry (none when ``existing``) and the reference to the patient.

    ``existing`` is the Patient's id (``123`` or ``Patient/123``) when the gateway knows it.
    """
    if existing is not None:
        rid = existing.removeprefix("Patient/")
        if not _ID.fullmatch(rid):
            raise InputError(
                "patient_existing must be a Patient id",
                field="patient_existing",
                value=existing,
                expected="a FHIR id, or Patient/<id>",
            )
        return [], f"Patient/{rid}"
    system = identifier_system(sender, "patient")
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "meta": source,
        "identifier": [identifier(system, patient.id, "MR")],
    }
    if patient.national_id:
        resource["identifier"].append(identifier(NATIONAL_ID_SYSTEM, patient.national_id, "NI"))
    if patient.name:
        resource["name"] = [{"text": patient.name}]
    if patient.sex:
        resource["gender"] = patient.sex
    if patient.birth_date:
        resource["birthDate"] = patient.birth_date
    url = full_url("Patient", f"{system}|{patient.id}")
    return [entry(resource, url, if_none_exist=(system, patient.id))], url


def translations_for(
    c: Coded, translations: Mapping[tuple[str, str], Sequence[Coded]]
) -> Sequence[Coded]:
    """Return the translated codings known for ``c``."""
    return translations.get((c.system, c.code), ())
