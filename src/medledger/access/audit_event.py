"""One API request's audit event, and its FHIR R4 AuditEvent form.

``AuditRecord`` is what a route hands the audit trail: who (``Caller``), what interaction and
action, the HTTP status, and which resources (references), patients (pseudonyms) and search
parameters (names only) it touched. Construction validates every field (``audit_guard``), so a
record that could carry clinical content or a raw identifier is refused with InputError.

``to_fhir`` renders it as an R4 AuditEvent:

- ``type`` rest, ``subtype`` the RESTful interaction (http://hl7.org/fhir/restful-interaction;
  MedLedger's own interactions such as ``certificate`` under ``INTERACTION_SYSTEM``);
- ``agent[0]`` the requestor (``who.identifier`` system ``urn:medledger:user`` or
  ``urn:medledger:client``, its roles, the network address); the institution the principal
  acts for is a second agent, ``who.identifier`` system ``urn:medledger:institution`` with type
  v3-RoleClass ``PROV`` and ``requestor`` false (our choice over an extension: it stays
  searchable with standard tools); a user acting through a client application gets a third
  agent (DICOM 110150 Application);
- ``purposeOfEvent`` the caller's purpose, ``BTG`` on break-glass with the (cleaned) reason in
  the extension ``BREAK_GLASS_URL``; the route template in the extension ``PATH_URL``;
- ``entity`` the references (``what.reference``; access refs such as ``user/dr.li`` as
  ``what.identifier``), the patients (``what.identifier`` system ``urn:medledger:pseudonym``,
  role Patient), and the search parameter names as a Query entity (base64 of ``a&b``).

Lockout and admin events (``access.lockout`` / ``access._admin_base`` dicts) map onto records
of interaction ``login`` / ``admin`` through ``access_record``.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medledger.access.audit_guard import (
    check_caller,
    check_code,
    check_items,
    check_ref,
    check_text,
    clean_reason,
)
from medledger.access.caller import PURPOSE_BREAK_GLASS, Caller
from medledger.access.model import PrincipalKind
from medledger.errors import InputError

__all__ = [
    "ACTIONS",
    "BREAK_GLASS_URL",
    "INTERACTIONS",
    "NO_ROUTE",
    "OWNER_PREFIX",
    "AuditRecord",
    "access_record",
    "from_access_event",
    "outcome_code",
]

BASE_URL = "https://medledger.example/fhir"
BREAK_GLASS_URL = f"{BASE_URL}/StructureDefinition/break-glass-reason"
PATH_URL = f"{BASE_URL}/StructureDefinition/request-path"
TOKEN_URL = f"{BASE_URL}/StructureDefinition/token-id"
INTERACTION_SYSTEM = f"{BASE_URL}/CodeSystem/interaction"
REST_SYSTEM = "http://hl7.org/fhir/restful-interaction"
_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"

ACTIONS = frozenset("CRUDE")
REST_INTERACTIONS = frozenset(
    {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "history-system",
        "create",
        "search-type",
        "search-system",
        "capabilities",
        "transaction",
        "batch",
        "operation",
    }
)
# "unknown": a request refused before it reached a route (no token, no such path).
OWN_INTERACTIONS = frozenset({"certificate", "token", "admin", "verify", "login", "unknown"})
NO_ROUTE = "(no route)"
"""The ``path`` of a request that matched no route template."""
INTERACTIONS = REST_INTERACTIONS | OWN_INTERACTIONS
OWNER_PREFIX = "institution/"
"""Entity ref prefix naming an institution: the one whose accounts an admin event changed, or
one whose records a request touched on behalf of another (so its auditors see the access)."""
MAX_ENTITIES = 2000
MAX_PATIENTS = 200
MAX_QUERY = 50

_PSEUDONYM = re.compile(r"[0-9a-f]{64}")
_PARAM = re.compile(r"\?|[A-Za-z_][A-Za-z0-9_.:-]{0,63}")  # "?" stands for an odd name
_PATH = re.compile(r"/[A-Za-z0-9_{}/$.-]{0,199}")
_IP = re.compile(r"[0-9.]{7,15}|[0-9A-Fa-f:.]{2,45}")


def outcome_code(status: int) -> str:
    """Return the AuditEvent outcome for an HTTP status: 0 success, 4 minor, 8 serious."""
    if status >= 500:
        return "8"
    return "4" if status >= 400 else "0"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What one request did, as the audit trail records it (validated on construction).

    ``description`` is short fixed text the server writes (no references, no numbers of six or
    more digits); ``entities`` references; ``patients`` pseudonyms (64 hex); ``query`` search
    parameter NAMES (never values); ``path`` the route template, never the raw URL.
    """

    caller: Caller
    interaction: str
    action: str
    status: int
    description: str = ""
    entities: tuple[str, ...] = ()
    patients: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    path: str = ""

    def __post_init__(self) -> None:
        check_caller(self.caller)
        if self.interaction not in INTERACTIONS:
            raise InputError(
                f"unknown interaction {self.interaction!r}",
                field="interaction",
                value=str(self.interaction)[:40],
                expected=", ".join(sorted(INTERACTIONS)),
            )
        if self.action not in ACTIONS or len(self.action) != 1:
            raise InputError(
                "action must be one of C R U D E",
                field="action",
                value=str(self.action)[:10],
                expected="C, R, U, D or E",
            )
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise InputError("status must be an HTTP status", field="status", expected="100-599")
        if not 100 <= self.status <= 599:
            raise InputError(
                "status must be an HTTP status",
                field="status",
                value=self.status,
                expected="100-599",
            )
        check_text(self.description, "description")
        if self.path and self.path != NO_ROUTE:
            check_code(self.path, "path", _PATH, "a route template such as /fhir/R4/{rtype}/{rid}")
            check_text(self.path, "path")
        for name, items, limit in (
            ("entities", self.entities, MAX_ENTITIES),
            ("patients", self.patients, MAX_PATIENTS),
            ("query", self.query, MAX_QUERY),
        ):
            object.__setattr__(self, name, check_items(items, name, limit))
        for i, ref in enumerate(self.entities):
            check_ref(ref, f"entities[{i}]")
        for i, p in enumerate(self.patients):
            check_code(p, f"patients[{i}]", _PSEUDONYM, "a pseudonym: 64 lowercase hex")
        for i, q in enumerate(self.query):
            check_code(q, f"query[{i}]", _PARAM, "a search parameter name such as code or _count")

    @property
    def break_glass(self) -> bool:
        """Whether the request invoked break-glass (a stated reason, or purpose BTG)."""
        return self.caller.break_glass is not None or self.caller.purpose == PURPOSE_BREAK_GLASS

    @property
    def outcome(self) -> str:
        return outcome_code(self.status)

    def to_fhir(self, event_id: str, recorded: str, node: str) -> dict[str, Any]:
        """Return the FHIR R4 AuditEvent of this record (see the module docstring)."""
        c = self.caller
        rest = self.interaction in REST_INTERACTIONS
        event: dict[str, Any] = {
            "resourceType": "AuditEvent",
            "id": event_id,
            "type": {"system": _TYPE_SYSTEM, "code": "rest", "display": "RESTful Operation"},
            "subtype": [
                {
                    "system": REST_SYSTEM if rest else INTERACTION_SYSTEM,
                    "code": self.interaction,
                }
            ],
            "action": self.action,
            "recorded": recorded,
            "outcome": self.outcome,
            "agent": _agents(c),
            "source": {
                "observer": {"identifier": {"system": "urn:medledger:node", "value": node}},
                "type": [{"system": _SOURCE_TYPE, "code": "4", "display": "Application Server"}],
            },
        }
        if self.description:
            event["outcomeDesc"] = self.description
        purpose = PURPOSE_BREAK_GLASS if c.break_glass is not None else c.purpose
        event["purposeOfEvent"] = [{"coding": [{"system": _ACT_REASON, "code": purpose}]}]
        extensions = []
        if c.break_glass is not None:
            extensions.append({"url": BREAK_GLASS_URL, "valueString": clean_reason(c.break_glass)})
        if self.path:
            extensions.append({"url": PATH_URL, "valueString": self.path})
        if extensions:
            event["extension"] = extensions
        entities = [_entity(ref) for ref in self.entities]
        entities += [_patient(p) for p in self.patients]
        if self.query:
            entities.append(_query(self.query))
        if entities:
            event["entity"] = entities
        return event


