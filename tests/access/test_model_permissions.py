"""Roles, permissions and the delegation rule "admins may only assign what they hold"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.access.model import (
    ANY,
    AUDIT_RESOURCE,
    CLINICAL_ROLES,
    OWN,
    ROLE_PERMISSIONS,
    Action,
    Permission,
    Role,
    check_separation,
    parse_role,
)
from medledger.access.permissions import (
    allows,
    check_grant,
    covers,
    effective_permissions,
    first_uncovered,
    grant_scope,
    resolve,
)
from medledger.errors import InputError, PermissionDenied, StateError

INSTITUTIONS = ("hosp-central", "hosp-east", "hosp-west")
TYPES = ("Observation", "Patient", "ServiceRequest", "Specimen")
CLINICAL_ACTIONS = (Action.READ, Action.WRITE, Action.DELETE, Action.SEARCH)

# The universe the oracle expands symbolic permissions over. "Other" stands for every type
# or institution not named: only "*" reaches it.
U_TYPES = (*TYPES, "OtherType")
U_INSTS = (*INSTITUTIONS, "hosp-other")


def _expand(p: Permission) -> set[tuple[Action, str, str]]:
    """The concrete (action, type, institution) cells a permission may delegate."""
    actions = list(Action) if p.action is Action.ADMIN else [p.action]
    types = (*U_TYPES, AUDIT_RESOURCE) if p.resource == ANY else (p.resource,)
    insts = U_INSTS if p.scope == ANY else (p.scope,)
    return {(a, t, i) for a in actions for t in types for i in insts}


def _valid(action: Action, resource: str) -> bool:
    return (action is Action.AUDIT_READ) == (resource == AUDIT_RESOURCE)


permissions = st.builds(
    lambda a, r, s: Permission(a, r, s),
    st.sampled_from(list(Action)),
    st.sampled_from((*TYPES, ANY, AUDIT_RESOURCE)),
    st.sampled_from((*INSTITUTIONS, ANY)),
).filter(lambda p: _valid(p.action, p.resource) or p.resource == ANY)


def test_exactly_the_six_roles() -> None:
    """The role enum holds exactly the roles of DESIGN §6, each with a permission row."""
    assert {r.value for r in Role} == {
        "group_admin",
        "institution_admin",
        "clinician",
        "technician",
        "integration",
        "auditor",
    }
    assert set(ROLE_PERMISSIONS) == set(Role)


def test_auditor_reads_the_audit_trail_and_nothing_else() -> None:
    """auditor: audit-read on AuditEvent, no clinical read, search, write or delete."""
    perms = resolve(Role.AUDITOR, "hosp-east")
    assert perms == {Permission(Action.AUDIT_READ, AUDIT_RESOURCE, "hosp-east")}
    assert allows(perms, Action.READ, AUDIT_RESOURCE, "hosp-east")
    for action in CLINICAL_ACTIONS:
        assert not allows(perms, action, "Observation", "hosp-east")


@pytest.mark.parametrize("role", list(Role))
def test_no_role_mixes_audit_read_and_clinical_read(role: Role) -> None:
    """No role's permissions allow both the audit trail and clinical content."""
    perms = resolve(role, "hosp-east") if role is not Role.GROUP_ADMIN else resolve(role, ANY)
    audit = allows(perms, Action.AUDIT_READ, AUDIT_RESOURCE, "hosp-east")
    clinical = any(allows(perms, a, t, "hosp-east") for a in CLINICAL_ACTIONS for t in TYPES)
    assert not (audit and clinical), role


