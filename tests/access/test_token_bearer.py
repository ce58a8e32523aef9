"""TokenService.authenticate_bearer and revoke: attacks, and changes that take effect at once."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from medledger.access.model import PrincipalKind, Role
from medledger.access.tokens import NodeTokenKey, TokenPolicy, issue_access_token
from medledger.errors import MedLedgerError, TokenInvalid
from tests.access._token_fixtures import URL, World, world

USER, CLIENT = PrincipalKind.USER, PrincipalKind.CLIENT


@pytest.fixture(params=["intl-v1", "sm-v1"])
def w(request: pytest.FixtureRequest, tmp_path: Path, db_url: str | None) -> Iterator[World]:
    """Both node suites on both databases."""
    with world(tmp_path, db_url, request.param) as built:
        yield built


@pytest.fixture
def w1(tmp_path: Path, db_url: str | None) -> Iterator[World]:
    """intl-v1 on both databases."""
    with world(tmp_path, db_url) as built:
        yield built


def refused(w: World, token: Any, reason: str) -> None:
    """Assert the bearer is refused with ``reason`` (401) and the token is not in the error."""
    with pytest.raises(TokenInvalid) as info:
        w.bearer(token)
    assert info.value.reason == reason, info.value.message
    assert info.value.http_status == 401
    if isinstance(token, str) and len(token) > 40:
        assert token[-40:] not in json.dumps(info.value.to_dict())


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- attacks on the token ------------------------------------------------------------------------


def test_tampered_tokens_are_refused(w: World) -> None:
    """A flipped signature byte, forged claims or alg none never authenticate."""
    token = w.password()["access_token"]
    head, body, sig = token.split(".")
    raw = bytearray(unb64(sig))
    raw[5] ^= 1
    refused(w, f"{head}.{body}.{b64(bytes(raw))}", "bad-signature")
    claims = json.loads(unb64(body))
    forged = b64(json.dumps({**claims, "roles": ["group_admin"]}).encode())
    refused(w, f"{head}.{forged}.{sig}", "bad-signature")
    none = b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    refused(w, f"{none}.{body}.", "alg-not-allowed")
    refused(w, "garbage", "malformed")


def test_another_nodes_key_and_chain_are_refused(w: World) -> None:
    """A token signed by another key, or issued for another chain, is refused."""
    suite = w.node.suite
    other = NodeTokenKey.signing(suite, suite.generate_signing_key())
    policy = w.service.policy
    args: dict[str, Any] = {
        "subject": "root",
        "institution": "hosp-a",
        "roles": ["group_admin"],
        "scope": "",
        "now": w.clock.now,
    }
    refused(w, issue_access_token(other, policy, **args).access_token, "wrong-key")
    foreign = TokenPolicy(issuer="another-chain", audience="another-chain")
    refused(w, issue_access_token(w.service.key, foreign, **args).access_token, "wrong-issuer")


def test_expiry(w1: World) -> None:
    """An access token works for its 10 minutes (plus 30 s leeway) and not after."""
    token = w1.password()["access_token"]
    w1.clock.now += 600 + 29
    assert w1.bearer(token).principal == "dr.li"
    w1.clock.now += 1
    refused(w1, token, "expired")


# -- changes that take effect on the very next request ------------------------------------------


def test_revoked_access_token_is_refused_at_once(w: World) -> None:
    """RFC 7009: after revoke, the next authenticate_bearer refuses the token."""
    answer = w.password()
    token = answer["access_token"]
    assert w.bearer(token).principal == "dr.li"
    w.service.revoke({"token": token, "token_type_hint": "access_token"}, None)
    refused(w, token, "revoked")
    assert w.refresh(answer["refresh_token"])["token_type"] == "Bearer"  # the sign-in lives on


def test_revoked_refresh_token_ends_the_sign_in(w1: World) -> None:
    """Revoking a refresh token (sign-out) revokes its family's access tokens too."""
    answer = w1.password()
    w1.service.revoke({"token": answer["refresh_token"]}, None)
    refused(w1, answer["access_token"], "revoked")
    with pytest.raises(MedLedgerError):
        w1.refresh(answer["refresh_token"])


def test_revoke_answers_the_same_for_anything(w1: World) -> None:
    """Unknown, malformed, expired and foreign tokens revoke nothing and raise nothing."""
    for token in ("A" * 43, "nope", "a.b.c", "日本", "x" * 5000, "é" * 43):
        w1.service.revoke({"token": token}, None)
    answer = w1.password()
    w1.service.revoke({"token": answer["access_token"]}, ("lis-01", w1.lis_secret))
    assert w1.bearer(answer["access_token"]).principal == "dr.li"  # not lis-01's token
    client_token = w1.client()["access_token"]
    w1.service.revoke({"token": client_token}, None)  # a client must authenticate to revoke
    assert w1.bearer(client_token).principal == "lis-01"
    w1.service.revoke({"token": client_token}, ("lis-01", w1.lis_secret))
    refused(w1, client_token, "revoked")
    with pytest.raises(MedLedgerError) as info:
        w1.service.revoke({"token": client_token}, ("lis-01", "wrong"))
    assert info.value.details["oauth_error"] == "invalid_client"
    with pytest.raises(MedLedgerError) as info:
        w1.service.revoke({}, None)
    assert info.value.details["oauth_error"] == "invalid_request"


