"""Map a :class:`~medledger.interop.model.Requisition` to a FHIR R4 transaction Bundle.

The Bundle holds (conventions in :mod:`medledger.interop.hl7.fhir_common`):

- the **Patient** (identifier ``identifier_system(sender, "patient")``, plus the national id),
  unless the gateway passes ``patient_existing``; name, birth date, sex and national id go
  into the Patient only;
- one **ServiceRequest** per item: identifier ``identifier_system(sender, "placer")`` (typed
  PLAC) and, when the performer is known, the filler number under
  ``identifier_system(performer, "filler")`` (typed FILL); ``status`` from the item; intent
  ``order``; category by kind (SNOMED CT, see fhir_common); ``code`` the sender's code plus
  the ``translations`` of (system, code); subject; ``encounter`` a logical reference to the
  visit (``identifier_system(sender, "visit")``); authoredOn; priority; performer the
  institution (logical reference); requester by display text; bodySite text; note; specimen;
- one **Specimen** per distinct barcode of a lab-kind item (identifier
  ``identifier_system(sender, "barcode")``, type, ``collection.collectedDateTime``, subject,
  and ``request`` → the ServiceRequests it serves).

An item whose placer number is in ``existing`` (placer → (id, version)) becomes a ``PUT`` of
that ServiceRequest with ``ifMatch``: a cancel or change updates the stored order.
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
    meta,
    patient_part,
    translations_for,
)
from medledger.interop.model import LAB_KINDS, Coded, OrderItem, Requisition, identifier_system

__all__ = ["kind_category", "requisition_bundle"]


def kind_category(kind: str) -> dict[str, Any]:
    """Return the ServiceRequest category of a kind (SNOMED CT, Chinese text)."""
    code, display, text = KIND_SNOMED[kind]
    return {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": text}


def requisition_bundle(
    req: Requisition,
    *,
    translations: Mapping[tuple[str, str], Sequence[Coded]] | None = None,
    existing: Mapping[str, tuple[str, int]] | None = None,
    patient_existing: str | None = None,
) -> dict[str, Any]:
    """Return the transaction Bundle for ``req`` (see the module docstring)."""
    translations = translations or {}
    existing = existing or {}
    placers = [i.placer for i in req.items]
    if len(set(placers)) != len(placers):
        raise InputError(
            "a requisition lists one placer number twice",
            field="items",
            value=placers,
            expected="distinct placer numbers",
        )
    source = meta(req.sender, req.control_id)
    entries, patient_ref = patient_part(req.patient, req.sender, source, patient_existing)
    placer_system = identifier_system(req.sender, "placer")
    barcode_system = identifier_system(req.sender, "barcode")
    sr_urls = {
        i.placer: full_url("ServiceRequest", f"{placer_system}|{i.placer}") for i in req.items
    }
    specimens: dict[str, tuple[OrderItem, list[str]]] = {}
    for item in req.items:
        if item.barcode and item.kind in LAB_KINDS:
            specimens.setdefault(item.barcode, (item, []))[1].append(sr_urls[item.placer])
    sp_urls = {b: full_url("Specimen", f"{barcode_system}|{b}") for b in specimens}
    for item in req.items:
        resource = _service_request(req, item, patient_ref, source, translations)
        if item.barcode in sp_urls and item.kind in LAB_KINDS:
            resource["specimen"] = [{"reference": sp_urls[item.barcode]}]
        entries.append(
            entry(
                resource,
                sr_urls[item.placer],
                if_none_exist=(placer_system, item.placer),
                existing=existing.get(item.placer),
            )
        )
    for barcode, (item, requests) in specimens.items():
        resource = _specimen(item, barcode, barcode_system, patient_ref, source, requests)
        entries.append(entry(resource, sp_urls[barcode], if_none_exist=(barcode_system, barcode)))
    return bundle(entries)


def _service_request(
    req: Requisition,
    item: OrderItem,
    patient_ref: str,
    source: dict[str, Any],
    translations: Mapping[tuple[str, str], Sequence[Coded]],
) -> dict[str, Any]:
    """Return the ServiceRequest of one item."""
    identifiers = [identifier(identifier_system(req.sender, "placer"), item.placer, "PLAC")]
    if item.filler and req.performer:
        identifiers.append(
            identifier(identifier_system(req.performer, "filler"), item.filler, "FILL")
        )
    out: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": source,
        "identifier": identifiers,
        "status": item.status,
        "intent": "order",
        "category": [kind_category(item.kind)],
        "priority": item.priority,
        "code": concept(item.code, translations_for(item.code, translations)),
        "subject": {"reference": patient_ref},
        "authoredOn": req.authored,
    }
    if req.visit:
        out["encounter"] = {
            "identifier": {"system": identifier_system(req.sender, "visit"), "value": req.visit}
        }
    if req.requester:
        out["requester"] = {"display": req.requester}
    if req.performer:
        out["performer"] = [institution(req.performer)]
    if item.body_site:
        out["bodySite"] = [{"text": item.body_site}]
    if item.note:
        out["note"] = [{"text": item.note}]
    return out


def _specimen(
    item: OrderItem,
    barcode: str,
    system: str,
    patient_ref: str,
    source: dict[str, Any],
    requests: list[str],
) -> dict[str, Any]:
    """Return the Specimen of one barcode and the requests it serves."""
    out: dict[str, Any] = {
        "resourceType": "Specimen",
        "meta": source,
        "identifier": [identifier(system, barcode)],
        "subject": {"reference": patient_ref},
        "request": [{"reference": url} for url in requests],
    }
    if item.specimen_type is not None:
        out["type"] = concept(item.specimen_type)
    if item.collected:
        out["collection"] = {"collectedDateTime": item.collected}
    return out