@given(st.sets(st.sampled_from(list(Role))))
def test_no_allowed_role_combination_reads_both(roles: set[Role]) -> None:
    """Any combination a user may hold never reads both audit trail and clinical content."""
    try:
        check_separation(roles, "u")
    except StateError:
        assert Role.AUDITOR in roles
        assert roles & CLINICAL_ROLES
        return
    perms = frozenset().union(*(resolve(r, ANY) for r in roles)) if roles else frozenset()
    audit = allows(perms, Action.AUDIT_READ, AUDIT_RESOURCE, "hosp-east")
    clinical = any(
        allows(perms, a, t, "hosp-east") for a in (Action.READ, Action.SEARCH) for t in TYPES
    )
    assert not (audit and clinical)


def test_role_table_as_documented() -> None:
    """clinician reads/searches/writes/deletes own; technician writes lab types and reads orders."""
    clin = resolve(Role.CLINICIAN, "hosp-east")
    assert allows(clin, Action.WRITE, "Observation", "hosp-east")
    assert not allows(clin, Action.READ, "Observation", "hosp-west")
    assert allows(clin, Action.DELETE, "Observation", "hosp-east")  # a tombstone; history stays
    assert not allows(clin, Action.DELETE, "Observation", "hosp-west")
    tech = resolve(Role.TECHNICIAN, "hosp-east")
    for t in ("Specimen", "Observation", "DiagnosticReport", "ImagingStudy"):
        assert allows(tech, Action.WRITE, t, "hosp-east")
    assert allows(tech, Action.READ, "ServiceRequest", "hosp-east")
    assert not allows(tech, Action.WRITE, "ServiceRequest", "hosp-east")
    assert not allows(tech, Action.READ, "Patient", "hosp-east")
    admin = resolve(Role.INSTITUTION_ADMIN, "hosp-east")
    assert allows(admin, Action.ADMIN, "*", "hosp-east")
    assert not allows(admin, Action.READ, "Observation", "hosp-east")  # admin is not data access
    assert resolve(Role.GROUP_ADMIN, ANY) == {Permission(Action.ADMIN, ANY, ANY)}


def test_audit_events_are_never_written_through_a_role() -> None:
    """Even a wildcard clinical permission neither reads nor writes AuditEvent."""
    perms = {Permission(a, ANY, ANY) for a in CLINICAL_ACTIONS}
    for action in (*CLINICAL_ACTIONS, Action.AUDIT_READ):
        assert not allows(perms, action, AUDIT_RESOURCE, "hosp-east")
    assert not allows(
        {Permission(Action.AUDIT_READ, AUDIT_RESOURCE, ANY)}, Action.AUDIT_READ, "Patient", "x1"
    )


@given(permissions)
def test_permission_text_round_trips(p: Permission) -> None:
    """str() and parse() are inverse for every valid permission."""
    if not _valid(p.action, p.resource):
        with pytest.raises(InputError):
            Permission.parse(str(p))
        return
    assert Permission.parse(str(p)) == p


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("read-Observation", "permission"),
        ("fly:Observation@own", "permission.action"),
        ("read:observation@own", "permission.resource"),
        ("read:Observation@Hosp_A", "permission.scope"),
        ("audit-read:Observation@own", "permission"),
        ("read:AuditEvent@own", "permission"),
    ],
)
def test_bad_permission_names_the_field(text: str, field: str) -> None:
    """A malformed permission raises InputError naming the part that is wrong."""
    with pytest.raises(InputError) as info:
        Permission.parse(text)
    assert info.value.field == field


@given(st.sets(permissions, max_size=5), st.sets(permissions, min_size=1, max_size=3))
def test_grant_allowed_iff_held_permissions_cover_it(
    held: set[Permission], wanted: set[Permission]
) -> None:
    """first_uncovered agrees with a set-semantics oracle over a finite universe."""
    have: set[tuple[Action, str, str]] = set().union(*(_expand(h) for h in held)) if held else set()
    oracle = all(_expand(w) <= have for w in wanted)
    assert (first_uncovered(held, wanted) is None) == oracle


