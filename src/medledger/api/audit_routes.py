"""The audit trail over FHIR: ``/fhir/R4/AuditEvent`` search, read and ``$certificate``.

Only holders of ``audit-read:AuditEvent@<institution>`` (the auditor role) get here; they see
the events of requests made on behalf of the institutions they audit (``*``: the whole
group). Clinical roles never reach AuditEvent, and auditors never reach clinical content.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from medledger.access.audit_trail import AuditTrail
from medledger.access.caller import Caller
from medledger.access.model import ANY, AUDIT_RESOURCE, Action
from medledger.access.permissions import allows
from medledger.access.scopes import allows as scope_allows
from medledger.api.errors import FHIR_JSON, FastJSONResponse
from medledger.api.fhir import page_links
from medledger.errors import AuthenticationFailed, NotFound, PermissionDenied
from medledger.records.parties import INSTITUTION_SYSTEM

BASE = "/fhir/R4/AuditEvent"


def audited_institutions(caller: Caller) -> frozenset[str] | None:
    """The institutions whose audit events ``caller`` may read (None: all); 403 if none."""
    if not scope_allows(caller.scopes, "read", AUDIT_RESOURCE):
        raise PermissionDenied(
            "the token's scopes do not allow reading AuditEvent",
            field="scope",
            expected="a scope such as user/AuditEvent.rs",
        )
    held = caller.permissions
    if allows(held, Action.AUDIT_READ, AUDIT_RESOURCE, ANY):
        return None
    insts = frozenset(p.scope for p in held if p.action is Action.AUDIT_READ)
    if not insts:
        raise PermissionDenied(
            f"{caller.principal} may not read the audit trail",
            field="permission",
            value=f"audit-read:AuditEvent@{caller.institution}",
            expected="the auditor role",
        )
    return insts


def event_institution(event: dict[str, Any]) -> str | None:
    """The institution an audit event's request was made for."""
    for agent in event.get("agent", []):
        ident = (agent.get("who") or {}).get("identifier") or {}
        if ident.get("system") == INSTITUTION_SYSTEM:
            value = ident.get("value")
            return value if isinstance(value, str) else None
    return None


def router(trail: AuditTrail) -> APIRouter:
    """Build the AuditEvent routes (mounted before the generic /fhir/R4/{type} routes)."""
    r = APIRouter(prefix=BASE, tags=["audit"])

    def _caller(request: Request) -> Caller:
        caller: Caller | None = getattr(request.state, "caller", None)
        if caller is None or not caller.authenticated:
            raise AuthenticationFailed("this endpoint needs an access token", field="Authorization")
        return caller

    def _visible(request: Request, event_id: str) -> dict[str, Any]:
        insts = audited_institutions(_caller(request))
        event = trail.read(event_id)
        if insts is not None and event_institution(event) not in insts:
            # Not "403": an auditor of one hospital learns nothing of another's events.
            raise NotFound(f"AuditEvent/{event_id} does not exist", field="id", value=event_id)
        return event

    @r.get("")
    def search(request: Request) -> JSONResponse:
        insts = audited_institutions(_caller(request))
        params = list(request.query_params.multi_items())
        events, total, token = trail.search(params, institutions=insts)
        base = str(request.base_url).rstrip("/") + BASE

        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": page_links(base, params, token),
        }
        if total is not None:
            bundle["total"] = total
        bundle["entry"] = [
            {"fullUrl": f"{base}/{e['id']}", "resource": e, "search": {"mode": "match"}}
            for e in events
        ]
        return FastJSONResponse(bundle, media_type=FHIR_JSON)

    @r.get("/{eid}")
    def read(eid: str, request: Request) -> JSONResponse:
        return FastJSONResponse(_visible(request, eid), media_type=FHIR_JSON)

    @r.get("/{eid}/$certificate")
    def certificate(eid: str, request: Request) -> JSONResponse:
        _visible(request, eid)
        return JSONResponse(trail.certificate(eid))

    return r
