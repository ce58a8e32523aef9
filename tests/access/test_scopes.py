"""SMART scopes: golden cases from the SMART App Launch spec (v1 and v2 syntax), and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.access.scopes import (
    ACTIONS,
    CONTEXTS,
    Scope,
    allows,
    narrow,
    parse_scope,
    parse_scopes,
)
from medledger.errors import InputError

INTERACTIONS = ("create", "read", "update", "delete", "search")

# (scope, context, type, letters, query): examples from SMART App Launch 1.0 and 2.x, §Scopes
GOLDEN = [
    ("patient/Observation.read", "patient", "Observation", "rs", None),
    ("patient/*.read", "patient", "*", "rs", None),
    ("user/*.*", "user", "*", "cruds", None),
    ("user/Appointment.write", "user", "Appointment", "cud", None),
    ("user/*.write", "user", "*", "cud", None),
    ("system/DiagnosticReport.read", "system", "DiagnosticReport", "rs", None),
    ("system/*.read", "system", "*", "rs", None),
    ("patient/Observation.rs", "patient", "Observation", "rs", None),
    ("patient/*.cruds", "patient", "*", "cruds", None),
    ("user/Encounter.rs", "user", "Encounter", "rs", None),
    ("system/Observation.rs", "system", "Observation", "rs", None),
    ("patient/Observation.c", "patient", "Observation", "c", None),
    ("user/*.cud", "user", "*", "cud", None),
    ("system/Patient.d", "system", "Patient", "d", None),
    ("user/MedicationRequest.crus", "user", "MedicationRequest", "crus", None),
    (
        "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/"
        "observation-category|laboratory",
        "patient",
        "Observation",
        "rs",
        "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
    ),
    (
        "patient/Condition.rs?category=http://terminology.hl7.org/CodeSystem/"
        "condition-category|encounter-diagnosis",
        "patient",
        "Condition",
        "rs",
        "category=http://terminology.hl7.org/CodeSystem/condition-category|encounter-diagnosis",
    ),
]


@pytest.mark.parametrize(("text", "context", "rtype", "letters", "query"), GOLDEN)
def test_golden(text: str, context: str, rtype: str, letters: str, query: str | None) -> None:
    s = parse_scope(text)
    assert (s.context, s.resource_type, s.letters, s.query) == (
        context,
        rtype,
        frozenset(letters),
        query,
    )
    assert str(s) == text


@pytest.mark.parametrize(
    "text",
    [
        "openid",
        "fhirUser",
        "profile",
        "launch",
        "launch/patient",
        "launch/encounter",
        "offline_access",
        "online_access",
    ],
)
def test_non_resource_scopes_grant_nothing(text: str) -> None:
    s = parse_scope(text)
    assert s.context is None
    assert not allows([s], "read", "Observation", contexts=CONTEXTS)


def test_v1_equals_v2() -> None:
    """SMART 2.x: ``read`` is ``rs``, ``write`` is ``cud``, ``*`` is ``cruds``."""
    pairs = [("read", "rs"), ("write", "cud"), ("*", "cruds")]
    for v1, v2 in pairs:
        for action in ACTIONS:
            a = allows(f"user/Observation.{v1}", action, "Observation")
            b = allows(f"user/Observation.{v2}", action, "Observation")
            assert a == b, (v1, v2, action)


@pytest.mark.parametrize(
    "text",
    [
        "patient/Observation",
        "patient/Observation.",
        "patient/.read",
        "doctor/Observation.read",
        "Patient/Observation.read",
        "patient/observation.read",
        "patient/O.read",
        "patient/Observation.rw",
        "patient/Observation.sr",
        "patient/Observation.rr",
        "patient/Observation.readwrite",
        "patient/Observation.Read",
        "patient/Observation.crudsx",
        "patient/*.",
        "patient/**.read",
        "patient/Observation.read?category=x",
        "patient/Observation.rs?",
        "patient/Observation.rs?a=1?b=2",
        "user/Observation.rs\u00a0",
        'user/"Observation".rs',
        "user\\Observation.rs",
        "launch/other",
        "foo",
        "",
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_scope(text)
    err = info.value
    assert err.field == "scope"
    assert err.value == text
    assert err.expected
    assert "cruds" in err.expected


def test_parse_scopes_string() -> None:
    scopes = parse_scopes("  openid fhirUser\tuser/*.rs  user/*.rs system/Observation.c ")
    assert [s.text for s in scopes] == ["openid", "fhirUser", "user/*.rs", "system/Observation.c"]
    assert parse_scopes("") == ()
    assert parse_scopes(["user/*.rs"]) == (parse_scope("user/*.rs"),)
    with pytest.raises(InputError) as info:
        parse_scopes("user/*.rs user/*.bogus")
    assert info.value.value == "user/*.bogus"
    with pytest.raises(InputError):
        parse_scopes(" ".join(f"user/T{chr(97 + i // 26)}{chr(97 + i % 26)}.r" for i in range(101)))
    with pytest.raises(InputError):
        parse_scopes("x" * 5000)


def test_allows_examples() -> None:
    s = "system/DiagnosticReport.read user/*.write"
    assert allows(s, "read", "DiagnosticReport")
    assert allows(s, "search", "DiagnosticReport")
    assert not allows(s, "read", "Observation")
    assert allows(s, "create", "Observation")
    assert allows(s, "update", "Observation")
    assert allows(s, "delete", "Observation")
    assert allows(s, "write", "Observation")
    assert allows(s, "write", "DiagnosticReport")  # user/*.write covers every type
    # write needs c and u in one scope
    assert not allows("user/Observation.c", "write", "Observation")
    assert not allows("user/Observation.c user/Observation.u", "write", "Observation")
    assert allows("user/Observation.cu", "write", "Observation")
    # patient/ scopes count only where the caller enforces the patient compartment
    assert not allows("patient/*.read", "read", "Observation")
    assert allows("patient/*.read", "read", "Observation", contexts={"patient"})
    # granular scopes are kept but grant nothing without the resource
    assert not allows("user/Observation.rs?category=laboratory", "read", "Observation")
    assert allows([parse_scope("system/*.rs"), "system/Patient.d"], "delete", "Patient")


def test_unknown_action() -> None:
    with pytest.raises(InputError) as info:
        allows("user/*.cruds", "admin", "Observation")
    assert info.value.field == "action"
    with pytest.raises(InputError):
        narrow([("audit-read", "AuditEvent")], "user/*.rs")


def test_narrow_examples() -> None:
    role = [("read", "*"), ("search", "*"), ("write", "*")]
    assert narrow(role, "system/DiagnosticReport.read") == {
        ("read", "DiagnosticReport"),
        ("search", "DiagnosticReport"),
    }
    assert narrow([("read", "Observation")], "user/*.cruds") == {("read", "Observation")}
    assert narrow(role, "user/Observation.c") == {("create", "Observation")}
    assert narrow(role, "user/*.rs") == {("read", "*"), ("search", "*")}
    assert narrow([("delete", "Observation")], "user/*.rs") == frozenset()
    assert narrow(role, "openid patient/*.rs") == frozenset()


# -- properties ------------------------------------------------------------------------------------

TYPES = ("*", "Observation", "Patient", "DiagnosticReport")


@st.composite
def scope_text(draw: st.DrawFn) -> str:
    context = draw(st.sampled_from(CONTEXTS))
    rtype = draw(st.sampled_from(TYPES))
    if draw(st.booleans()):
        perms = draw(st.sampled_from(("read", "write", "*")))
    else:
        letters = draw(st.lists(st.sampled_from("cruds"), min_size=1, max_size=5, unique=True))
        perms = "".join(c for c in "cruds" if c in letters)
        if draw(st.integers(0, 9)) == 0:
            perms += "?category=laboratory"
    return f"{context}/{rtype}.{perms}"


scope_lists = st.lists(scope_text(), max_size=6)
contexts = st.sets(st.sampled_from(CONTEXTS))
actions = st.sampled_from(tuple(ACTIONS))
concrete_types = st.sampled_from(TYPES[1:])


@settings(max_examples=300)
@given(scopes=scope_lists, extra=scope_text(), action=actions, rtype=concrete_types, ctx=contexts)
def test_adding_a_scope_never_removes_permission(
    scopes: list[str], extra: str, action: str, rtype: str, ctx: set[str]
) -> None:
    if allows(scopes, action, rtype, contexts=ctx):
        assert allows([*scopes, extra], action, rtype, contexts=ctx)


@settings(max_examples=200)
@given(
    role=st.lists(st.tuples(st.sampled_from(INTERACTIONS), st.sampled_from(TYPES)), max_size=6),
    scopes=scope_lists,
    action=st.sampled_from(INTERACTIONS),
    rtype=concrete_types,
)
def test_narrow_is_the_intersection(
    role: list[tuple[str, str]], scopes: list[str], action: str, rtype: str
) -> None:
    """Effective permission = role permission ∩ scope, for every concrete resource type."""
    role_allows = any(a == action and t in ("*", rtype) for a, t in role)
    effective = narrow(role, scopes)
    narrowed = any(a == action and t in ("*", rtype) for a, t in effective)
    assert narrowed == (role_allows and allows(scopes, action, rtype))


@given(text=st.text(max_size=40))
def test_parse_never_crashes(text: str) -> None:
    error: InputError | None = None
    try:
        s: Scope | None = parse_scope(text)
    except InputError as e:
        s, error = None, e
    if error is not None:
        assert error.field == "scope"
    else:
        assert s is not None
        assert s.text == text
