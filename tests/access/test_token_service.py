"""TokenService.handle: every grant type, scopes, client authentication, lockout, error shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medledger.access.caller import PURPOSE_TREAT
from medledger.access.model import PrincipalKind, Role
from medledger.errors import (
    AccountLocked,
    AuthenticationFailed,
    MedLedgerError,
)
from tests.access._token_fixtures import PW, URL, World, sm2_assertion, world

USER, CLIENT = PrincipalKind.USER, PrincipalKind.CLIENT


@pytest.fixture(params=["intl-v1", "sm-v1"])
def w(request: pytest.FixtureRequest, tmp_path: Path, db_url: str | None) -> Iterator[World]:
    """Both node suites (EdDSA and SM2SM3 tokens) on both databases."""
    with world(tmp_path, db_url, request.param) as built:
        yield built


@pytest.fixture
def w1(tmp_path: Path, db_url: str | None) -> Iterator[World]:
    """One suite (intl-v1) on both databases, for what does not depend on the token alg."""
    with world(tmp_path, db_url) as built:
        yield built


def oauth(call: Any, *args: Any, **kw: Any) -> tuple[str, MedLedgerError]:
    """Run ``call``; return the OAuth error code it failed with, and the error."""
    with pytest.raises(MedLedgerError) as info:
        call(*args, **kw)
    err = info.value
    code = err.details.get("oauth_error")
    assert isinstance(code, str), err
    return code, err


# -- the grants --------------------------------------------------------------------------------


def test_password_grant_issues_a_token_and_a_refresh_token(w: World) -> None:
    """A person signs in: a Bearer token with the role's scopes and a refresh token."""
    answer = w.password()
    assert set(answer) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert (answer["token_type"], answer["expires_in"]) == ("Bearer", 600)
    assert answer["scope"].startswith("user/*.")
    caller = w.bearer(answer["access_token"])
    assert (caller.kind, caller.principal, caller.institution) == (USER, "dr.li", "hosp-a")
    assert caller.roles == ("clinician",)
    assert "read:*@hosp-a" in {str(p) for p in caller.permissions}
    assert [s.text for s in caller.scopes] == answer["scope"].split()
    assert (caller.client_id, caller.address, caller.purpose) == (None, "127.0.0.1", PURPOSE_TREAT)
    assert caller.token_id
    assert caller.break_glass is None
    [event] = w.events
    assert {k: event[k] for k in ("event", "outcome", "grant_type", "principal")} == {
        "event": "auth.token",
        "outcome": "success",
        "grant_type": "password",
        "principal": "dr.li",
    }


def test_client_credentials_with_a_secret(w: World) -> None:
    """HTTP Basic and client_secret_post both work; a client gets no refresh token."""
    basic = w.client(scope="system/Observation.rs")
    assert "refresh_token" not in basic
    assert basic["scope"] == "system/Observation.rs"
    post = w.service.handle(
        {"grant_type": "client_credentials", "client_id": "lis-01", "client_secret": w.lis_secret},
        None,
        token_endpoint_url=URL,
    )
    assert post["scope"] == "system/*.cruds"
    caller = w.bearer(basic["access_token"])
    assert (caller.kind, caller.principal, caller.client_id) == (CLIENT, "lis-01", "lis-01")
    assert caller.roles == ("integration",)


def test_client_credentials_with_a_private_key_jwt(w1: World) -> None:
    """private_key_jwt: accepted once; a replayed or mis-addressed assertion is invalid_client."""
    form = w1.assertion()
    caller = w1.bearer(w1.service.handle(form, None, token_endpoint_url=URL)["access_token"])
    assert caller.principal == "pacs-01"
    code, err = oauth(w1.service.handle, form, None, token_endpoint_url=URL)
    assert (code, err.http_status, err.message) == (
        "invalid_client",
        401,
        "invalid client credentials",
    )
    assert w1.events[-1]["reason"] == "assertion-replayed"
    wrong_aud = w1.assertion(jti="a-2", aud="https://other.example/auth/token")
    assert oauth(w1.service.handle, wrong_aud, None, token_endpoint_url=URL)[0] == "invalid_client"
    assert w1.events[-1]["reason"] == "assertion-wrong-audience"
    other_endpoint = w1.assertion(jti="a-3")
    code, _ = oauth(w1.service.handle, other_endpoint, None, token_endpoint_url=URL + "/x")
    assert code == "invalid_client"
    named = {**w1.assertion(jti="a-4"), "client_id": "lis-01"}  # claims to be another client
    assert oauth(w1.service.handle, named, None, token_endpoint_url=URL)[0] == "invalid_client"


