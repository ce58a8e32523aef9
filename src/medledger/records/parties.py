"""The institutions a resource names, and in which role: what sharing rules decide on.

A referral order names its requesting institution (``ServiceRequest.requester``) and its
performing one (``ServiceRequest.performer``); a result names who performed it. A sharing
rule such as "orders and results are shared with the requesting and performing institutions"
is then a question about these parties. They are stored with the resource's search rows
(parameter ``_party``, system = role, value = institution id), so searches filter on them in
SQL and ``_total`` counts only what the caller may see.

An institution is named by a reference in one of two forms:

- a literal reference ``Organization/<institution id>`` (the Organization resource whose id is
  the institution id, e.g. ``Organization/hosp-central``);
- a logical reference ``{"identifier": {"system": "urn:medledger:institution", "value":
  "hosp-central"}}``.

Results (Observation, DiagnosticReport, ImagingStudy, Specimen, DocumentReference) also inherit
the parties of the orders they are ``basedOn``, so a report returned by the central hospital is
shared with the member hospital that requested it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

__all__ = [
    "CONSENT_ACTOR",
    "INSTITUTION_SYSTEM",
    "PARTY_PARAM",
    "PARTY_ROLES",
    "REQUESTER",
    "based_on_orders",
    "extract_parties",
]

PARTY_PARAM = "_party"
INSTITUTION_SYSTEM = "urn:medledger:institution"
REQUESTER = "requester"
CONSENT_ACTOR = "consent-actor"
"""The party role of an institution a Consent grants access to (not used by sharing rules)."""

# role -> the paths (dotted, lists walked) of references that name it, per resource type.
_PATHS: dict[str, dict[str, tuple[str, ...]]] = {
    "ServiceRequest": {"requester": ("requester",), "performer": ("performer",)},
    "Observation": {"performer": ("performer",)},
    "DiagnosticReport": {"performer": ("performer", "resultsInterpreter")},
    "ImagingStudy": {"performer": ("series.performer.actor",)},
    "Specimen": {"performer": ("collection.collector",)},
    "DocumentReference": {"custodian": ("custodian",), "author": ("author",)},
    "Patient": {"custodian": ("managingOrganization",)},
    "Encounter": {"custodian": ("serviceProvider",)},
    "Consent": {"custodian": ("organization",), CONSENT_ACTOR: ("provision.actor.reference",)},
}
PARTY_ROLES = frozenset(role for paths in _PATHS.values() for role in paths)
_INHERITS = frozenset(
    {"Observation", "DiagnosticReport", "ImagingStudy", "Specimen", "DocumentReference"}
)
_INSTITUTION_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}[a-z0-9]")
_ORDER_REF = re.compile(r"ServiceRequest/([A-Za-z0-9\-.]{1,64})(?:/_history/[0-9]+)?")


def _walk(node: Any, parts: list[str]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, parts)
        return
    if not parts:
        yield node
        return
    if isinstance(node, dict):
        yield from _walk(node.get(parts[0]), parts[1:])


def _institution(ref: Any) -> str | None:
    """The institution id a Reference names, or None."""
    if not isinstance(ref, dict):
        return None
    literal = ref.get("reference")
    if isinstance(literal, str) and literal.startswith("Organization/"):
        inst = literal[len("Organization/") :].split("/_history/")[0]
        return inst if _INSTITUTION_ID.fullmatch(inst) else None
    ident = ref.get("identifier")
    if isinstance(ident, dict) and ident.get("system") == INSTITUTION_SYSTEM:
        value = ident.get("value")
        if isinstance(value, str) and _INSTITUTION_ID.fullmatch(value):
            return value
    return None


def extract_parties(rtype: str, resource: dict[str, Any]) -> set[tuple[str, str]]:
    """Return the (role, institution id) pairs that ``resource`` names itself."""
    found: set[tuple[str, str]] = set()
    for role, paths in _PATHS.get(rtype, {}).items():
        for path in paths:
            for ref in _walk(resource, path.split(".")):
                inst = _institution(ref)
                if inst is not None:
                    found.add((role, inst))
    return found


def based_on_orders(rtype: str, resource: dict[str, Any]) -> list[str]:
    """Return the ids of the local ServiceRequests a result is based on (it inherits their
    parties); ``Specimen.request`` counts as such a link too."""
    if rtype not in _INHERITS:
        return []
    field = "request" if rtype == "Specimen" else "basedOn"
    ids = []
    for ref in _walk(resource, [field]):
        literal = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(literal, str):
            m = _ORDER_REF.fullmatch(literal)
            if m:
                ids.append(m.group(1))
    return ids
