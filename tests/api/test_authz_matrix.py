"""The authorization matrix over real HTTP (issue 4): roles × institutions × actions × resource
types, plus Consent and break-glass variants and token attacks.

Every cell is one request to a real server (``live``, SQLite and PostgreSQL). Its expected
outcome comes from the oracle in this module, written from the role table of
``access/model.py`` and the rules of ``DEFAULT_POLICY`` in ``access/sharing.py`` by hand; it
never calls the production decision code. Each cell asserts the exact status, the reason a
refusal gives, and that exactly one audit event was written for the request, by the right
principal, with the right interaction, outcome and basis. Searches assert exactly which ids
come back and that ``_total`` counts only those (the HAPI #2853 / #5184 class of leak): plain,
POSTed, by ``_id`` of a foreign record, through ``_history`` and across paging ``next`` links.

Wrong cells are collected and reported together, one line each, so a failure shows the whole
pattern at once.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from medledger.access.model import PrincipalKind, Role
from medledger.access.tokens import NodeTokenKey, TokenPolicy, issue_access_token
from medledger.ledger.node import LedgerNode
from tests.api.conftest import Live
from tests.identity import CENTRAL, MEMBER, OTHER, PASSWORD, admin_of, token_for

FHIR = "/fhir/R4"
INSTITUTIONS = (CENTRAL, MEMBER, OTHER)
TYPES = ("Patient", "ServiceRequest", "Observation", "DiagnosticReport", "CodeSystem")
GLASS_REASON = "patient unconscious in ED, no ID on arrival"
MAX_PAGES = 200  # a paging loop that never ends is a failure, not a hang

# -- the oracle: written from the documentation, never from the decision code ------------------

LAB = frozenset({"Specimen", "Observation", "DiagnosticReport", "ImagingStudy"})
EVERY = frozenset({"*"})
# access/model.py, ROLE_PERMISSIONS as its docstring states it: what each role may do on its
# own institution's records. admin and audit-read give no clinical access at all.
ROLE_CAN: dict[str, dict[str, frozenset[str]]] = {
    "clinician": {"read": EVERY, "search": EVERY, "write": EVERY, "delete": EVERY},
    "integration": {"read": EVERY, "search": EVERY, "write": EVERY, "delete": EVERY},
    "technician": {
        "write": LAB,
        "read": LAB | {"ServiceRequest"},
        "search": LAB | {"ServiceRequest"},
    },
    "auditor": {},
    "institution_admin": {},
    "group_admin": {},
}
AUDIT_READERS = frozenset({"auditor"})
# access/sharing.py, DEFAULT_POLICY: (rule, types, party roles, actions).
SHARING: tuple[tuple[str, frozenset[str], frozenset[str], frozenset[str]], ...] = (
    (
        "referral-orders-and-results",
        frozenset(
            {
                "ServiceRequest",
                "Specimen",
                "Observation",
                "DiagnosticReport",
                "ImagingStudy",
                "DocumentReference",
            }
        ),
        frozenset({"requester", "performer"}),
        frozenset({"read", "search"}),
    ),
    (
        "referral-order-status",
        frozenset({"ServiceRequest"}),
        frozenset({"performer"}),
        frozenset({"write"}),
    ),
    (
        "group-directories-and-dictionaries",
        frozenset({"Organization", "Practitioner", "CodeSystem", "ValueSet", "ConceptMap"}),
        frozenset({"*"}),
        frozenset({"read", "search"}),
    ),
)
# interaction -> (SMART scope letter, model action, status on success)
INTERACTION: dict[str, tuple[str, str, int]] = {
    "read": ("r", "read", 200),
    "vread": ("r", "read", 200),
    "history-instance": ("r", "read", 200),
    "search-type": ("s", "search", 200),
    "history-type": ("s", "search", 200),
    "create": ("c", "write", 201),
    "update": ("u", "write", 200),
    "delete": ("d", "delete", 204),
}


@dataclass(frozen=True)
class Who:
    """One token: ``name`` keys it, ``principal`` is whose it is (the audit's agent)."""

    name: str
    principal: str
    inst: str
    role: str
    client: bool = False
    group: bool = False  # the role is granted group-wide (scope *)
    scope: str = "user/*.cruds"


@dataclass(frozen=True)
class Rec:
    """A seeded record and what the oracle knows about it."""

    key: str
    rtype: str
    rid: str
    owner: str
    patient: str  # key of the Patient it is about ("" if none)
    parties: frozenset[tuple[str, str]]
    body: dict[str, Any]


@dataclass(frozen=True)
class Expect:
    status: int
    why: str = ""  # a 403's reason: scope, role or sharing
    basis: str = ""  # a success's basis in the audit event


Consents = frozenset[tuple[str, str, str]]  # (admitted institution, owner, patient key)


def _principals() -> tuple[Who, ...]:
    out: list[Who] = []
    for inst, s in ((CENTRAL, "c"), (MEMBER, "m"), (OTHER, "o")):
        out += [
            Who(f"clin-{s}", f"clin-{s}", inst, "clinician"),
            Who(f"tech-{s}", f"tech-{s}", inst, "technician"),
            Who(f"int-{s}", f"int-{s}", inst, "integration", client=True, scope="system/*.cruds"),
            Who(f"aud-{s}", f"aud-{s}", inst, "auditor"),
            Who(f"iadm-{s}", f"iadm-{s}", inst, "institution_admin"),
        ]
    out += [
        Who("gadm-m", "gadm-m", MEMBER, "group_admin", group=True),
        # tests/identity.py's group-wide integration client
        Who("hub", "hub", CENTRAL, "integration", client=True, group=True, scope="system/*.cruds"),
        # the same clinician with a narrower token: scopes narrow what the role allows
        Who("clin-m:obs.rs", "clin-m", MEMBER, "clinician", scope="user/Observation.rs"),
    ]
    return tuple(out)


PRINCIPALS = _principals()
BY_NAME = {w.name: w for w in PRINCIPALS}
FEEDER = {CENTRAL: BY_NAME["int-c"], MEMBER: BY_NAME["int-m"], OTHER: BY_NAME["int-o"]}


def scope_allows(scope: str, letter: str, rtype: str) -> bool:
    for token in scope.split():
        context, _, rest = token.partition("/")
        rt, _, letters = rest.partition(".")
        if context in ("user", "system") and rt in ("*", rtype) and letter in letters:
            return True
    return False


def role_can(role: str, action: str, rtype: str) -> bool:
    types = ROLE_CAN[role].get(action, frozenset())
    return "*" in types or rtype in types


def expect(
    who: Who,
    interaction: str,
    rtype: str,
    rec: Rec | None = None,
    *,
    consents: Consents = frozenset(),
    break_glass: bool = False,
) -> Expect:
    """The outcome of ``interaction`` on ``rec`` (None: a create, or a type-level search)."""
    letter, action, ok = INTERACTION[interaction]
    if not scope_allows(who.scope, letter, rtype):
        return Expect(403, "scope")
    if not role_can(who.role, action, rtype):
        return Expect(403, "role")
    if rec is None or who.group or rec.owner == who.inst:
        return Expect(ok, basis="grant")
    for name, types, parties, actions in SHARING:
        named = "*" in parties or any((p, who.inst) in rec.parties for p in parties)
        if rtype in types and action in actions and named:
            return Expect(ok, basis=f"sharing:{name}")
    readish = action in ("read", "search")
    if readish and (who.inst, rec.owner, rec.patient) in consents:
        return Expect(ok, basis="consent")
    if readish and break_glass:
        return Expect(ok, basis="break-glass")
    return Expect(403, "sharing")


def visible(
    who: Who,
    rtype: str,
    recs: Iterable[Rec],
    *,
    consents: Consents = frozenset(),
    break_glass: bool = False,
) -> set[str]:
    return {
        r.rid
        for r in recs
        if r.rtype == rtype
        and expect(who, "search-type", rtype, r, consents=consents, break_glass=break_glass).status
        == 200
    }


# -- the HTTP side -----------------------------------------------------------------------------


def org(inst: str) -> dict[str, str]:
    return {"reference": f"Organization/{inst}"}


def new_body(rtype: str, inst: str) -> dict[str, Any]:
    """A valid resource of ``rtype`` that a caller of ``inst`` creates."""
    subject = {"reference": "Patient/matrix-new"}
    bodies: dict[str, dict[str, Any]] = {
        "Patient": {"resourceType": "Patient", "managingOrganization": org(inst)},
        "ServiceRequest": {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": subject,
            "requester": org(inst),
            "performer": [org(CENTRAL)],
        },
        "Observation": {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Hb"},
            "subject": subject,
        },
        "DiagnosticReport": {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "code": {"text": "CBC"},
            "subject": subject,
        },
        "CodeSystem": {
            "resourceType": "CodeSystem",
            "status": "active",
            "content": "complete",
            "url": f"urn:medledger:test:{inst}",
            "concept": [{"code": "HB"}],
        },
    }
    return bodies[rtype]


def _diagnostics(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return " | ".join(str(i.get("diagnostics", "")) for i in body.get("issue", []))
    return json.dumps(body)[:200]


def _refs(event: dict[str, Any]) -> list[str]:
    return [
        e["what"]["reference"] for e in event.get("entity", []) if "reference" in e.get("what", {})
    ]


def _event_institution(event: dict[str, Any]) -> str:
    for agent in event.get("agent", [])[1:]:
        ident = agent.get("who", {}).get("identifier", {})
        if ident.get("system") == "urn:medledger:institution":
            return str(ident.get("value"))
    return ""


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


@dataclass
class Api:
    """Sends requests as the matrix's principals and checks each one's audit event."""

    live: Live
    http: httpx.Client
    tokens: dict[str, str]
    total: int
    events: dict[str, str] = field(default_factory=dict)  # event id -> institution
    glass: set[str] = field(default_factory=set)  # ids of break-glass requests' events
    failures: list[str] = field(default_factory=list)
    cells: int = 0

    @classmethod
    def open(cls, live: Live) -> Api:
        tokens = provision(live)
        trail = live.app.state.security.trail
        _, total, _ = trail.search([("_count", "1"), ("_total", "accurate")])
        assert total is not None
        return cls(live, httpx.Client(base_url=live.url, timeout=30), tokens, total)

    def close(self) -> None:
        self.http.close()

    def newest(self) -> tuple[int, dict[str, Any] | None]:
        trail = self.live.app.state.security.trail
        events, total, _ = trail.search([("_count", "1"), ("_total", "accurate")])
        assert total is not None
        return total, (events[0] if events else None)

    def cell(
        self,
        label: str,
        who: Who | None,
        method: str,
        url: str,
        *,
        status: int,
        interaction: str | None,
        why: str = "",
        words: Iterable[str] = (),
        basis: str = "",
        entity: str = "",
        no_entity: str = "",
        token: str | None = None,
        headers: dict[str, str] | None = None,
        flagged: bool = True,
        account_events: int = 0,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request and its checks; problems are collected in ``failures``. ``flagged``:
        a request with X-Break-Glass must have a break-glass audit event. ``account_events``:
        how many account events (sign-in, revocation) the request writes before its own."""
        self.cells += 1
        sent = dict(headers or {})
        bearer = token if token is not None else (self.tokens[who.name] if who else None)
        if bearer is not None:
            sent["Authorization"] = f"Bearer {bearer}"
        r = self.http.request(method, url, headers=sent, **kwargs)
        problems: list[str] = []
        if r.status_code != status:
            problems.append(f"status {r.status_code}, expected {status}: {_diagnostics(r)}")
        elif status in (400, 401, 403):
            body = r.json()
            diag = _diagnostics(r)
            if body.get("resourceType") != "OperationOutcome":
                problems.append(f"a {status} that is not an OperationOutcome: {diag}")
            missing = [w for w in words if w not in diag]
            if missing:
                problems.append(f"refusal ({why}) does not mention {missing}: {diag!r}")
            if status == 401 and not r.headers.get("www-authenticate", "").startswith("Bearer"):
                problems.append("a 401 without WWW-Authenticate: Bearer")
        total, event = self.newest()
        if total != self.total + 1 + account_events or event is None:
            expected = 1 + account_events
            problems.append(f"{total - self.total} new audit events, expected exactly {expected}")
        else:
            glass = flagged and "X-Break-Glass" in sent
            problems += self._check_event(
                event, who, status, interaction, basis, entity, no_entity, sent, glass
            )
            self.events[event["id"]] = _event_institution(event)
            if glass:
                self.glass.add(event["id"])
        self.total = total
        if problems:
            self.failures.append(f"{label}: " + "; ".join(problems))
        return r

    def _check_event(
        self,
        event: dict[str, Any],
        who: Who | None,
        status: int,
        interaction: str | None,
        basis: str,
        entity: str,
        no_entity: str,
        sent: dict[str, str],
        glass: bool,
    ) -> list[str]:
        problems = []
        agent = event["agent"][0]["who"]["identifier"]["value"]
        principal = who.principal if who else "anonymous"
        if agent != principal:
            problems.append(f"audit agent {agent!r}, expected {principal!r}")
        if who is not None and _event_institution(event) != who.inst:
            problems.append(f"audit institution {_event_institution(event)!r}, not {who.inst}")
        outcome = "0" if status < 400 else ("4" if status < 500 else "8")
        if event["outcome"] != outcome:
            problems.append(f"audit outcome {event['outcome']!r}, expected {outcome!r}")
        subtype = event["subtype"][0]["code"]
        if interaction is not None and subtype != interaction:
            problems.append(f"audit interaction {subtype!r}, expected {interaction!r}")
        bases = event.get("outcomeDesc", "").split("; ")[-1].split(",")
        if basis and basis not in bases:
            problems.append(f"audit basis {event.get('outcomeDesc')!r}, expected {basis!r}")
        refs = _refs(event)
        if entity and not any(
            ref == entity or ref.startswith(entity + "/_history/") for ref in refs
        ):
            problems.append(f"audit entities {refs} do not name {entity}")
        if no_entity and any(ref.startswith(no_entity) for ref in refs):
            problems.append(f"audit entities {refs} name {no_entity}, never disclosed")
        purpose = event["purposeOfEvent"][0]["coding"][0]["code"]
        if glass:
            reasons = [
                x["valueString"] for x in event.get("extension", []) if "break-glass" in x["url"]
            ]
            if purpose != "BTG" or reasons != [sent["X-Break-Glass"]]:
                problems.append(f"break-glass event not flagged: {purpose}, {reasons}")
        elif (
            who is not None
            and "X-Break-Glass" not in sent
            and purpose != sent.get("X-Purpose-Of-Use", "TREAT")
        ):
            problems.append(f"audit purpose {purpose!r}")
        return problems

    def setup(self, who: Who, method: str, url: str, status: int, **kwargs: Any) -> httpx.Response:
        """A request the test needs to succeed (seeding): asserted at once."""
        before = len(self.failures)
        r = self.cell(f"setup {who.name} {method} {url}", who, method, url, status=status,
                      interaction=None, **kwargs)  # fmt: skip
        assert len(self.failures) == before, self.failures[before:]
        return r

    # -- cells -------------------------------------------------------------------------------

    def instance(
        self,
        who: Who,
        interaction: str,
        rec: Rec,
        *,
        consents: Consents = frozenset(),
        headers: dict[str, str] | None = None,
    ) -> None:
        """read, vread, history-instance or update of ``rec``."""
        glass = headers is not None and "X-Break-Glass" in headers
        exp = expect(who, interaction, rec.rtype, rec, consents=consents, break_glass=glass)
        ref = f"{rec.rtype}/{rec.rid}"
        method, url, kwargs = "GET", f"{FHIR}/{ref}", {}
        if interaction == "vread":
            url += "/_history/1"
        elif interaction == "history-instance":
            url += "/_history"
        elif interaction == "update":
            method, kwargs = "PUT", {"json": {**rec.body, "id": rec.rid}}
        self._record_cell(who, interaction, rec, exp, method, url, headers, **kwargs)

    def delete(self, who: Who, rec: Rec, *, headers: dict[str, str] | None = None) -> None:
        """Delete ``rec``, or a fresh copy of it (same owner, parties, patient) when the
        oracle expects the delete to succeed, so later cells still find the original."""
        glass = headers is not None and "X-Break-Glass" in headers
        exp = expect(who, "delete", rec.rtype, rec, break_glass=glass)
        target = rec
        if exp.status == 204:
            feeder = FEEDER[rec.owner]
            made = self.setup(feeder, "POST", f"{FHIR}/{rec.rtype}", 201, json=rec.body)
            target = Rec(rec.key + "-copy", rec.rtype, made.json()["id"], rec.owner,
                         rec.patient, rec.parties, rec.body)  # fmt: skip
        url = f"{FHIR}/{target.rtype}/{target.rid}"
        self._record_cell(who, "delete", target, exp, "DELETE", url, headers)

    def _record_cell(
        self,
        who: Who,
        interaction: str,
        rec: Rec,
        exp: Expect,
        method: str,
        url: str,
        headers: dict[str, str] | None,
        **kwargs: Any,
    ) -> None:
        ref = f"{rec.rtype}/{rec.rid}"
        label = f"{who.name} {interaction} {rec.key} ({ref} of {rec.owner})"
        words = self._words(who, exp, rec.rtype, rec.owner)
        self.cell(label, who, method, url, status=exp.status, interaction=interaction,
                  why=exp.why, words=words, basis=exp.basis,
                  entity=ref if exp.why in ("", "sharing") else "",
                  no_entity=ref if exp.why in ("scope", "role") else "",
                  headers=headers, **kwargs)  # fmt: skip

    @staticmethod
    def _words(who: Who, exp: Expect, rtype: str, owner: str) -> tuple[str, ...]:
        if exp.why == "scope":
            return ("scopes", rtype)
        if exp.why == "role":
            return (who.principal, rtype)
        if exp.why == "sharing":
            return (owner, who.inst, "sharing rule")
        return ()

    def create(self, who: Who, rtype: str) -> None:
        exp = expect(who, "create", rtype)
        label = f"{who.name} create {rtype}"
        r = self.cell(label, who, "POST", f"{FHIR}/{rtype}", status=exp.status,
                      interaction="create", why=exp.why,
                      words=self._words(who, exp, rtype, who.inst), basis=exp.basis,
                      json=new_body(rtype, who.inst))  # fmt: skip
        if r.status_code == 201:
            created = r.json()
            if r.headers.get("location") != f"{FHIR}/{rtype}/{created['id']}/_history/1":
                self.failures.append(f"{label}: Location {r.headers.get('location')}")

    def searches(
        self,
        who: Who,
        rtype: str,
        recs: list[Rec],
        *,
        consents: Consents = frozenset(),
        headers: dict[str, str] | None = None,
        thorough: bool = True,
    ) -> None:
        """Every way to list ``rtype``: each must show exactly the visible ids and count them."""
        glass = headers is not None and "X-Break-Glass" in headers
        exp = expect(who, "search-type", rtype, break_glass=glass)
        want = visible(who, rtype, recs, consents=consents, break_glass=glass)
        basis = "break-glass" if glass else ("grant" if who.group else "")
        common: dict[str, Any] = {"why": exp.why, "words": self._words(who, exp, rtype, who.inst),
                  "basis": basis if exp.status == 200 else "", "headers": headers}  # fmt: skip
        tag = f"{who.name} {rtype}"
        query = {"_total": "accurate", "_count": "100"}
        r = self.cell(f"{tag} search", who, "GET", f"{FHIR}/{rtype}", params=query,
                      status=exp.status, interaction="search-type", **common)  # fmt: skip
        self._check_page(f"{tag} search", r, want, len(want))
        r = self.cell(f"{tag} POST _search", who, "POST", f"{FHIR}/{rtype}/_search",
                      data=query, status=exp.status, interaction="search-type",
                      **common)  # fmt: skip
        self._check_page(f"{tag} POST _search", r, want, len(want))
        r = self.cell(f"{tag} _history", who, "GET", f"{FHIR}/{rtype}/_history",
                      params={"_count": "100"}, status=exp.status, interaction="history-type",
                      **common)  # fmt: skip
        self._check_history(f"{tag} _history", r, want)
        if exp.status != 200 or not thorough:
            return
        everyone = [x for x in recs if x.rtype == rtype]
        r = self.cell(f"{tag} _id=all", who, "GET", f"{FHIR}/{rtype}",
                      params={"_id": ",".join(x.rid for x in everyone), **query},
                      status=200, interaction="search-type", **common)  # fmt: skip
        self._check_page(f"{tag} _id=all", r, want, len(want))
        for foreign in everyone:
            if foreign.rid in want:
                continue
            label = f"{tag} _id={foreign.key} ({foreign.owner})"
            r = self.cell(label, who, "GET", f"{FHIR}/{rtype}",
                          params={"_id": foreign.rid, "_total": "accurate"}, status=200,
                          interaction="search-type", **common)  # fmt: skip
            self._check_page(label, r, set(), 0)
        self._walk(f"{tag} paged", who, f"{FHIR}/{rtype}",
                   {"_count": "1", "_total": "accurate"}, want, "search-type", common)  # fmt: skip
        self._walk(f"{tag} _history paged", who, f"{FHIR}/{rtype}/_history", {"_count": "1"},
                   want, "history-type", common)  # fmt: skip

    def _walk(
        self,
        tag: str,
        who: Who,
        url: str,
        params: dict[str, str] | None,
        want: set[str],
        interaction: str,
        common: dict[str, Any],
    ) -> None:
        seen: list[str] = []
        pages = 0
        while True:
            pages += 1
            r = self.cell(f"{tag} page {pages}", who, "GET", url, params=params, status=200,
                          interaction=interaction, **common)  # fmt: skip
            if r.status_code != 200 or pages > MAX_PAGES:
                break
            bundle = r.json()
            if interaction == "history-type":
                seen += [e["fullUrl"].rsplit("/", 1)[1] for e in bundle.get("entry", [])]
            else:
                seen += _ids(bundle)
                if bundle.get("total") != len(want):
                    self.failures.append(f"{tag} page {pages}: total {bundle.get('total')}, "
                                         f"expected {len(want)}")  # fmt: skip
            nxt = [x["url"] for x in bundle.get("link", []) if x["relation"] == "next"]
            if not nxt:
                break
            url, params = nxt[0], None
        if set(seen) != want or (interaction == "search-type" and len(seen) != len(want)):
            self.failures.append(f"{tag}: paging showed {sorted(seen)}, expected {sorted(want)}")

    def _check_page(self, tag: str, r: httpx.Response, want: set[str], total: int) -> None:
        if r.status_code != 200:
            return
        bundle = r.json()
        got = _ids(bundle)
        if set(got) != want or len(got) != len(want) or bundle.get("total") != total:
            self.failures.append(f"{tag}: ids {sorted(got)} total {bundle.get('total')}, "
                                 f"expected {sorted(want)} total {total}")  # fmt: skip

    def _check_history(self, tag: str, r: httpx.Response, want: set[str]) -> None:
        if r.status_code != 200:
            return
        got = {e["fullUrl"].rsplit("/", 1)[1] for e in r.json().get("entry", [])}
        if got != want:
            self.failures.append(f"{tag}: history of {sorted(got)}, expected {sorted(want)}")

    def assert_clean(self, min_cells: int) -> None:
        assert self.cells >= min_cells, self.cells
        shown = "\n".join(self.failures[:60])
        more = f"\n... and {len(self.failures) - 60} more" if len(self.failures) > 60 else ""
        assert not self.failures, (
            f"{len(self.failures)} of {self.cells} cells wrong:\n{shown}{more}"
        )


def provision(live: Live) -> dict[str, str]:
    """Add the matrix's accounts (``root``, the group admin of tests/identity.py, grants them)
    and return a token per ``Who``."""
    admin = admin_of(live.node)
    added = {"hub"}
    tokens = {"hub": live.ids.tokens["hub"]}
    for who in PRINCIPALS:
        if who.principal not in added:
            added.add(who.principal)
            grant = [(Role(who.role), "*" if who.group else who.inst)]
            if who.client:
                admin.add_client(who.principal, who.inst, who.principal, grant, jwk=None,
                                 with_secret=True, actor="root")  # fmt: skip
            else:
                admin.add_user(who.principal, who.inst, who.principal, PASSWORD, grant, "root")
        if who.name not in tokens:
            tokens[who.name] = token_for(live.node, who.principal, who.inst, [who.role],
                                         scope=who.scope, client=who.client)  # fmt: skip
    return tokens


def seed(api: Api) -> list[Rec]:
    """Records of several types owned by MEMBER, CENTRAL and OTHER, written through the API by
    each institution's integration client; a referral MEMBER → CENTRAL with its results."""
    recs: dict[str, Rec] = {}

    def put(key: str, owner: str, patient: str, parties: set[tuple[str, str]],
            body: dict[str, Any]) -> None:  # fmt: skip
        rtype = body["resourceType"]
        r = api.setup(FEEDER[owner], "POST", f"{FHIR}/{rtype}", 201, json=body)
        recs[key] = Rec(key, rtype, r.json()["id"], owner, patient, frozenset(parties), body)

    def pt(key: str) -> dict[str, str]:
        return {"reference": f"Patient/{recs[key].rid}"}

    def order(key: str) -> list[dict[str, str]]:
        return [{"reference": f"ServiceRequest/{recs[key].rid}"}]

    def obs(patient: str, **more: Any) -> dict[str, Any]:
        return {"resourceType": "Observation", "status": "final", "code": {"text": "Hb"},
                "subject": pt(patient), **more}  # fmt: skip

    def report(patient: str, **more: Any) -> dict[str, Any]:
        return {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "CT"},
                "subject": pt(patient), **more}  # fmt: skip

    def code_system(inst: str) -> dict[str, Any]:
        return {"resourceType": "CodeSystem", "status": "active", "content": "complete",
                "url": f"urn:medledger:items:{inst}", "concept": [{"code": "HB"}]}  # fmt: skip

    def patient(inst: str) -> dict[str, Any]:
        return {"resourceType": "Patient", "managingOrganization": org(inst)}

    m, c, o = MEMBER, CENTRAL, OTHER
    put("pm1", m, "pm1", {("custodian", m)}, patient(m))
    put("pm2", m, "pm2", {("custodian", m)}, patient(m))
    put("pc1", c, "pc1", {("custodian", c)}, patient(c))
    put("po1", o, "po1", {("custodian", o)}, patient(o))
    referral = {("requester", m), ("performer", c)}
    put("sr1", m, "pm1", referral,
        {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
         "subject": pt("pm1"), "requester": org(m), "performer": [org(c)]})  # fmt: skip
    put("src", c, "pc1", {("requester", c), ("performer", c)},
        {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
         "subject": pt("pc1"), "requester": org(c), "performer": [org(c)]})  # fmt: skip
    put("om1", m, "pm1", set(), obs("pm1"))
    put("om2", m, "pm2", set(), obs("pm2"))
    # CENTRAL's results of MEMBER's referral: they inherit the order's parties.
    put("oc1", c, "pm1", referral, obs("pm1", basedOn=order("sr1"), performer=[org(c)]))
    put("dr1", c, "pm1", referral, report("pm1", basedOn=order("sr1"), performer=[org(c)]))
    put("oc2", c, "pc1", set(), obs("pc1"))
    put("drm", m, "pm2", {("performer", m)}, report("pm2", performer=[org(m)]))
    put("oo1", o, "po1", set(), obs("po1"))
    put("csm", m, "", set(), code_system(m))
    put("csc", c, "", set(), code_system(c))
    return list(recs.values())


@pytest.fixture
def api(live: Live) -> Iterator[Api]:
    built = Api.open(live)
    yield built
    built.close()


# -- the matrix --------------------------------------------------------------------------------


@pytest.mark.parametrize("home", INSTITUTIONS)
def test_record_matrix(api: Api, home: str) -> None:
    """Every principal of ``home`` × every seeded record × read, vread, history, update,
    delete, and × every type × create."""
    recs = seed(api)
    callers = [w for w in PRINCIPALS if w.inst == home]
    for who in callers:
        for rec in recs:
            for interaction in ("read", "vread", "history-instance", "update"):
                api.instance(who, interaction, rec)
        for rtype in TYPES:
            api.create(who, rtype)
    for who in callers:
        for rec in recs:
            api.delete(who, rec)
    api.assert_clean(min_cells=len(callers) * (len(recs) * 5 + len(TYPES)))


@pytest.mark.parametrize("home", INSTITUTIONS)
def test_search_matrix(api: Api, home: str) -> None:
    """Searches never show or count a record a read would refuse: plain, POST, ``_id`` of a
    foreign record, ``_history`` and paging; AuditEvent only for auditors, own events only."""
    recs = seed(api)
    callers = [w for w in PRINCIPALS if w.inst == home]
    for who in callers:
        for rtype in TYPES:
            api.searches(who, rtype, recs)
    for who in callers:
        audit_cells(api, who)
    api.assert_clean(min_cells=len(callers) * len(TYPES) * 3)


def audit_cells(api: Api, who: Who) -> None:
    """AuditEvent search and read: an auditor sees exactly its institution's events."""
    if not scope_allows(who.scope, "r", "AuditEvent"):
        exp = Expect(403, "scope")
    elif who.role not in AUDIT_READERS:
        exp = Expect(403, "role")
    else:
        exp = Expect(200)
    words = ("scopes", "AuditEvent") if exp.why == "scope" else (who.principal,)
    own = {e for e, inst in api.events.items() if inst == who.inst}
    label = f"{who.name} AuditEvent search"
    r = api.cell(label, who, "GET", f"{FHIR}/AuditEvent",
                 params={"_count": "1000", "_total": "accurate"}, status=exp.status,
                 interaction="search-type", why=exp.why,
                 words=words if exp.status == 403 else ())  # fmt: skip
    if r.status_code == 200:
        bundle = r.json()
        got = set(_ids(bundle))
        if got != own or bundle.get("total") != len(own):
            api.failures.append(f"{label}: {len(got)} events (total {bundle.get('total')}), "
                                f"expected the {len(own)} of {who.inst}")  # fmt: skip
    foreign = next(e for e, inst in api.events.items() if inst not in ("", who.inst))
    mine = next(iter(own), None)
    api.cell(f"{who.name} AuditEvent read foreign", who, "GET", f"{FHIR}/AuditEvent/{foreign}",
             status=404 if exp.status == 200 else exp.status, interaction="read",
             why=exp.why, words=words if exp.status == 403 else ())  # fmt: skip
    if mine is not None:
        api.cell(f"{who.name} AuditEvent read own", who, "GET", f"{FHIR}/AuditEvent/{mine}",
                 status=exp.status, interaction="read", why=exp.why,
                 words=words if exp.status == 403 else ())  # fmt: skip


# -- Consent -----------------------------------------------------------------------------------


def consent_body(patient_ref: str, status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": status,
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"code": "59284-0"}]}],
        "patient": {"reference": patient_ref},
        "provision": {
            "type": "permit",
            "actor": [{"role": {"text": "treating institution"}, "reference": org(OTHER)}],
            "purpose": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}
            ],
            "period": {"start": "2020-01-01", "end": "2099-12-31"},
        },
    }


