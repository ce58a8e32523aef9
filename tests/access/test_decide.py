"""Decisions across institutions: grants, sharing policy, Consent, break-glass, and searches
that never show (or count) what a read would refuse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medledger.access.caller import Caller
from medledger.access.consent import ConsentIndex
from medledger.access.decide import CallerGuard
from medledger.access.model import PrincipalKind, Role
from medledger.access.permissions import resolve
from medledger.access.scopes import parse_scopes
from medledger.access.sharing import DEFAULT_POLICY, parse_policy
from medledger.errors import InputError, PermissionDenied
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService
from medledger.records.visibility import Shared, Visibility

M, C, X = "hosp-member", "hosp-central", "hosp-other"


@pytest.fixture
def service(tmp_path: Path, db_url: str | None) -> Iterator[RecordService]:
    node = LedgerNode.init(tmp_path / "d", db=db_url, node=C, block_max_wait_ms=1)
    yield RecordService.open(node)
    node.close()


def caller(
    inst: str, role: Role = Role.CLINICIAN, *, scope: str = "user/*.cruds", **kw: Any
) -> Caller:
    return Caller(
        kind=PrincipalKind.USER,
        principal=f"u-{inst}",
        institution=inst,
        roles=(role.value,),
        permissions=resolve(role, inst),
        scopes=parse_scopes(scope),
        **kw,
    )


def guard(service: RecordService, c: Caller) -> CallerGuard:
    return CallerGuard(c, DEFAULT_POLICY, ConsentIndex(service))


def org(inst: str) -> dict[str, str]:
    return {"reference": f"Organization/{inst}"}


def order(patient: str, requester: str, performer: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": patient},
        "requester": org(requester),
        "performer": [org(performer)],
    }


def patient(service: RecordService, inst: str) -> str:
    saved = service.create(
        "Patient", {"resourceType": "Patient"}, guard=guard(service, caller(inst))
    )
    return f"Patient/{saved.version.rid}"


def member_observation(service: RecordService) -> tuple[str, dict[str, Any], str]:
    """A patient of MEMBER and one Observation of theirs: (patient ref, body, id)."""
    pm = patient(service, M)
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Hb"},
        "subject": {"reference": pm},
    }
    rid = service.create("Observation", obs, guard=guard(service, caller(M))).version.rid
    return pm, obs, rid


def test_own_records_readable_others_refused_with_reason(service: RecordService) -> None:
    _pm, _obs, rid = member_observation(service)
    assert service.read("Observation", rid, guard=guard(service, caller(M))).resource["id"] == rid
    with pytest.raises(PermissionDenied) as err:
        service.read("Observation", rid, guard=guard(service, caller(C)))
    assert M in err.value.message
    assert "sharing rule" in err.value.message
    page = service.search("Observation", [("_total", "accurate")], guard=guard(service, caller(C)))
    assert page.resources == []
    assert page.total == 0


def test_referral_shared_with_both_ends_not_with_third(service: RecordService) -> None:
    pm = patient(service, M)
    sr = service.create("ServiceRequest", order(pm, M, C), guard=guard(service, caller(M)))
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "CT"},
        "subject": {"reference": pm},
        "basedOn": [{"reference": f"ServiceRequest/{sr.version.rid}"}],
    }
    g_c = guard(service, caller(C))
    service.read("ServiceRequest", sr.version.rid, guard=g_c)  # performer reads the order
    assert any(b.startswith("sharing:") for b in g_c.bases)
    dr = service.create("DiagnosticReport", report, guard=guard(service, caller(C)))
    # The report inherits the order's parties: the requesting hospital reads it.
    service.read("DiagnosticReport", dr.version.rid, guard=guard(service, caller(M)))
    page = service.search(
        "DiagnosticReport", [("_total", "accurate")], guard=guard(service, caller(M))
    )
    assert page.total == 1
    for rtype, rid in (("ServiceRequest", sr.version.rid), ("DiagnosticReport", dr.version.rid)):
        with pytest.raises(PermissionDenied):
            service.read(rtype, rid, guard=guard(service, caller(X)))
    # The performer may update the order's status (rule referral-order-status) and the
    # order stays the requester's; the report it wrote stays its own: M may not change it.
    service.update(
        "ServiceRequest",
        sr.version.rid,
        {**order(pm, M, C), "status": "completed"},
        guard=guard(service, caller(C)),
    )
    facts = service.store.facts("ServiceRequest", sr.version.rid)
    assert facts is not None
    assert facts.owner == M
    with pytest.raises(PermissionDenied):
        service.update("DiagnosticReport", dr.version.rid, report, guard=guard(service, caller(M)))


def consent(pm: str, actor: str, **provision: Any) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": provision.pop("status", "active"),
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"code": "59284-0"}]}],
        "patient": {"reference": pm},
        "provision": {
            "type": "permit",
            "actor": [{"role": {"text": "x"}, "reference": org(actor)}],
            **provision,
        },
    }


def test_consent_admits_actor_for_purpose_and_period(service: RecordService) -> None:
    pm, _obs, rid = member_observation(service)
    with pytest.raises(PermissionDenied):
        service.read("Observation", rid, guard=guard(service, caller(X)))
    body = consent(
        pm, X, purpose=[{"code": "TREAT"}], period={"start": "2020-01-01", "end": "2099-01-01"}
    )
    cid = service.create("Consent", body, guard=guard(service, caller(M))).version.rid
    g = guard(service, caller(X))
    service.read("Observation", rid, guard=g)
    assert "consent" in g.bases
    assert service.search("Observation", [], guard=guard(service, caller(X))).resources
    # Another purpose is not covered.
    with pytest.raises(PermissionDenied):
        service.read("Observation", rid, guard=guard(service, caller(X, purpose="HRESCH")))
    # Revoking the consent (status inactive) takes effect on the next request.
    service.update("Consent", cid, {**body, "status": "inactive"}, guard=guard(service, caller(M)))
    with pytest.raises(PermissionDenied):
        service.read("Observation", rid, guard=guard(service, caller(X)))


def test_consent_expired_or_by_non_owner_does_not_admit(service: RecordService) -> None:
    pm, _obs, rid = member_observation(service)
    service.create(
        "Consent", consent(pm, X, period={"end": "2001-01-01"}), guard=guard(service, caller(M))
    )
    with pytest.raises(PermissionDenied):
        service.read("Observation", rid, guard=guard(service, caller(X)))
    # X records a Consent for M's patient granting itself: it admits nothing of M's.
    service.create("Consent", consent(pm, X), guard=guard(service, caller(X)))
    with pytest.raises(PermissionDenied):
        service.read("Observation", rid, guard=guard(service, caller(X)))


def test_break_glass_reads_but_never_writes(service: RecordService) -> None:
    _pm, obs, rid = member_observation(service)
    g = guard(service, caller(X, break_glass="patient unconscious in ED"))
    service.read("Observation", rid, guard=g)
    assert g.bases == {"break-glass"}
    assert service.search(
        "Observation", [], guard=guard(service, caller(X, break_glass="ED emergency"))
    ).resources
    with pytest.raises(PermissionDenied):
        service.update(
            "Observation", rid, obs, guard=guard(service, caller(X, break_glass="ED emergency"))
        )


def test_scopes_narrow_roles(service: RecordService) -> None:
    g = guard(service, caller(M, scope="user/Observation.rs"))
    with pytest.raises(PermissionDenied) as err:
        service.create(
            "Observation",
            {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
            guard=g,
        )
    assert err.value.details["field"] == "scope"
    with pytest.raises(PermissionDenied):
        service.search("Patient", [], guard=g)
    # A role without the capability: an auditor reads no clinical data at all.
    with pytest.raises(PermissionDenied):
        service.search("Observation", [], guard=guard(service, caller(M, Role.AUDITOR)))


def test_conditional_create_never_returns_another_institutions_record(
    service: RecordService,
) -> None:
    body = {
        "resourceType": "Specimen",
        "identifier": [{"system": "urn:lis", "value": "BC-1"}],
        "request": [],
    }
    body.pop("request")
    a = service.create(
        "Specimen", body, if_none_exist="identifier=urn:lis|BC-1", guard=guard(service, caller(M))
    )
    b = service.create(
        "Specimen", body, if_none_exist="identifier=urn:lis|BC-1", guard=guard(service, caller(X))
    )
    assert a.created
    assert b.created
    assert a.version.rid != b.version.rid
    again = service.create(
        "Specimen", body, if_none_exist="identifier=urn:lis|BC-1", guard=guard(service, caller(M))
    )
    assert not again.created
    assert again.version.rid == a.version.rid


def test_policy_file_errors_name_the_field() -> None:
    with pytest.raises(InputError) as err:
        parse_policy(
            {
                "version": 1,
                "rules": [
                    {"name": "r", "resources": ["Nope"], "parties": ["*"], "actions": ["read"]}
                ],
            },
            "t",
        )
    assert err.value.details["field"] == "rules[0].resources"
    with pytest.raises(InputError) as err:
        parse_policy(
            {
                "version": 1,
                "rules": [
                    {"name": "r", "resources": ["Patient"], "parties": ["*"], "actions": ["delete"]}
                ],
            },
            "t",
        )
    assert err.value.details["field"] == "rules[0].actions"


# -- SQL and Python agree ---------------------------------------------------------------------

INSTS = (M, C, X)
ROLES = ("requester", "performer", "custodian")
CATS = ("LAB", "RAD")


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[dict[str, Any]], Visibility]:
    records = []
    for _ in range(draw(st.integers(1, 6))):
        records.append(
            {
                "owner": draw(st.sampled_from(INSTS)),
                "requester": draw(st.sampled_from((None, *INSTS))),
                "performer": draw(st.sampled_from((None, *INSTS))),
                "category": draw(st.sampled_from((None, *CATS))),
                "patient": draw(st.integers(0, 2)),
            }
        )
    shared = tuple(
        Shared(
            frozenset(draw(st.sets(st.sampled_from((*ROLES, "*")), min_size=1))),
            frozenset(draw(st.sets(st.sampled_from(CATS)))),
            f"r{i}",
        )
        for i in range(draw(st.integers(1, 2)))
    )
    vis = Visibility(
        owners=frozenset(draw(st.sets(st.sampled_from(INSTS), max_size=2))),
        member=draw(st.sampled_from(INSTS)),
        shared=shared,
    )
    return records, vis


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(world=worlds())
def test_search_clause_and_single_record_check_agree(
    tmp_path_factory: pytest.TempPathFactory, world: tuple[list[dict[str, Any]], Visibility]
) -> None:
    records, vis = world
    node = LedgerNode.init(tmp_path_factory.mktemp("v") / "d", node=C, block_max_wait_ms=1)
    try:
        svc = RecordService.open(node)
        rids = []
        for r in records:
            body: dict[str, Any] = {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": f"Patient/p{r['patient']}"},
            }
            if r["requester"]:
                body["requester"] = org(r["requester"])
            if r["performer"]:
                body["performer"] = [org(r["performer"])]
            if r["category"]:
                body["category"] = [{"coding": [{"code": r["category"]}]}]
            rids.append(
                svc.create("ServiceRequest", body, guard=guard(svc, caller(r["owner"]))).version.rid
            )
        subjects = {svc.indexer.patient_pseudonym(f"Patient/p{i}") for i in range(3)}
        consented = frozenset((s, o) for s in sorted(subjects)[:1] for o in INSTS[:2])
        vis = Visibility(vis.everything, vis.owners, vis.member, vis.shared, consented)
        found = svc.search("ServiceRequest", [("_count", "100")], visible=vis)
        by_sql = {r["id"] for r in found.resources}
        by_python = set()
        for rid in rids:
            facts = svc.store.facts("ServiceRequest", rid)
            assert facts is not None
            if vis.admits(facts):
                by_python.add(rid)
        assert by_sql == by_python
    finally:
        node.close()