def test_disabled_account_is_refused_at_once(w1: World) -> None:
    """Disabling a user or a client refuses its live tokens on the next request."""
    user_token = w1.password()["access_token"]
    client_token = w1.client()["access_token"]
    admin = w1.service.admin()
    admin.set_user_disabled("dr.li", True, "root")
    admin.set_client_disabled("lis-01", True, "root")
    refused(w1, user_token, "revoked")
    refused(w1, client_token, "revoked")


def test_revoked_grant_is_gone_at_once_and_a_new_one_never_added(w1: World) -> None:
    """Permissions are the current grants, intersected with the token's roles at issue."""
    token = w1.password()["access_token"]
    admin = w1.service.admin()
    admin.grant(USER, "dr.li", Role.CLINICIAN, "hosp-b", "root")  # same role, new scope
    admin.grant(USER, "dr.li", Role.INSTITUTION_ADMIN, "hosp-a", "root")  # a new role
    caller = w1.bearer(token)
    assert caller.roles == ("clinician",)
    assert {p.scope for p in caller.permissions} == {"hosp-a", "hosp-b"}
    assert not [p for p in caller.permissions if p.action.value == "admin"]
    admin.revoke(USER, "dr.li", Role.CLINICIAN, "own", "root")
    admin.revoke(USER, "dr.li", Role.CLINICIAN, "hosp-b", "root")
    caller = w1.bearer(token)
    assert caller.roles == ()
    assert caller.permissions == frozenset()


def test_a_deleted_principal_is_refused(w1: World) -> None:
    """A token whose subject no longer exists (or moved institution) is refused."""
    key, policy = w1.service.key, w1.service.policy
    ghost = issue_access_token(
        key, policy, subject="ghost", institution="hosp-a", roles=[], scope="", now=w1.clock.now
    )
    refused(w1, ghost.access_token, "revoked")
    moved = issue_access_token(
        key, policy, subject="dr.li", institution="hosp-b", roles=[], scope="", now=w1.clock.now
    )
    refused(w1, moved.access_token, "revoked")
    odd = issue_access_token(
        key,
        policy,
        subject="dr.li",
        institution="hosp-a",
        roles=[],
        scope="",
        now=w1.clock.now,
        client_id="lis-01",
    )
    refused(w1, odd.access_token, "malformed")


def test_bearer_purpose_and_break_glass_pass_through(w1: World) -> None:
    """The request's purpose of use and break-glass reason reach the Caller unchanged."""
    token = w1.password()["access_token"]
    caller = w1.service.authenticate_bearer(
        token, address="10.0.0.9", purpose="BTG", break_glass="patient unconscious"
    )
    assert (caller.address, caller.purpose, caller.break_glass) == (
        "10.0.0.9",
        "BTG",
        "patient unconscious",
    )


def test_bearer_costs_two_indexed_queries(w1: World) -> None:
    """authenticate_bearer runs exactly two SELECTs: revocation, then principal and grants."""
    token = w1.password()["access_token"]
    seen: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    engine = w1.node.store.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        w1.bearer(token)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(seen) == 2, seen
    assert "access_revoked_tokens" in seen[0]
    assert "access_revoked_families" in seen[0]
    assert "access_grants" in seen[1]


# -- concurrency -------------------------------------------------------------------------------


def test_twenty_concurrent_refreshes_exactly_one_wins(w1: World) -> None:
    """20 threads spend one refresh token at once: exactly one succeeds, and the family dies."""
    answer = w1.password()
    results: list[Any] = []
    barrier = threading.Barrier(20)

    def spend() -> None:
        barrier.wait()
        try:
            results.append(w1.refresh(answer["refresh_token"]))
        except MedLedgerError as exc:
            results.append(exc)

    threads = [threading.Thread(target=spend) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    wins = [r for r in results if isinstance(r, dict)]
    losses = [r for r in results if isinstance(r, MedLedgerError)]
    assert (len(wins), len(losses)) == (1, 19)
    assert {e.details["oauth_error"] for e in losses} == {"invalid_grant"}
    # the losers saw a replay: the sign-in is revoked, the winner's new tokens included
    refused(w1, wins[0]["access_token"], "revoked")
    with pytest.raises(MedLedgerError):
        w1.refresh(wins[0]["refresh_token"])


def test_prune_forgets_only_what_has_expired(w1: World) -> None:
    """Pruning removes expired revocations, refresh tokens and assertion ids, nothing live."""
    answer = w1.password()
    w1.service.revoke({"token": answer["access_token"]}, None)
    w1.service.handle(w1.assertion(), None, token_endpoint_url=URL)
    assert w1.service.prune() == 0
    w1.clock.now += 8 * 24 * 3600  # past the family's 7 days and every token's life
    assert w1.service.prune() == 3  # the revocation, the refresh token, the assertion id
    assert w1.service.prune() == 0
