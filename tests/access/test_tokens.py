"""Access tokens, refresh rotation and client assertions, including the attacks of issue 4."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwk, jws, jwt

from medledger.access.assertions import MemorySeenJtis, verify_client_assertion
from medledger.access.jose_sm2 import ClientAssertionRegistry, alg_for
from medledger.access.refresh import (
    MemoryRefreshStore,
    RefreshPolicy,
    revoke_refresh_token,
    rotate_refresh_token,
    start_refresh_family,
)
from medledger.access.tokens import (
    MAX_LEEWAY,
    MemoryRevocations,
    NodeTokenKey,
    TokenPolicy,
    issue_access_token,
    revoke_access_token,
    verify_access_token,
)
from medledger.crypto import get_suite
from medledger.crypto.sm import N as SM2_N
from medledger.errors import InputError, TokenInvalid

NOW = 1_800_000_000
CHAIN = "chain-a"
POLICY = TokenPolicy(issuer=CHAIN, audience=CHAIN)
SUITES = ("intl-v1", "sm-v1")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module", params=SUITES)
def node(request: pytest.FixtureRequest) -> NodeTokenKey:
    suite = get_suite(request.param)
    return NodeTokenKey.signing(suite, suite.generate_signing_key())


@pytest.fixture(scope="module")
def keys() -> dict[str, NodeTokenKey]:
    out = {}
    for name in SUITES:
        suite = get_suite(name)
        out[name] = NodeTokenKey.signing(suite, suite.generate_signing_key())
    return out


def issue(node: NodeTokenKey, policy: TokenPolicy = POLICY, **kw: Any) -> str:
    args: dict[str, Any] = {
        "subject": "dr.wang",
        "institution": "hosp-a",
        "roles": ["clinician"],
        "scope": "user/*.rs system/Observation.read",
        "now": NOW,
    }
    args.update(kw)
    return issue_access_token(node, policy, **args).access_token


def verify(token: Any, node: NodeTokenKey, **kw: Any) -> Any:
    args: dict[str, Any] = {"policy": POLICY, "revocations": MemoryRevocations(), "now": NOW}
    args.update(kw)
    return verify_access_token(token, key=node, **args)


def refused(reason: str, call: Callable[..., Any], *args: Any, **kw: Any) -> TokenInvalid:
    """Assert ``call`` raises TokenInvalid with ``reason`` and that no token leaks into it."""
    with pytest.raises(TokenInvalid) as info:
        call(*args, **kw)
    err = info.value
    assert err.reason == reason, (err.reason, err.message)
    assert err.http_status == 401
    assert err.exit_code == 1
    shown = str(err) + json.dumps(err.to_dict()) + repr(err.details)
    for value in (*args, *kw.values()):
        if isinstance(value, str) and len(value) > 40:
            assert value not in shown
            assert value[-40:] not in shown  # not even the signature part
    return err


def craft(header: dict[str, Any], claims: Any, sign: Callable[[bytes], bytes] | None) -> str:
    """A hand-made compact JWS: any header, any claims, any (or no) signature."""
    body = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(body)}".encode()
    sig = sign(signing_input) if sign else b""
    return signing_input.decode() + "." + b64(sig)


def hs256(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, hashlib.sha256).digest()


def node_signer(node: NodeTokenKey) -> Callable[[bytes], bytes]:
    assert node.signing_key is not None
    return node.signing_key.sign


def good_claims(**kw: Any) -> dict[str, Any]:
    claims = {
        "iss": CHAIN,
        "sub": "dr.wang",
        "inst": "hosp-a",
        "roles": ["clinician"],
        "scope": "user/*.rs",
        "aud": CHAIN,
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 600,
        "jti": "j1",
    }
    claims.update(kw)
    return {k: v for k, v in claims.items() if v is not None}


def header_of(node: NodeTokenKey, **kw: Any) -> dict[str, Any]:
    return {"alg": node.alg, "typ": "at+jwt", "kid": node.key_id, **kw}


# -- round trip ------------------------------------------------------------------------------------


def test_round_trip(node: NodeTokenKey) -> None:
    issued = issue_access_token(
        node,
        POLICY,
        subject="lis-01",
        institution="hosp-b",
        roles=["integration"],
        scope="system/DiagnosticReport.read  system/Observation.cruds",
        now=NOW + 0.9,
        client_id="lis-01",
    )
    claims = verify(issued.access_token, node, now=NOW + 60)
    assert claims == issued.claims
    assert (claims.iss, claims.aud, claims.sub, claims.inst) == (CHAIN, CHAIN, "lis-01", "hosp-b")
    assert claims.roles == ("integration",)
    assert claims.scope == "system/DiagnosticReport.read system/Observation.cruds"
    assert [s.resource_type for s in claims.scopes()] == ["DiagnosticReport", "Observation"]
    assert (claims.iat, claims.nbf, claims.exp) == (NOW, NOW, NOW + 600)
    assert claims.client_id == "lis-01"
    assert issued.expires_in == 600
    assert issued.access_token not in repr(issued)
    header = json.loads(unb64(issued.access_token.split(".")[0]))
    assert header == {"alg": node.alg, "typ": "at+jwt", "kid": node.key_id}
    assert node.alg == ("EdDSA" if node.suite.name == "intl-v1" else "SM2SM3")


def test_jti_is_random_and_ttl_configurable(node: NodeTokenKey) -> None:
    policy = TokenPolicy(issuer=CHAIN, audience=CHAIN, ttl=120)
    a = issue_access_token(node, policy, subject="u", institution="i", roles=[], scope="", now=NOW)
    b = issue_access_token(
        node, policy, subject="u", institution="i", roles=[], scope="", now=NOW, ttl=30
    )
    assert a.claims.jti != b.claims.jti
    assert len(a.claims.jti) >= 22
    assert a.expires_in == 120
    assert b.expires_in == 30


def test_eddsa_token_verifies_with_a_standard_jose_library(keys: dict[str, NodeTokenKey]) -> None:
    node = keys["intl-v1"]
    token = issue(node)
    public = jwk.import_key(dict(node.public_jwk()), "OKP")
    obj = jws.deserialize_compact(
        token, public, registry=ClientAssertionRegistry.allowing(("EdDSA",))
    )
    assert json.loads(obj.payload)["sub"] == "dr.wang"


def test_sm2_signature_is_fixed_length_r_s(keys: dict[str, NodeTokenKey]) -> None:
    node = keys["sm-v1"]
    token = issue(node)
    head, body, sig_text = token.split(".")
    sig = unb64(sig_text)
    assert len(sig) == 64
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    assert 0 < r < SM2_N
    assert 0 < s < SM2_N
    vk = get_suite("sm-v1").load_verify_key(node.verify_key.public_bytes)
    assert vk.verify(sig, f"{head}.{body}".encode())
    jwk_ = node.public_jwk()
    assert (jwk_["kty"], jwk_["crv"], jwk_["alg"]) == ("EC", "SM2", "SM2SM3")
    assert b"\x04" + unb64(jwk_["x"]) + unb64(jwk_["y"]) == node.verify_key.public_bytes


def test_verify_only_key(node: NodeTokenKey) -> None:
    public = NodeTokenKey.verifying(node.suite, node.verify_key.public_bytes)
    assert public.key_id == node.key_id
    assert verify(issue(node), public).sub == "dr.wang"
    with pytest.raises(InputError):
        issue(public)


# -- attacks on access tokens ----------------------------------------------------------------------


def test_tampered_payload(node: NodeTokenKey) -> None:
    head, _, sig = issue(node).split(".")
    forged = b64(json.dumps(good_claims(roles=["group_admin"])).encode())
    refused("bad-signature", verify, f"{head}.{forged}.{sig}", node)


def test_tampered_signature(node: NodeTokenKey) -> None:
    head, body, sig = issue(node).split(".")
    raw = bytearray(unb64(sig))
    raw[10] ^= 0x01
    refused("bad-signature", verify, f"{head}.{body}.{b64(bytes(raw))}", node)
    refused("bad-signature", verify, f"{head}.{body}.{b64(bytes(raw[:-1]))}", node)


def test_alg_none(node: NodeTokenKey) -> None:
    for alg in ("none", "None", "NONE"):
        token = craft({"alg": alg, "typ": "at+jwt", "kid": node.key_id}, good_claims(), None)
        refused("alg-not-allowed", verify, token, node)
    # "none" with the real signature appended, and without a kid at all
    _, body, sig = issue(node).split(".")
    none_head = b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    refused("alg-not-allowed", verify, f"{none_head}.{body}.{sig}", node)
    refused("alg-not-allowed", verify, f"{none_head}.{body}.", node)


def test_hs256_with_the_public_key_as_secret(node: NodeTokenKey) -> None:
    public = node.verify_key.public_bytes
    secrets = (public, public.hex().encode(), json.dumps(node.public_jwk()).encode())
    for secret in secrets:
        token = craft(
            header_of(node, alg="HS256"),
            good_claims(),
            functools.partial(hs256, secret),
        )
        refused("alg-not-allowed", verify, token, node)


def test_other_suites_alg_is_refused(keys: dict[str, NodeTokenKey]) -> None:
    ed, sm = keys["intl-v1"], keys["sm-v1"]
    refused("alg-not-allowed", verify, issue(ed), sm)  # EdDSA under an SM2 node
    refused("alg-not-allowed", verify, issue(sm), ed)
    # even with the victim's kid copied in
    token = craft(header_of(sm, alg="EdDSA"), good_claims(), node_signer(ed))
    refused("alg-not-allowed", verify, token, sm)


def test_wrong_key_another_node(node: NodeTokenKey) -> None:
    other = NodeTokenKey.signing(node.suite, node.suite.generate_signing_key())
    refused("wrong-key", verify, issue(other), node)
    # the attacker copies our kid: the signature still does not verify
    token = craft(header_of(node), good_claims(), node_signer(other))
    refused("bad-signature", verify, token, node)


def test_expired_and_leeway(node: NodeTokenKey) -> None:
    token = issue(node)
    exp = NOW + 600
    assert verify(token, node, now=exp + MAX_LEEWAY - 1).sub == "dr.wang"
    refused("expired", verify, token, node, now=exp + MAX_LEEWAY)
    strict = TokenPolicy(issuer=CHAIN, audience=CHAIN, leeway=0)
    refused("expired", verify, token, node, now=exp, policy=strict)
    assert verify(token, node, now=exp - 1, policy=strict).exp == exp


def test_not_yet_valid(node: NodeTokenKey) -> None:
    token = issue(node, now=NOW + 3600)
    refused("not-yet-valid", verify, token, node, now=NOW + 3600 - MAX_LEEWAY - 1)
    assert verify(token, node, now=NOW + 3600 - MAX_LEEWAY).iat == NOW + 3600
    future_iat = craft(header_of(node), good_claims(iat=NOW + 999), node_signer(node))
    refused("not-yet-valid", verify, future_iat, node)


def test_revoked(node: NodeTokenKey) -> None:
    revocations = MemoryRevocations()
    token = issue(node)
    claims = verify(token, node, revocations=revocations)
    revoke_access_token(revocations, claims)
    refused("revoked", verify, token, node, revocations=revocations)
    assert verify(issue(node), node, revocations=revocations).sub == "dr.wang"
    assert revocations.prune(claims.exp + MAX_LEEWAY - 1) == 0
    assert revocations.prune(claims.exp + MAX_LEEWAY + 1) == 1


def test_family_claim_and_revoked_sign_in(node: NodeTokenKey) -> None:
    """A sign-in's token carries its family as fam; revoking the family revokes the token."""
    token = issue(node, family="fam-1")
    families = MemoryRefreshStore()
    revocations = MemoryRevocations(families=families)
    claims = verify(token, node, revocations=revocations)
    assert claims.fam == "fam-1"
    assert claims.to_json()["fam"] == "fam-1"
    assert "fam" not in verify(issue(node), node).to_json()
    families.revoke_family("fam-2", NOW)
    assert verify(token, node, revocations=revocations).fam == "fam-1"
    families.revoke_family("fam-1", NOW)
    refused("revoked", verify, token, node, revocations=revocations)
    sign = node_signer(node)
    for name in ("fam", "client_id"):  # if present, a string: not null, not a number
        for bad in (5, None, ["fam-1"]):
            claims_json = {**good_claims(), name: bad}
            refused("malformed", verify, craft(header_of(node), claims_json, sign), node)
    with pytest.raises(InputError):
        issue(node, family="")


