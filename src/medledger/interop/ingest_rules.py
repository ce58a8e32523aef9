"""The rules ``interop.ingest`` applies to what the records layer holds and answers.

Pure functions over FHIR resources and transaction answers: whether a new version would say
anything new, which institution a placer number belongs to, whether a result names the order's
patient, which business keys planning starts from, and whether a plan went stale.
"""

from __future__ import annotations

from typing import Any

from medledger.errors import WriteConflict
from medledger.interop.model import Requisition, Result, identifier_system

__all__ = [
    "PLANNED_ABSENT",
    "business_keys",
    "institution_of",
    "locations",
    "relink",
    "same_patient",
    "strip_refs",
    "unchanged",
]


PLANNED_ABSENT = frozenset({"DiagnosticReport", "ServiceRequest"})


def locations(bundle: dict[str, Any], answer: dict[str, Any]) -> tuple[str, ...]:
    """The versions a transaction wrote or found. A report or order the plan found absent
    (a POST) that another message created meanwhile (a concurrent correction, or an earlier
    message of the same group) means the plan is stale: WriteConflict, so it is planned again
    and the newer content becomes a new version instead of being dropped as a duplicate."""
    for sent, got in zip(bundle["entry"], answer["entry"], strict=True):
        request, response = sent.get("request", {}), got["response"]
        if (
            request.get("method") == "POST"
            and str(request.get("url")) in PLANNED_ABSENT
            and response["status"].startswith("200")
        ):
            raise WriteConflict(
                f"{request['url']} {sent.get('fullUrl', '')} was created by another message "
                "after this one was planned; planning again"
            )
    return tuple(e["response"]["location"] for e in answer["entry"])


def relink(node: Any, dropped: dict[str, str]) -> Any:
    """``node`` with references to dropped entries' fullUrls replaced by their stored ids."""
    if isinstance(node, dict):
        return {
            k: dropped.get(v, v) if k == "reference" and isinstance(v, str) else relink(v, dropped)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [relink(x, dropped) for x in node]
    return node


def unchanged(stored: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether ``new`` says nothing ``stored`` does not (ids, meta and references aside)."""

    def core(resource: dict[str, Any]) -> Any:
        return strip_refs({k: v for k, v in resource.items() if k not in ("id", "meta")})

    return bool(core(stored) == core(new))


def strip_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: ("ref" if k == "reference" else strip_refs(v)) for k, v in sorted(node.items())}
    if isinstance(node, list):
        return [strip_refs(x) for x in node]
    return node


def institution_of(order: dict[str, Any], placer: str) -> str | None:
    """The institution whose placer number ``placer`` is, from the order's identifiers."""
    for ident in order.get("identifier", []):
        system = str(ident.get("system", ""))
        if ident.get("value") == placer and system.endswith(":placer"):
            return system.removeprefix("urn:medledger:id:").removesuffix(":placer")
    return None


def same_patient(patient: dict[str, Any], res: Result) -> bool:
    """The result's patient is the order's: same id among the order patient's identifiers, or
    (the performer numbered them itself) same name and birth date."""
    ids = {str(i.get("value")) for i in patient.get("identifier", [])}
    if res.patient.id in ids:
        return True
    names = {str(n.get("text") or "") for n in patient.get("name", [])}
    names |= {
        "".join([str(n.get("family") or ""), *[str(g) for g in n.get("given", [])]])
        for n in patient.get("name", [])
    }
    same_name = res.patient.name is not None and res.patient.name in names
    same_birth = res.patient.birth_date is None or res.patient.birth_date == patient.get(
        "birthDate"
    )
    return same_name and same_birth


def business_keys(model: object) -> list[tuple[str, str, str]]:
    """The (type, system, value) lookups planning ``model`` starts with."""
    if isinstance(model, Requisition):
        system = identifier_system(model.sender, "placer")
        return [("ServiceRequest", system, item.placer) for item in model.items]
    keys: list[tuple[str, str, str]] = []
    if isinstance(model, list):
        for res in model:
            if isinstance(res, Result):
                keys.append(
                    ("DiagnosticReport", identifier_system(res.sender, "filler"), res.filler)
                )
                if res.placer and res.placer_institution:
                    placer = identifier_system(res.placer_institution, "placer")
                    keys.append(("ServiceRequest", placer, res.placer))
    return keys