def test_consent_variant(api: Api) -> None:
    """MEMBER records a Consent admitting OTHER to pm1: OTHER reads and finds MEMBER's records
    of pm1 (not pm2's, not CENTRAL's of pm1), for treatment only, until the Consent ends."""
    recs = seed(api)
    by_key = {r.key: r for r in recs}
    others = [w for w in PRINCIPALS if w.inst == OTHER]
    clin = BY_NAME["clin-o"]
    om1 = by_key["om1"]
    api.instance(clin, "read", om1)  # before the Consent: refused
    made = api.setup(FEEDER[MEMBER], "POST", f"{FHIR}/Consent", 201,
                     json=consent_body(f"Patient/{by_key['pm1'].rid}"))  # fmt: skip
    cid = made.json()["id"]
    recs.append(Rec("consent", "Consent", cid, MEMBER, "pm1", frozenset({("consent-actor", OTHER)}),
                    consent_body(f"Patient/{by_key['pm1'].rid}")))  # fmt: skip
    admitted: Consents = frozenset({(OTHER, MEMBER, "pm1")})
    for who in others:
        for rec in recs:
            for interaction in ("read", "update"):
                api.instance(who, interaction, rec, consents=admitted)
        for rtype in TYPES:
            api.searches(who, rtype, recs, consents=admitted, thorough=False)
    # Another purpose of use is not what the patient agreed to.
    research = {"X-Purpose-Of-Use": "HRESCH"}
    api.instance(clin, "read", om1, headers=research)
    api.instance(clin, "read", by_key["oo1"], headers=research)  # its own: still readable
    api.searches(clin, "Observation", recs, headers=research, thorough=False)
    # The Consent made inactive: refused again at once.
    inactive = {**consent_body(f"Patient/{by_key['pm1'].rid}", "inactive"), "id": cid}
    api.setup(FEEDER[MEMBER], "PUT", f"{FHIR}/Consent/{cid}", 200, json=inactive)
    api.instance(clin, "read", om1)
    api.instance(clin, "read", by_key["pm1"])
    api.searches(clin, "Observation", recs, thorough=False)
    api.assert_clean(min_cells=len(others) * len(recs) * 2)