def test_another_chains_token(node: NodeTokenKey) -> None:
    other_iss = TokenPolicy(issuer="chain-b", audience=CHAIN)
    other_aud = TokenPolicy(issuer=CHAIN, audience="https://b.example/fhir/R4")
    refused("wrong-issuer", verify, issue(node, other_iss), node)
    refused("wrong-audience", verify, issue(node, other_aud), node)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "...",
        "a..c",
        "eyJ.eyJ.",
        "Bearer x.y.z",
        "x.y.z=",
        "x.y.z\n",
        "ab+c.de/f.ghi",
        "日本.語.字",
        "a" * 9000,
    ],
)
def test_garbage_is_malformed(node: NodeTokenKey, garbage: str) -> None:
    refused("malformed", verify, garbage, node)


@pytest.mark.parametrize("value", [None, b"a.b.c", 12, ["a", "b", "c"]])
def test_non_string_is_malformed(node: NodeTokenKey, value: Any) -> None:
    refused("malformed", verify, value, node)


def test_truncated_tokens(node: NodeTokenKey) -> None:
    token = issue(node)
    for cut in (1, 5, 20, len(token) // 2, len(token) - 3):
        with pytest.raises(TokenInvalid) as info:
            verify(token[:cut], node)
        assert info.value.reason in ("malformed", "bad-signature")
        assert token[:cut] not in json.dumps(info.value.to_dict()) or cut < 5


def test_huge_token_is_malformed_and_not_echoed(node: NodeTokenKey) -> None:
    head, body, sig = issue(node).split(".")
    huge = f"{head}.{body + 'A' * 9000}.{sig}"
    err = refused("malformed", verify, huge, node)
    assert err.details["length"] == len(huge)
    big_claims = craft(header_of(node), good_claims(pad="x" * 9000), node_signer(node))
    refused("malformed", verify, big_claims, node)


def test_header_and_claims_must_be_exact(node: NodeTokenKey) -> None:
    sign = node_signer(node)
    cases = [
        craft(header_of(node, typ="JWT"), good_claims(), sign),  # an ID token / assertion
        craft({"alg": node.alg, "typ": "at+jwt"}, good_claims(), sign),  # no kid
        craft(header_of(node, jwk=node.public_jwk()), good_claims(), sign),
        craft(header_of(node, b64=False), good_claims(), sign),
        craft(header_of(node, crit=["exp"]), good_claims(), sign),
        craft(header_of(node, crit=5), good_claims(), sign),
        craft(header_of(node), good_claims(extra=1), sign),
        craft(header_of(node), good_claims(jti=None), sign),
        craft(header_of(node), good_claims(exp=str(NOW + 600)), sign),
        craft(header_of(node), good_claims(exp=True), sign),
        craft(header_of(node), good_claims(exp=float(NOW + 600)), sign),
        craft(header_of(node), good_claims(roles="clinician"), sign),
        craft(header_of(node), good_claims(aud=[CHAIN]), sign),
        craft(header_of(node), [1, 2], sign),
        craft(header_of(node), b'{"sub":"a","sub":"b"}', sign),
        craft(header_of(node), b"\xff\xfe", sign),
    ]
    for token in cases:
        refused("malformed", verify, token, node)
    header_not_object = b64(b'"alg"') + "." + b64(b"{}") + "." + b64(b"x")
    refused("malformed", verify, header_not_object, node)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_byte_flips_never_verify(node: NodeTokenKey, data: st.DataObject) -> None:
    token = issue(node).encode("ascii")
    pos = data.draw(st.integers(0, len(token) - 1))
    flip = data.draw(st.integers(1, 255))
    mutated = bytearray(token)
    mutated[pos] ^= flip
    with pytest.raises(TokenInvalid):
        verify(mutated.decode("latin-1"), node)


def test_policy_bounds() -> None:
    for bad in (
        {"leeway": 31},
        {"leeway": -1},
        {"ttl": 0},
        {"ttl": 3601},
        {"ttl": 1.5},
        {"issuer": ""},
    ):
        args: dict[str, Any] = {"issuer": CHAIN, "audience": CHAIN, **bad}
        with pytest.raises(InputError):
            TokenPolicy(**args)


def test_issue_checks_its_input(node: NodeTokenKey) -> None:
    with pytest.raises(InputError) as info:
        issue(node, scope="user/Observation.rw")
    assert info.value.field == "scope"
    for bad in ({"subject": ""}, {"roles": [""]}, {"now": float("nan")}, {"ttl": 7200}):
        with pytest.raises(InputError):
            issue(node, **bad)
    with pytest.raises(InputError):
        verify(issue(node), node, now=float("inf"))


def test_alg_for_and_key_checks(keys: dict[str, NodeTokenKey]) -> None:
    ed, sm = keys["intl-v1"], keys["sm-v1"]
    assert alg_for(ed.suite).name == "EdDSA"
    assert alg_for(sm.suite).name == "SM2SM3"
    assert ed.signing_key is not None
    with pytest.raises(InputError, match="sm-v1"):
        NodeTokenKey.signing(sm.suite, ed.signing_key)


# -- refresh tokens --------------------------------------------------------------------------------

RPOLICY = RefreshPolicy(ttl=3600, family_ttl=4 * 3600)


def start(store: MemoryRefreshStore, client: str | None = "app-1") -> str:
    grant = start_refresh_family(
        store,
        RPOLICY,
        subject="dr.wang",
        institution="hosp-a",
        client_id=client,
        scope="user/*.rs offline_access",
        now=NOW,
    )
    assert grant.refresh_token not in repr(grant)
    assert grant.record.token_hash != grant.refresh_token
    return grant.refresh_token


def rotate(
    store: MemoryRefreshStore, token: str, *, now: int = NOW + 60, client: Any = "app-1"
) -> str:
    return rotate_refresh_token(store, RPOLICY, token, client_id=client, now=now).refresh_token


def test_refresh_rotation() -> None:
    store = MemoryRefreshStore()
    t1 = start(store)
    t2 = rotate(store, t1)
    t3 = rotate(store, t2, now=NOW + 120)
    assert len({t1, t2, t3}) == 3
    rec = rotate_refresh_token(store, RPOLICY, t3, client_id="app-1", now=NOW + 180).record
    assert (rec.subject, rec.institution, rec.scope) == (
        "dr.wang",
        "hosp-a",
        "user/*.rs offline_access",
    )
    assert rec.expires_at == NOW + 180 + 3600


def test_refresh_replay_revokes_the_family() -> None:
    store = MemoryRefreshStore()
    t1 = start(store)
    t2 = rotate(store, t1)
    refused("replayed", rotate, store, t1)  # the thief (or the victim) replays t1
    refused("revoked", rotate, store, t2)  # and the live successor dies with the family
    refused("revoked", rotate, store, t1)


def test_refresh_concurrent_rotation_is_a_replay() -> None:
    store = MemoryRefreshStore()
    t1 = start(store)
    stale = store.find(hashlib.sha256(t1.encode()).hexdigest())
    t2 = rotate(store, t1)

    class Stale(MemoryRefreshStore):
        def find(self, token_hash: str) -> Any:  # what the loser read before the winner wrote
            return stale if stale and token_hash == stale.token_hash else store.find(token_hash)

        def mark_used(self, token_hash: str, at: int) -> bool:
            return store.mark_used(token_hash, at)

        def revoke_family(self, family_id: str, at: int) -> None:
            store.revoke_family(family_id, at)

        def family_revoked(self, family_id: str) -> bool:
            return store.family_revoked(family_id)

    refused("replayed", rotate, Stale(), t1)
    refused("revoked", rotate, store, t2)


def test_refresh_wrong_client_revokes() -> None:
    store = MemoryRefreshStore()
    t1 = start(store)
    refused("wrong-client", rotate, store, t1, client="evil-app")
    refused("revoked", rotate, store, t1)
    public = start(store, client=None)
    refused("wrong-client", rotate, store, public, client="app-1")


def test_refresh_expiry() -> None:
    store = MemoryRefreshStore()
    t1 = start(store)
    refused("expired", rotate, store, t1, now=NOW + 3600)
    t = start(store)
    for step in range(1, 5):  # each rotation inside its token's hour...
        t = rotate(store, t, now=NOW + step * 3500)
    rec = store.find(hashlib.sha256(t.encode()).hexdigest())
    assert rec is not None
    assert rec.expires_at == NOW + 4 * 3600  # ...but never past the family's end
    refused("expired", rotate, store, t, now=NOW + 4 * 3600)


def test_refresh_unknown_malformed_and_signout() -> None:
    store = MemoryRefreshStore()
    refused("unknown", rotate, store, "A" * 43)
    for bad in ("", "short", "A" * 44, "A" * 42 + "=", None):
        refused("malformed", rotate, store, bad)
    t1 = start(store)
    assert revoke_refresh_token(store, t1, now=NOW)
    refused("revoked", rotate, store, t1)
    assert not revoke_refresh_token(store, "B" * 43, now=NOW)
    assert not revoke_refresh_token(store, "nope", now=NOW)


def test_refresh_policy_bounds() -> None:
    with pytest.raises(InputError):
        RefreshPolicy(ttl=10)
    with pytest.raises(InputError):
        RefreshPolicy(ttl=7200, family_ttl=3600)


# -- client assertions -----------------------------------------------------------------------------

ENDPOINT = "https://ledger.hosp-a.example/auth/token"


@pytest.fixture(scope="module")
def client_keys() -> dict[str, Any]:
    return {
        "ES256": jwk.generate_key("EC", "P-256", auto_kid=True),
        "ES384": jwk.generate_key("EC", "P-384"),
        "EdDSA": jwk.generate_key("OKP", "Ed25519", auto_kid=True),
        "Ed25519": jwk.generate_key("OKP", "Ed25519"),
        "RS384": jwk.generate_key("RSA", 2048),
    }


def assertion(key: Any, alg: str, **claims: Any) -> str:
    body = {
        "iss": "lis-01",
        "sub": "lis-01",
        "aud": ENDPOINT,
        "exp": NOW + 240,
        "iat": NOW,
        "jti": "a-1",
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    header = {"alg": alg}
    if key.kid:
        header["kid"] = key.kid
    return jwt.encode(header, body, key, registry=ClientAssertionRegistry.allowing((alg,)))


def check(token: str, public: dict[str, Any], seen: MemorySeenJtis | None = None, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "client_id": "lis-01",
        "public_jwk": public,
        "token_endpoint_url": ENDPOINT,
        "now": NOW,
        "seen_jti": seen or MemorySeenJtis(),
    }
    args.update(kw)
    return verify_client_assertion(token, **args)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "Ed25519", "RS384"])