def _agents(c: Caller) -> list[dict[str, Any]]:
    system = "urn:medledger:anonymous" if c.kind is None else f"urn:medledger:{c.kind.value}"
    who: dict[str, Any] = {
        "who": {"identifier": {"system": system, "value": c.principal}},
        "requestor": True,
    }
    if c.roles:
        who["role"] = [{"coding": [{"system": "urn:medledger:role", "code": r}]} for r in c.roles]
    if c.address:
        kind = "2" if _IP.fullmatch(c.address) else "1"  # 2 IP address, 1 machine name
        who["network"] = {"address": c.address, "type": kind}
    if c.token_id:
        who["extension"] = [{"url": TOKEN_URL, "valueString": c.token_id}]
    agents = [who]
    if c.institution:
        agents.append(
            {
                "type": {"coding": [{"system": _ROLE_CLASS, "code": "PROV"}]},
                "who": {
                    "identifier": {"system": "urn:medledger:institution", "value": c.institution}
                },
                "requestor": False,
            }
        )
    if c.client_id and c.kind is not PrincipalKind.CLIENT:
        agents.append(
            {
                "type": {"coding": [{"system": _DCM, "code": "110150", "display": "Application"}]},
                "who": {"identifier": {"system": "urn:medledger:client", "value": c.client_id}},
                "requestor": False,
            }
        )
    return agents


def _entity(ref: str) -> dict[str, Any]:
    what: dict[str, Any]
    if ref.split("/", 1)[0] in ("user", "client", "institution"):
        what = {"identifier": {"system": "urn:medledger:access", "value": ref}}
    else:
        what = {"reference": ref}
    # 2 = System Object: a resource version, an account or an institution record.
    return {"what": what, "type": {"system": _ENTITY_TYPE, "code": "2"}}