# -- break-glass -------------------------------------------------------------------------------


def test_break_glass_variant(api: Api) -> None:
    """X-Break-Glass lets OTHER read and search MEMBER's and CENTRAL's data, never write it;
    every such request's audit event is flagged, for the auditor and for the CLI."""
    recs = seed(api)
    glass = {"X-Break-Glass": GLASS_REASON}
    others = [w for w in PRINCIPALS if w.inst == OTHER]
    for who in others:
        for rec in recs:
            for interaction in ("read", "update"):
                api.instance(who, interaction, rec, headers=glass)
        for rtype in TYPES:  # _id and paging checks once: break-glass shows everything
            api.searches(who, rtype, recs, headers=glass, thorough=who.name == "clin-o")
    for who in others:  # last: a delete's fresh copy would change what searches find
        for rec in recs:
            api.delete(who, rec, headers=glass)
    # A plain request of the same clinician is not flagged.
    clin = BY_NAME["clin-o"]
    api.instance(clin, "read", next(r for r in recs if r.key == "oo1"))
    api.assert_clean(min_cells=len(others) * len(recs) * 3)
    assert api.glass
    # The auditor of OTHER finds exactly the break-glass requests, and none of the rest.
    aud = BY_NAME["aud-o"]
    flagged = api.cell("aud-o break_glass=true", aud, "GET", f"{FHIR}/AuditEvent",
                       params={"break_glass": "true", "_count": "1000", "_total": "accurate"},
                       status=200, interaction="search-type")  # fmt: skip
    assert set(_ids(flagged.json())) == api.glass
    assert flagged.json()["total"] == len(api.glass)
    plain = api.cell("aud-o break_glass=false", aud, "GET", f"{FHIR}/AuditEvent",
                     params={"break_glass": "false", "_count": "1000"},
                     status=200, interaction="search-type")  # fmt: skip
    assert not set(_ids(plain.json())) & api.glass
    assert api.failures == []
    # The CLI, run beside the live server, lists the same events.
    api.live.app.state.security.trail.flush()
    cli = Path(sys.executable).with_name("medledger")
    run = subprocess.run(
        [str(cli), "audit", "access", "--break-glass", "--json", "--limit", "100000",
         "--data", str(api.live.node.data_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    assert {e["id"] for e in listed} == api.glass
    assert all(e["purposeOfEvent"][0]["coding"][0]["code"] == "BTG" for e in listed)


def test_refused_break_glass_is_audited_with_its_caller(api: Api) -> None:
    """A break-glass reason that is too short (or too long) is a 400, and its audit event
    names the clinician who tried: a refused emergency access is what an auditor looks for."""
    recs = seed(api)
    om1 = next(r for r in recs if r.key == "om1")
    clin = BY_NAME["clin-o"]
    for reason in ("abc", "x" * 201):
        api.cell(f"clin-o break-glass reason of {len(reason)}", clin, "GET",
                 f"{FHIR}/Observation/{om1.rid}", status=400, interaction=None,
                 why="bad header", words=("break-glass", "reason"),
                 headers={"X-Break-Glass": reason}, flagged=False)  # fmt: skip
    api.assert_clean(min_cells=2)


# -- tokens ------------------------------------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_token_attacks(api: Api, tmp_path: Path) -> None:
    """Forged, foreign, expired, revoked tokens and disabled accounts: 401, each audited."""
    recs = seed(api)
    target = next(r for r in recs if r.key == "om1")
    url = f"{FHIR}/Observation/{target.rid}"
    live, clin = api.live, BY_NAME["clin-m"]
    good = api.tokens["clin-m"]
    head, payload, sig = good.split(".")
    chain = live.node.config.chain

    def forged(**claims: Any) -> str:
        return token_for_claims(live.node, chain, clin, **claims)

    other_node = LedgerNode.init(tmp_path / "elsewhere", node=MEMBER, block_max_wait_ms=1)
    try:
        foreign = issue_access_token(
            NodeTokenKey.for_node(other_node), TokenPolicy(issuer=chain, audience=chain),
            subject="clin-m", institution=MEMBER, roles=["clinician"], scope="user/*.cruds",
            now=time.time(),
        ).access_token  # fmt: skip
    finally:
        other_node.close()
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    claims = _unb64(payload)
    attacks = {
        "tampered signature": f"{head}.{payload}.{flipped}",
        "tampered claims (inst)": f"{head}.{_b64({**claims, 'inst': CENTRAL})}.{sig}",
        "tampered claims (roles)": f"{head}.{_b64({**claims, 'roles': ['group_admin']})}.{sig}",
        "alg none": f"{_b64({**_unb64(head), 'alg': 'none'})}.{payload}.",
        "alg none, no signature part": f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{payload}",
        "another node's key": foreign,
        "expired": forged(now=time.time() - 7200, ttl=60),
        "not yet valid": forged(now=time.time() + 3600, ttl=600),
        "another issuer": forged(issuer="another-chain"),
        "garbage": "not-a-token",
    }
    api.cell("good token", clin, "GET", url, status=200, interaction="read")
    # A token this node really signed but refuses (out of date, or for another issuer) is
    # audited under the account it names; a forged one under nobody.
    genuine = {"expired", "not yet valid", "another issuer"}
    for name, token in attacks.items():
        api.cell(f"token attack: {name}", clin if name in genuine else None, "GET", url,
                 token=token, status=401, interaction="unknown", why="token",
                 words=("access token",))  # fmt: skip
    # Revoked through POST /auth/revoke (RFC 7009; a person's token, no client auth).
    revoked = api.tokens["clin-c"]
    central = BY_NAME["clin-c"]
    api.cell("clin-c before revoke", central, "GET", url, token=revoked, status=403,
             interaction="read", why="sharing", words=(MEMBER,))  # fmt: skip
    api.cell("POST /auth/revoke", None, "POST", "/auth/revoke", data={"token": revoked},
             status=200, interaction=None, account_events=1)  # fmt: skip
    trail = live.app.state.security.trail
    signed_out, _, _ = trail.search([("agent", "clin-c"), ("_count", "1")])
    assert "revocation" in signed_out[0].get("outcomeDesc", ""), signed_out[0]
    api.cell("revoked token", central, "GET", url, token=revoked, status=401,
             interaction="unknown", why="token", words=("revoked",))  # fmt: skip
    # A disabled account: its unexpired token stops working at once, and works again after.
    admin = admin_of(live.node)
    admin.set_user_disabled("clin-m", True, actor="root")
    api.cell("disabled user", clin, "GET", url, token=good, status=401, interaction="unknown",
             why="token", words=("disabled",))  # fmt: skip
    admin.set_user_disabled("clin-m", False, actor="root")
    api.cell("re-enabled user", clin, "GET", url, status=200, interaction="read")
    # A revoked grant: the token still authenticates, but the role is gone at once.
    admin.revoke(PrincipalKind.USER, "clin-m", Role.CLINICIAN, MEMBER, "root")
    api.cell("revoked grant", clin, "GET", url, status=403, interaction="read", why="role",
             words=("clin-m", "no role"))  # fmt: skip
    api.assert_clean(min_cells=len(attacks) + 6)


def token_for_claims(
    node: LedgerNode,
    chain: str,
    who: Who,
    *,
    now: float | None = None,
    ttl: int = 600,
    issuer: str | None = None,
) -> str:
    """A token signed with the node's real key, with chosen times or issuer."""
    return issue_access_token(
        NodeTokenKey.for_node(node),
        TokenPolicy(issuer=issuer or chain, audience=chain),
        subject=who.principal,
        institution=who.inst,
        roles=[who.role],
        scope=who.scope,
        now=time.time() if now is None else now,
        ttl=ttl,
    ).access_token


def test_refusals_are_fhir_security_issues(api: Api) -> None:
    """A 403 is an OperationOutcome with issue code ``forbidden``, a 401 one of the security
    codes (``login``, ``unknown``, ``expired``), never ``exception`` (an internal error)."""
    recs = seed(api)
    om1 = next(r for r in recs if r.key == "om1")
    url = f"{FHIR}/Observation/{om1.rid}"
    refused = api.cell("clin-o read om1", BY_NAME["clin-o"], "GET", url, status=403,
                       interaction="read", why="sharing", words=(MEMBER,))  # fmt: skip
    anonymous = api.cell("bad token", None, "GET", url, token="x.y.z", status=401,
                         interaction="unknown", why="token")  # fmt: skip
    api.assert_clean(min_cells=2)
    assert refused.json()["issue"][0]["code"] == "forbidden", refused.json()
    assert anonymous.json()["issue"][0]["code"] in ("login", "unknown", "expired"), anonymous.json()