def test_client_assertion_accepted(client_keys: dict[str, Any], alg: str) -> None:
    key = client_keys[alg]
    public = key.as_dict(private=False)
    got = check(assertion(key, alg), public)
    assert (got.client_id, got.jti, got.exp, got.alg) == ("lis-01", "a-1", NOW + 240, alg)
    assert got.kid == key.kid


def test_client_assertion_replayed_jti(client_keys: dict[str, Any]) -> None:
    key = client_keys["ES256"]
    public = key.as_dict(private=False)
    seen = MemorySeenJtis()
    token = assertion(key, "ES256")
    check(token, public, seen)
    refused("replayed", check, token, public, seen)
    refused("replayed", check, assertion(key, "ES256", exp=NOW + 200), public, seen)
    assert check(assertion(key, "ES256", jti="a-2"), public, seen).jti == "a-2"
    assert seen.prune(NOW + 240 + MAX_LEEWAY + 1) == 2


def test_client_assertion_claims(client_keys: dict[str, Any]) -> None:
    key = client_keys["EdDSA"]
    public = key.as_dict(private=False)
    a = "EdDSA"
    refused("wrong-audience", check, assertion(key, a, aud="https://other.example/token"), public)
    assert check(assertion(key, a, aud=["x", ENDPOINT]), public).jti == "a-1"
    refused("wrong-issuer", check, assertion(key, a, iss="his-02"), public)
    refused("wrong-issuer", check, assertion(key, a, sub="his-02"), public)
    refused("wrong-issuer", check, assertion(key, a), public, client_id="his-02")
    refused("lifetime-too-long", check, assertion(key, a, exp=NOW + 3600), public)
    refused("expired", check, assertion(key, a, exp=NOW - 60), public)
    refused("not-yet-valid", check, assertion(key, a, nbf=NOW + 120), public)
    refused("not-yet-valid", check, assertion(key, a, iat=NOW + 120), public)
    for missing in ("jti", "exp", "aud", "iss", "sub"):
        refused("malformed", check, assertion(key, a, **{missing: None}), public)
    refused("malformed", check, assertion(key, a, jti=5), public)
    refused("malformed", check, assertion(key, a, jti="x" * 300), public)
    refused("malformed", check, assertion(key, a, exp="soon"), public)