@given(st.sets(permissions, max_size=5), permissions, st.sampled_from(INSTITUTIONS))
def test_check_grant_needs_admin_over_the_grantee(
    held: set[Permission], wanted: Permission, home: str
) -> None:
    """check_grant passes iff the granter administers the grantee and covers the grant."""
    admin = any(h.action is Action.ADMIN and h.scope in (ANY, home) for h in held)
    ok = admin and first_uncovered(held, {wanted}) is None
    if ok:
        check_grant(held, {wanted}, institution=home, who="a")
    else:
        with pytest.raises(PermissionDenied):
            check_grant(held, {wanted}, institution=home, who="a")


def test_institution_admin_grants_within_own_institution_only() -> None:
    """An institution admin may grant clinician at home, not elsewhere or group-wide."""
    held = resolve(Role.INSTITUTION_ADMIN, "hosp-east")
    check_grant(held, resolve(Role.CLINICIAN, "hosp-east"), institution="hosp-east", who="ea")
    check_grant(held, resolve(Role.AUDITOR, "hosp-east"), institution="hosp-east", who="ea")
    for scope in ("hosp-west", ANY):
        with pytest.raises(PermissionDenied) as info:
            check_grant(held, resolve(Role.CLINICIAN, scope), institution="hosp-east", who="ea")
        assert "admins may only assign what they hold" in info.value.message
    with pytest.raises(PermissionDenied):
        check_grant(held, resolve(Role.GROUP_ADMIN, ANY), institution="hosp-east", who="ea")
    with pytest.raises(PermissionDenied):  # no admin over the grantee's institution
        check_grant(held, resolve(Role.CLINICIAN, "hosp-east"), institution="hosp-west", who="ea")


def test_a_clinician_is_not_an_admin() -> None:
    """Holding clinical permissions is not enough to grant them: admin over the grantee is."""
    held = resolve(Role.CLINICIAN, "hosp-east")
    with pytest.raises(PermissionDenied):
        check_grant(held, resolve(Role.CLINICIAN, "hosp-east"), institution="hosp-east", who="c")


def test_grant_scope_resolves_own_and_pins_group_admin() -> None:
    """own becomes the holder's institution; group_admin exists only group-wide."""
    assert grant_scope(Role.CLINICIAN, OWN, "hosp-east") == "hosp-east"
    assert grant_scope(Role.CLINICIAN, ANY, "hosp-east") == ANY
    assert grant_scope(Role.GROUP_ADMIN, ANY, "hosp-east") == ANY
    with pytest.raises(InputError) as info:
        grant_scope(Role.GROUP_ADMIN, OWN, "hosp-east")
    assert info.value.field == "scope"
    with pytest.raises(InputError):
        grant_scope(Role.CLINICIAN, "../etc", "hosp-east")


def test_covers_refuses_unresolved_scopes() -> None:
    """covers compares concrete permissions only: own must be resolved first."""
    with pytest.raises(ValueError, match="concrete"):
        covers(Permission(Action.READ, ANY, OWN), Permission(Action.READ, ANY, "hosp-east"))


def test_separation_of_duties_and_role_parsing() -> None:
    """auditor beside a clinical role is refused; unknown role names list the roles."""
    check_separation({Role.AUDITOR, Role.INSTITUTION_ADMIN}, "u")
    with pytest.raises(StateError, match="separation of duties"):
        check_separation({Role.AUDITOR, Role.TECHNICIAN}, "u")
    with pytest.raises(InputError) as info:
        parse_role("superuser")
    assert "clinician" in str(info.value.expected)


def test_effective_permissions_union_of_grants() -> None:
    """A user's permissions are the union of their grants, each at its own scope."""
    from medledger.access.model import Grant

    grants = [
        Grant(Role.CLINICIAN, "hosp-east", "a", "t"),
        Grant(Role.CLINICIAN, "hosp-west", "a", "t"),
    ]
    perms = effective_permissions(grants)
    assert allows(perms, Action.READ, "Patient", "hosp-west")
    assert not allows(perms, Action.READ, "Patient", "hosp-central")