def test_sm2_client_assertion(w1: World) -> None:
    """A client with a registered SM2 key signs its assertion with SM2SM3."""
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": sm2_assertion(w1.sm2_key, w1.clock.now),
    }
    answer = w1.service.handle(form, None, token_endpoint_url=URL)
    assert w1.bearer(answer["access_token"]).principal == "sm2-01"
    assert oauth(w1.service.handle, form, None, token_endpoint_url=URL)[0] == "invalid_client"


def test_refresh_rotates_and_a_replay_revokes_the_sign_in(w: World) -> None:
    """Each refresh token works once; replaying one kills the family, access tokens included."""
    first = w.password()
    second = w.refresh(first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == first["scope"]
    assert w.bearer(second["access_token"]).principal == "dr.li"
    code, _ = oauth(w.refresh, first["refresh_token"])  # a stolen copy is replayed
    assert code == "invalid_grant"
    assert w.events[-1]["reason"] == "replayed"
    assert oauth(w.refresh, second["refresh_token"])[0] == "invalid_grant"
    for answer in (first, second):
        with pytest.raises(MedLedgerError) as info:
            w.bearer(answer["access_token"])
        assert info.value.details["reason"] == "revoked"


def test_refresh_scope_may_narrow_never_widen(w1: World) -> None:
    """A refresh may ask for less than the sign-in got (RFC 6749 §6), never for more."""
    answer = w1.password(scope="user/Observation.rs offline_access")
    assert answer["scope"] == "user/Observation.rs offline_access"
    narrower = w1.refresh(answer["refresh_token"], scope="user/Observation.r")
    assert narrower["scope"] == "user/Observation.r"
    code, _ = oauth(w1.refresh, narrower["refresh_token"], scope="user/Patient.rs")
    assert code == "invalid_scope"


def test_refresh_after_a_role_was_revoked_drops_its_scopes(w1: World) -> None:
    """Scopes the account's roles no longer allow are not carried into the new token."""
    answer = w1.password("tech")
    w1.service.admin().revoke(USER, "tech", Role.TECHNICIAN, "own", "root")
    refreshed = w1.refresh(answer["refresh_token"])
    assert refreshed["scope"] == ""
    assert w1.bearer(refreshed["access_token"]).permissions == frozenset()


def test_refresh_of_a_disabled_user_fails_and_revokes(w1: World) -> None:
    """Disabling an account ends its sign-ins: refresh fails, and stays failed on re-enable."""
    answer = w1.password()
    admin = w1.service.admin()
    admin.set_user_disabled("dr.li", True, "root")
    assert oauth(w1.refresh, answer["refresh_token"])[0] == "invalid_grant"
    admin.set_user_disabled("dr.li", False, "root")
    assert oauth(w1.refresh, answer["refresh_token"])[0] == "invalid_grant"


# -- scopes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("tech", "user/DiagnosticReport.crus user/ImagingStudy.crus user/Observation.crus "
                 "user/ServiceRequest.rs user/Specimen.crus"),
        ("audi", "user/AuditEvent.rs"),
        ("eb", ""),
    ],
)  # fmt: skip
def test_default_scope_is_what_the_roles_allow(w1: World, user: str, expected: str) -> None:
    """With no scope requested the token gets exactly the roles' permissions, as scopes."""
    assert w1.password(user)["scope"] == expected


@pytest.mark.parametrize(
    "scope",
    [
        "user/*.rs",  # a technician may not read every type
        "user/AuditEvent.rs",
        "system/Observation.rs",  # a person asks for system scopes
        "patient/Observation.rs",  # no patient launch context here
        "user/Observation.rw",  # malformed
        "x" * 5000,
    ],
)
def test_scope_beyond_the_roles_is_invalid_scope(w1: World, scope: str) -> None:
    """A requested scope the technician's roles do not cover is refused as invalid_scope."""
    code, err = oauth(w1.password, "tech", scope=scope)
    assert (code, err.http_status) == ("invalid_scope", 400)


def test_identity_scopes_are_dropped_and_offline_access_kept(w1: World) -> None:
    """openid and fhirUser grant nothing here (no ID tokens); offline_access is kept."""
    answer = w1.password(scope="openid fhirUser user/Observation.rs offline_access")
    assert answer["scope"] == "user/Observation.rs offline_access"
    assert w1.client(scope="system/DiagnosticReport.read")["scope"] == (
        "system/DiagnosticReport.read"
    )
    assert oauth(w1.client, scope="user/*.rs")[0] == "invalid_scope"


# -- failures ----------------------------------------------------------------------------------