def test_client_assertion_algorithm_attacks(client_keys: dict[str, Any]) -> None:
    ec = client_keys["ES256"]
    ec_public = ec.as_dict(private=False)
    okp_public = jwk.generate_key("OKP", "Ed25519").as_dict(private=False)  # no kid
    body = {"iss": "lis-01", "sub": "lis-01", "aud": ENDPOINT, "exp": NOW + 60, "jti": "z"}
    none = craft({"alg": "none"}, body, None)
    refused("alg-not-allowed", check, none, ec_public)
    secret = json.dumps(ec_public).encode()
    hs = craft({"alg": "HS256"}, body, functools.partial(hs256, secret))
    refused("alg-not-allowed", check, hs, ec_public)
    # ES256 header, but the client registered an Ed25519 key (algorithm confusion)
    refused(
        "alg-not-allowed", check, assertion(jwk.generate_key("EC", "P-256"), "ES256"), okp_public
    )
    # a P-384 key registered, a P-256 signature presented
    refused(
        "alg-not-allowed",
        check,
        assertion(ec, "ES256"),
        client_keys["ES384"].as_dict(private=False),
    )
    # RS256 is not on the SMART list
    rsa_key = client_keys["RS384"]
    rs256 = jwt.encode({"alg": "RS256"}, body, rsa_key, algorithms=["RS256"])
    refused("alg-not-allowed", check, rs256, rsa_key.as_dict(private=False))
    # the allow-list is configurable downwards
    refused("alg-not-allowed", check, assertion(ec, "ES256"), ec_public, algorithms=("ES384",))
    # a key that says it is for another algorithm
    refused("alg-not-allowed", check, assertion(ec, "ES256"), {**ec_public, "alg": "ES384"})
    refused("alg-not-allowed", check, assertion(ec, "ES256"), {**ec_public, "use": "enc"})


