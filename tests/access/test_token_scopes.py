"""Which scopes a token may carry: defaults from the roles, checks, refresh narrowing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.access.model import Role
from medledger.access.permissions import resolve
from medledger.access.scopes import allows, parse_scopes
from medledger.access.token_scopes import (
    check_scope,
    check_subset,
    default_scope,
    interactions,
    still_allowed,
)
from medledger.errors import InputError

TECH = resolve(Role.TECHNICIAN, "hosp-a")
CLIN = resolve(Role.CLINICIAN, "hosp-a")
AUDITOR = resolve(Role.AUDITOR, "hosp-a")
ADMIN = resolve(Role.INSTITUTION_ADMIN, "hosp-a")


def refused(call: object, *args: object) -> InputError:
    with pytest.raises(InputError) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.details["oauth_error"] == "invalid_scope"
    assert info.value.field == "scope"
    return info.value


def test_defaults_follow_the_roles() -> None:
    """The default scope is exactly what the roles allow, in SMART v2 letters."""
    assert default_scope(TECH, "system").split() == [
        "system/DiagnosticReport.crus",
        "system/ImagingStudy.crus",
        "system/Observation.crus",
        "system/ServiceRequest.rs",
        "system/Specimen.crus",
    ]
    assert default_scope(AUDITOR, "user") == "user/AuditEvent.rs"
    assert default_scope(ADMIN, "user") == ""
    both = default_scope(CLIN | TECH, "user")
    assert both.split()[0].startswith("user/*.")
    assert "user/Specimen" not in both  # covered by user/*


def test_check_scope() -> None:
    """Requests within the roles pass (normalized); beyond them, or another context, do not."""
    got = check_scope(
        "user/Observation.rs  openid user/Observation.rs offline_access", TECH, "user"
    )
    assert got == "user/Observation.rs offline_access"
    assert check_scope("user/Specimen.cu?x=1", TECH, "user") == "user/Specimen.cu?x=1"
    assert check_scope("user/AuditEvent.read", AUDITOR, "user") == "user/AuditEvent.read"
    for bad in ("user/Patient.r", "user/*.r", "user/Specimen.d", "system/Specimen.r"):
        refused(check_scope, bad, TECH, "user")
    refused(check_scope, "user/AuditEvent.rs", CLIN, "user")  # * never reaches AuditEvent
    refused(check_scope, "user/Observation.rs", ADMIN, "user")
    err = refused(check_scope, "user/Patient.r", TECH, "user")
    assert "user/Specimen.crus" in err.message  # the message says what the roles allow


def test_refresh_subset_and_still_allowed() -> None:
    """A refresh may narrow its sign-in's scope; scopes the roles lost are dropped."""
    check_subset("user/Observation.rs", "user/*.cruds offline_access")
    check_subset("offline_access openid", "user/*.rs offline_access")
    check_subset("user/Observation.rs?category=lab", "user/Observation.rs")
    refused(check_subset, "user/Observation.c", "user/*.rs")
    refused(check_subset, "offline_access", "user/*.rs")
    refused(check_subset, "user/Observation.rs", "user/Observation.rs?category=lab")
    assert still_allowed("user/*.rs user/Specimen.rs offline_access", TECH, "user") == (
        "user/Specimen.rs offline_access"
    )


_TYPES = ["*", "Observation", "Specimen", "Patient", "AuditEvent", "ServiceRequest"]
_SCOPES = st.builds(
    lambda ctx, t, perms: f"{ctx}/{t}.{perms}",
    st.sampled_from(["user", "system"]),
    st.sampled_from(_TYPES),
    st.sampled_from(["r", "rs", "cu", "cruds", "d", "s", "read", "write", "*"]),
)
_ROLES = st.sets(st.sampled_from(list(Role)), max_size=3)


@given(scopes=st.lists(_SCOPES, min_size=1, max_size=4), roles=_ROLES)
def test_an_accepted_scope_never_exceeds_the_roles(scopes: list[str], roles: set[Role]) -> None:
    """Whatever check_scope accepts allows no interaction the roles do not allow."""
    perms = frozenset().union(*(resolve(r, "*" if r is Role.GROUP_ADMIN else "h") for r in roles))
    try:
        granted = check_scope(" ".join(scopes), perms, "user")
    except InputError:
        return
    pairs = interactions(perms)
    for action in ("create", "read", "update", "delete", "search"):
        for rtype in _TYPES[1:]:
            if allows(parse_scopes(granted), action, rtype):
                role_action = "write" if action in ("create", "update") else action
                assert (role_action, rtype) in pairs or (
                    (role_action, "*") in pairs and rtype != "AuditEvent"
                ), (granted, action, rtype)