def test_password_failures_look_the_same(w1: World) -> None:
    """Unknown user, wrong password and disabled user: one answer, invalid_grant."""
    w1.service.admin().set_user_disabled("tech", True, "root")
    answers = set()
    for user, password in (("nobody", PW), ("dr.li", "wrong-password-00"), ("tech", PW)):
        code, err = oauth(w1.password, user, password)
        answers.add((code, err.http_status, err.message, type(err)))
    assert answers == {("invalid_grant", 401, "invalid username or password", AuthenticationFailed)}


def test_client_failures_look_the_same(w1: World) -> None:
    """Unknown client, wrong secret, disabled client, key-only client: one invalid_client."""
    w1.service.admin().set_client_disabled("lis-01", True, "root")
    answers = set()
    for client_id, secret in (
        ("ghost", "x"),
        ("lis-01", w1.lis_secret),
        ("pacs-01", "anything"),
    ):
        form = {"grant_type": "client_credentials"}
        code, err = oauth(w1.service.handle, form, (client_id, secret), token_endpoint_url=URL)
        answers.add((code, err.http_status, err.message))
    assert answers == {("invalid_client", 401, "invalid client credentials")}


@pytest.mark.parametrize(
    ("form", "basic", "code"),
    [
        ({}, None, "invalid_request"),
        ({"grant_type": "authorization_code"}, None, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, None, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "lis-01"}, None, "invalid_client"),
        ({"grant_type": "password", "username": "dr.li"}, None, "invalid_request"),
        ({"grant_type": "refresh_token"}, None, "invalid_request"),
        ({"grant_type": "password", "username": "dr.li", "password": PW}, ("a", "b"),
         "invalid_request"),  # people's grants take no client credentials
        ({"grant_type": "client_credentials", "client_secret": "s"}, ("lis-01", "s"),
         "invalid_request"),  # two methods at once
        ({"grant_type": "client_credentials", "client_secret": "s"}, None, "invalid_request"),
        ({"grant_type": "client_credentials", "client_assertion": "a.b.c",
          "client_assertion_type": "urn:x"}, None, "invalid_request"),
        ({"grant_type": "client_credentials", "client_assertion": "not-a-jwt",
          "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
         None, "invalid_client"),
    ],
)  # fmt: skip
def test_bad_requests(
    w1: World, form: dict[str, str], basic: tuple[str, str] | None, code: str
) -> None:
    """Each malformed request gets the RFC 6749 §5.2 error that fits it."""
    got, err = oauth(w1.service.handle, form, basic, token_endpoint_url=URL)
    assert got == code, err
    assert w1.events[-1]["outcome"] == "failure"


def test_lockout_after_five_failures(w1: World) -> None:
    """Five wrong passwords lock the account; even the right one is refused until it expires."""
    for _ in range(5):
        assert oauth(w1.password, "dr.li", "wrong-password-00")[0] == "invalid_grant"
    with pytest.raises(AccountLocked) as info:
        w1.password()
    err = info.value
    assert err.details["oauth_error"] == "invalid_grant"
    assert err.details["retry_after"] == 30
    assert "auth.lockout" in [e["event"] for e in w1.events]
    assert w1.events[-1]["reason"] == "locked"
    w1.clock.now += 31
    assert w1.password()["token_type"] == "Bearer"


def test_client_secret_lockout(w1: World) -> None:
    """A guessed client secret locks the client too (429 with invalid_client)."""
    form = {"grant_type": "client_credentials"}
    for _ in range(5):
        oauth(w1.service.handle, form, ("lis-01", "guess"), token_endpoint_url=URL)
    with pytest.raises(AccountLocked) as info:
        w1.client()
    assert info.value.details["oauth_error"] == "invalid_client"


def test_events_hold_no_secrets(w1: World) -> None:
    """Sign-in events carry ids only: never a password, a secret or a token."""
    answer = w1.password()
    w1.refresh(answer["refresh_token"])
    oauth(w1.password, "dr.li", "wrong-password-00")
    oauth(w1.password, "a-good-password-42", "x")  # a password typed as the user name
    w1.client()
    text = json.dumps(w1.events)
    for secret in (PW, "wrong-password-00", w1.lis_secret, answer["refresh_token"]):
        assert secret not in text
    assert answer["access_token"][-40:] not in text
    assert [e["principal"] for e in w1.events] == [
        "dr.li",
        "dr.li",
        "dr.li",
        "(unknown account)",  # never echo a name that is no account: it may be a password
        "lis-01",
    ]


def test_overlong_user_name_is_just_a_failed_sign_in(w1: World) -> None:
    """A user name longer than any column is an ordinary invalid_grant, not a storage error."""
    assert oauth(w1.password, "x" * 300, "p")[0] == "invalid_grant"