def test_client_assertion_wrong_key_and_header(client_keys: dict[str, Any]) -> None:
    ec = client_keys["ES256"]
    public = ec.as_dict(private=False)
    other = jwk.generate_key("EC", "P-256")
    refused("bad-signature", check, assertion(other, "ES256"), public)
    other_with_kid = jwk.generate_key("EC", "P-256", auto_kid=True)
    refused("wrong-key", check, assertion(other_with_kid, "ES256"), public)
    body = {"iss": "lis-01", "sub": "lis-01", "aud": ENDPOINT, "exp": NOW + 60, "jti": "h"}
    embedded = craft(
        {"alg": "ES256", "jwk": other.as_dict(private=False)},
        body,
        lambda m: jwk_sign(other, m),
    )
    refused("malformed", check, embedded, public)
    head, payload, sig = assertion(ec, "ES256").split(".")
    refused("bad-signature", check, f"{head}.{payload}.{sig[:-4]}AAAA", public)
    refused("malformed", check, "x" * 9000, public)


def jwk_sign(key: Any, message: bytes) -> bytes:
    return ClientAssertionRegistry.algorithms["ES256"].sign(message, key)


def test_client_key_registration_checks(client_keys: dict[str, Any]) -> None:
    ec = client_keys["ES256"]
    token = assertion(ec, "ES256")
    bad_keys = [
        ec.as_dict(private=True),  # private material
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        rsa_public_jwk(1024),
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"kty": "RSA", "e": "AQAB"},
        "not a dict",
    ]
    for bad in bad_keys:
        with pytest.raises(InputError) as info:
            check(token, bad)
        assert info.value.field == "public_jwk"