def _patient(pseudonym: str) -> dict[str, Any]:
    return {
        "what": {"identifier": {"system": "urn:medledger:pseudonym", "value": pseudonym}},
        "type": {"system": _ENTITY_TYPE, "code": "1", "display": "Person"},
        "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
    }


def _query(names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
        "role": {"system": _OBJECT_ROLE, "code": "24", "display": "Query"},
        "query": base64.b64encode("&".join(names).encode()).decode(),
    }


# -- lockout and admin events ------------------------------------------------------------------

_ADMIN_ACTIONS = {"add": "C", "grant": "C", "revoke": "D"}
_SAFE_EXTRAS = ("kind", "role", "scope", "reason")


def access_record(event: Mapping[str, Any]) -> AuditRecord:
    """Return the audit record of a lockout/unlock or admin event (a dict; see module doc).

    Only ids, codes and role names are taken over; any other member (a display name, a key
    thumbprint) is left out, so an event can never bring personal data into the trail.
    """
    name = event.get("event")
    if name in ("auth.lockout", "auth.unlock"):
        return _auth_record(event, str(name))
    if name in ("auth.token", "auth.revoke"):
        return _sign_in_record(event, str(name))
    if isinstance(name, str) and name.startswith("access."):
        return _admin_record(event, name)
    raise InputError(
        "not a lockout or admin event",
        field="event",
        value=str(name)[:40],
        expected="auth.lockout, auth.unlock, auth.token, auth.revoke or access.*",
    )


def from_access_event(
    event: Mapping[str, Any],
    node: str,
    *,
    event_id: str | None = None,
    recorded: str | None = None,
) -> dict[str, Any]:
    """Return the FHIR AuditEvent of a lockout/unlock or admin event.

    ``event_id`` defaults to a new UUID and ``recorded`` to the event's own ``at``.
    """
    at = recorded if recorded is not None else event.get("at")
    if not isinstance(at, str):
        raise InputError("the event has no time", field="at", expected="an RFC 3339 instant")
    return access_record(event).to_fhir(event_id or str(uuid.uuid4()), at, node)


def _auth_record(event: Mapping[str, Any], name: str) -> AuditRecord:
    kind = _kind(event.get("principal_kind"))
    principal = str(event.get("principal"))
    target = f"{kind.value}/{principal}"
    if name == "auth.lockout":
        failures = int(event.get("failures", 0))
        seconds = int(float(event.get("lock_seconds", 0)))
        return AuditRecord(
            Caller(kind=kind, principal=principal, institution=""),
            "login",
            "E",
            429,
            f"account locked after {failures} failed sign-ins for {seconds} s",
            entities=(target,),
        )
    by = event.get("by")
    if event.get("reason") == "admin" and isinstance(by, str):
        who = Caller(kind=PrincipalKind.USER, principal=by, institution="")
        text = "account unlocked by an admin"
    else:
        who = Caller(kind=kind, principal=principal, institution="")
        text = "account lock expired"
    return AuditRecord(who, "login", "E", 200, text, entities=(target,))


def _sign_in_record(event: Mapping[str, Any], name: str) -> AuditRecord:
    """A sign-in (``auth.token``) or sign-out (``auth.revoke``), tied to the account."""
    kind = _kind(event.get("principal_kind"))
    principal = str(event.get("principal"))
    failed = event.get("outcome") == "failure"
    grant = str(event.get("grant_type") or "")
    grant = grant if grant.replace("_", "").isalpha() else "other"
    verb = "sign-in" if name == "auth.token" else "token revocation"
    text = f"{verb} ({grant}) {'failed' if failed else 'succeeded'}" if grant else verb
    return AuditRecord(
        Caller(kind=kind, principal=principal, institution=""),
        "login",
        "E",
        401 if failed else 200,
        text,
        entities=(f"{kind.value}/{principal}",),
    )


def _admin_record(event: Mapping[str, Any], name: str) -> AuditRecord:
    op = name.removeprefix("access.")
    verb = op.rsplit(".", 1)[-1]
    parts = [name]
    for key in _SAFE_EXTRAS:
        value = event.get(key)
        if isinstance(value, str):
            parts.append(f"{key}={value}")
    roles = event.get("roles")
    if isinstance(roles, list):
        parts.append("roles=" + ",".join(str(r) for r in roles))
    # On behalf of the institution whose accounts changed, so its auditors see the change.
    institution = event.get("institution")
    home = institution if isinstance(institution, str) else ""
    entities = [str(event.get("ref"))] + ([f"institution/{home}"] if home else [])
    return AuditRecord(
        Caller(kind=PrincipalKind.USER, principal=str(event.get("by")), institution=home),
        "admin",
        _ADMIN_ACTIONS.get(verb, "U"),
        200,
        " ".join(parts)[:200],
        entities=tuple(entities),
    )


def _kind(value: Any) -> PrincipalKind:
    try:
        return PrincipalKind(value)
    except ValueError:
        raise InputError(
            "bad principal_kind",
            field="principal_kind",
            value=str(value)[:20],
            expected="user or client",
        ) from None