def rsa_public_jwk(bits: int) -> dict[str, str]:
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    pub = numbers.public_numbers()
    return {
        "kty": "RSA",
        "n": b64(pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")),
        "e": b64(pub.e.to_bytes(3, "big")),
    }


def test_sm2_client_assertion(client_keys: dict[str, Any]) -> None:
    suite = get_suite("sm-v1")
    sk = suite.generate_signing_key()
    point = sk.public_bytes
    public = {"kty": "EC", "crv": "SM2", "x": b64(point[1:33]), "y": b64(point[33:]), "kid": "k1"}
    body = {"iss": "lis-01", "sub": "lis-01", "aud": ENDPOINT, "exp": NOW + 60, "jti": "s"}
    token = craft({"alg": "SM2SM3", "kid": "k1"}, body, sk.sign)
    got = check(token, public)
    assert (got.alg, got.kid, got.jti) == ("SM2SM3", "k1", "s")
    other = suite.generate_signing_key()
    refused("bad-signature", check, craft({"alg": "SM2SM3"}, body, other.sign), public)
    # an ES256 signature against an SM2 key, and SM2SM3 against a P-256 key
    ec = jwk.generate_key("EC", "P-256")
    refused("alg-not-allowed", check, assertion(ec, "ES256"), public)
    refused("alg-not-allowed", check, token, {**ec.as_dict(private=False), "kid": "k1"})
    refused("alg-not-allowed", check, token, public, algorithms=("ES256", "ES384"))
    with pytest.raises(InputError):
        check(token, {**public, "y": b64(bytes(32))})  # off the curve
    with pytest.raises(InputError):
        check(token, {**public, "x": 5})
