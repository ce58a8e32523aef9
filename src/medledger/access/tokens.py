"""Access tokens and their revocation (issue 4, "Tokens").

Pure library: no HTTP, no database. Revocation is behind a small protocol (``Revocations``,
in ``revocations``, re-exported here) with an in-memory implementation for tests and single
processes. Refresh tokens are in ``refresh``, client assertions in ``assertions``.

**Access tokens** are JWTs (RFC 9068 profile, ``typ: at+jwt``) signed with the node key:
``EdDSA`` under ``intl-v1``, ``SM2SM3`` under ``sm-v1`` (see ``jose_sm2``). Claims: ``iss``
(the chain), ``sub`` (user or client id), ``inst`` (institution), ``roles``, ``scope`` (SMART
scopes, space-separated), ``aud``, ``iat``, ``nbf``, ``exp`` (10 minutes by default), ``jti``
(random), ``client_id`` on a client's own token and, for a user's sign-in, ``fam``: the refresh
token family the token belongs to, so that revoking the sign-in (a sign-out, or a replayed
refresh token) revokes its access tokens too. ``verify_access_token`` accepts only the node's
own algorithm and key id, checked before any signature work; then the signature, the claims,
the times (leeway at most 30 s) and the revocation list (the token's ``jti`` and its ``fam``),
so a revocation takes effect at once.

Every refusal is ``TokenInvalid`` with a one-word ``reason``; no error or log holds a token.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from joserfc.errors import JoseError
from joserfc.util import json_b64encode, urlsafe_b64encode

from medledger.access._jwt import (
    _b64,
    _bounded_int,
    _check_claims,
    _extract,
    _int_date,
    _now,
    _payload,
    _refuse,
    _text,
)
from medledger.access.jose_sm2 import NodeJWSRegistry, alg_for, check_compact, public_jwk
from medledger.access.revocations import MemoryRevocations, Revocations, RevokedFamilies
from medledger.access.scopes import Scope, parse_scopes
from medledger.crypto.canonical import canonical_bytes
from medledger.crypto.keys import key_id
from medledger.crypto.suite import SigningKey, Suite, VerifyKey
from medledger.errors import InputError, TokenInvalid

if TYPE_CHECKING:
    from medledger.ledger.node import LedgerNode

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "DEFAULT_TTL",
    "MAX_LEEWAY",
    "IssuedToken",
    "MemoryRevocations",
    "NodeTokenKey",
    "Revocations",
    "RevokedFamilies",
    "TokenClaims",
    "TokenPolicy",
    "issue_access_token",
    "revoke_access_token",
    "verify_access_token",
]

# RFC 9068 §2.1: the "typ" that tells an access token from any other JWT (not a secret).
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105
DEFAULT_TTL = 600
MAX_TTL = 3600
MAX_LEEWAY = 30


# -- the node's key and the token policy ---------------------------------------------------------


@dataclass(frozen=True)
class NodeTokenKey:
    """The node key as tokens use it: its suite, public key, key id and (to issue) private key.

    Build it from what ``LedgerNode`` already holds (``node.suite`` and its ``SigningKey``) with
    ``signing``, or from a public key alone with ``verifying``; nothing here reads key files.
    """

    suite: Suite
    verify_key: VerifyKey
    key_id: str
    signing_key: SigningKey | None = field(default=None, repr=False, compare=False)

    @classmethod
    def signing(cls, suite: Suite, key: SigningKey) -> NodeTokenKey:
        """Return the key for issuing and verifying tokens with the node's ``SigningKey``."""
        try:
            alg_for(suite).check_key(key)
        except JoseError:
            raise InputError(
                f"the signing key is not a {suite.name} key",
                field="key",
                expected=f"a {suite.name} signing key",
            ) from None
        return cls(suite, key.verify_key(), key_id(suite, key.public_bytes), key)

    @classmethod
    def for_node(cls, node: LedgerNode) -> NodeTokenKey:
        """Return the signing key of an open ``LedgerNode`` (its own suite and node key)."""
        return cls.signing(node.suite, node.signing_key())

    @classmethod
    def verifying(cls, suite: Suite, public_bytes: bytes) -> NodeTokenKey:
        """Return a verify-only key; ``MalformedDocument`` if the bytes are not a suite key."""
        vk = suite.load_verify_key(public_bytes)
        return cls(suite, vk, key_id(suite, vk.public_bytes))

    @property
    def alg(self) -> str:
        """The JWS ``alg`` of this key: ``EdDSA`` or ``SM2SM3``."""
        return alg_for(self.suite).name

    def public_jwk(self) -> dict[str, str]:
        """Return the public JWK (for a JWKS endpoint)."""
        return public_jwk(self.suite, self.verify_key.public_bytes, self.key_id)


@dataclass(frozen=True)
class TokenPolicy:
    """Who issues tokens, for whom, and for how long.

    ``issuer`` is the chain id (the ``iss`` claim), ``audience`` what a resource server of this
    chain expects in ``aud`` (for example the chain id, or the API's base URL), ``ttl`` the
    access token lifetime in seconds (short: 1 to 3600, default 600) and ``leeway`` the clock
    skew tolerated on ``exp``/``nbf``/``iat`` (0 to 30 s).
    """

    issuer: str
    audience: str
    ttl: int = DEFAULT_TTL
    leeway: int = MAX_LEEWAY

    def __post_init__(self) -> None:
        """Check every field; ``InputError`` names the bad one."""
        _text(self.issuer, "issuer")
        _text(self.audience, "audience")
        _bounded_int(self.ttl, "ttl", 1, MAX_TTL)
        _bounded_int(self.leeway, "leeway", 0, MAX_LEEWAY)


# -- access tokens -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenClaims:
    """The checked claims of an access token."""

    iss: str
    sub: str
    inst: str
    roles: tuple[str, ...]
    scope: str
    aud: str
    iat: int
    nbf: int
    exp: int
    jti: str
    client_id: str | None = None
    fam: str | None = None

    def scopes(self) -> tuple[Scope, ...]:
        """Return ``scope`` parsed into SMART scopes."""
        return parse_scopes(self.scope)

    def to_json(self) -> dict[str, Any]:
        """Return the JWT claims set."""
        out: dict[str, Any] = {
            "iss": self.iss,
            "sub": self.sub,
            "inst": self.inst,
            "roles": list(self.roles),
            "scope": self.scope,
            "aud": self.aud,
            "iat": self.iat,
            "nbf": self.nbf,
            "exp": self.exp,
            "jti": self.jti,
        }
        if self.client_id is not None:
            out["client_id"] = self.client_id
        if self.fam is not None:
            out["fam"] = self.fam
        return out


_REQUIRED = ("iss", "sub", "inst", "roles", "scope", "aud", "iat", "nbf", "exp", "jti")
_CLAIMS = frozenset((*_REQUIRED, "client_id", "fam"))


@dataclass(frozen=True)
class IssuedToken:
    """A freshly signed access token and its claims (the token is kept out of ``repr``)."""

    access_token: str = field(repr=False)
    claims: TokenClaims

    @property
    def expires_in(self) -> int:
        """Seconds from issue to expiry (the OAuth ``expires_in``)."""
        return self.claims.exp - self.claims.iat


def issue_access_token(
    key: NodeTokenKey,
    policy: TokenPolicy,
    *,
    subject: str,
    institution: str,
    roles: Iterable[str],
    scope: str,
    now: float,
    client_id: str | None = None,
    family: str | None = None,
    ttl: int | None = None,
) -> IssuedToken:
    """Sign an access token for ``subject`` of ``institution``.

    ``scope`` must parse as SMART scopes (``InputError`` otherwise); ``family`` is the refresh
    token family of a sign-in (the ``fam`` claim); ``ttl`` overrides the policy's lifetime
    (1 to 3600 s). Raise ``InputError`` if ``key`` cannot sign.
    """
    if key.signing_key is None:
        raise InputError(
            "this node token key has no private key", field="key", expected="a signing key"
        )
    role_list = tuple(_text(r, "roles") for r in roles)
    scope_text = " ".join(s.text for s in parse_scopes(scope))
    iat = _now(now)
    life = policy.ttl if ttl is None else _bounded_int(ttl, "ttl", 1, MAX_TTL)
    claims = TokenClaims(
        iss=policy.issuer,
        sub=_text(subject, "subject"),
        inst=_text(institution, "institution"),
        roles=role_list,
        scope=scope_text,
        aud=policy.audience,
        iat=iat,
        nbf=iat,
        exp=iat + life,
        jti=secrets.token_urlsafe(16),
        client_id=None if client_id is None else _text(client_id, "client_id"),
        fam=None if family is None else _text(family, "family"),
    )
    header = {"alg": key.alg, "typ": ACCESS_TOKEN_TYPE, "kid": key.key_id}
    signing_input = (
        json_b64encode(header) + b"." + urlsafe_b64encode(canonical_bytes(claims.to_json()))
    )
    signature = alg_for(key.suite).sign(signing_input, key.signing_key)
    token = (signing_input + b"." + urlsafe_b64encode(signature)).decode("ascii")
    return IssuedToken(token, claims)


def verify_access_token(
    token: str,
    *,
    key: NodeTokenKey,
    policy: TokenPolicy,
    revocations: Revocations,
    now: float,
) -> TokenClaims:
    """Return the claims of ``token`` if this node issued it, it is current and not revoked.

    Checked in this order, each failure a ``TokenInvalid`` whose ``reason`` says which:
    shape and size (``malformed``); the header ``alg`` is the node's (``alg-not-allowed``:
    ``none``, ``HS256``, or the other suite's alg, before any signature work); ``typ`` and the
    header fields (``malformed``); ``kid`` is the node key's (``wrong-key``); the signature
    (``bad-signature``); the claims' presence and types (``malformed``); ``iss``
    (``wrong-issuer``) and ``aud`` (``wrong-audience``); ``exp`` (``expired``), ``nbf``/``iat``
    (``not-yet-valid``); the revocation list, asked about the ``jti`` and the ``fam``
    (``revoked``).
    """
    what = "access token"
    at = _now(now)
    raw = check_compact(token, what)
    registry = NodeJWSRegistry.for_suite(key.suite)
    obj = _extract(raw, registry, what)
    header = obj.protected
    if header.get("alg") != key.alg:
        raise _refuse(what, "alg-not-allowed", f"this node signs tokens with {key.alg} only")
    try:
        registry.check_header(header)
    except (JoseError, TypeError, ValueError):
        raise _refuse(what, "malformed", "unexpected header fields") from None
    if header.get("typ") != ACCESS_TOKEN_TYPE or set(header) != {"alg", "typ", "kid"}:
        raise _refuse(what, "malformed", f"the header must be alg, typ {ACCESS_TOKEN_TYPE}, kid")
    if header["kid"] != key.key_id:
        raise _refuse(what, "wrong-key", "signed by another key than this node's")
    # Verified with the node's algorithm, never one named by the token.
    signing_input = obj.segments["header"] + b"." + obj.segments["payload"]
    signature = _b64(obj.segments["signature"])
    if signature is None or not alg_for(key.suite).verify(signing_input, signature, key.verify_key):
        raise _refuse(what, "bad-signature", "the signature does not verify")
    claims = _access_claims(_payload(obj.payload, what))
    try:
        _check_claims(
            claims.to_json(),
            what,
            now=at,
            leeway=policy.leeway,
            iss={"essential": True, "value": policy.issuer},
            aud={"essential": True, "value": policy.audience},
        )
        if revocations.is_revoked(claims.jti, claims.fam):
            raise _refuse(what, "revoked", "the token was revoked")
    except TokenInvalid as exc:
        exc.claimed = claims  # the signature held: the refusal is audited under its subject
        raise
    return claims


def revoke_access_token(revocations: Revocations, claims: TokenClaims) -> None:
    """Revoke the token with these claims until it would have expired anyway."""
    revocations.revoke(claims.jti, claims.exp + MAX_LEEWAY)


def _access_claims(obj: dict[str, Any]) -> TokenClaims:
    """Build ``TokenClaims`` from a signed claims set; ``malformed`` if a claim is amiss."""
    missing = [n for n in _REQUIRED if n not in obj]
    extra = sorted(set(obj) - _CLAIMS)
    if missing or extra:
        raise _refuse(
            "access token", "malformed", "unexpected claims", missing=missing, unexpected=extra
        )
    strings = ("iss", "sub", "inst", "scope", "aud", "jti")
    client_id, fam = obj.get("client_id"), obj.get("fam")
    roles = obj["roles"]
    ok = (
        all(isinstance(obj[n], str) for n in strings)
        and all(_int_date(obj[n]) for n in ("iat", "nbf", "exp"))
        and isinstance(roles, list)
        and all(isinstance(r, str) for r in roles)
        and all(isinstance(obj[n], str) for n in ("client_id", "fam") if n in obj)
    )
    if not ok:
        raise _refuse("access token", "malformed", "a claim has the wrong type")
    return TokenClaims(
        iss=obj["iss"],
        sub=obj["sub"],
        inst=obj["inst"],
        roles=tuple(roles),
        scope=obj["scope"],
        aud=obj["aud"],
        iat=obj["iat"],
        nbf=obj["nbf"],
        exp=obj["exp"],
        jti=obj["jti"],
        client_id=client_id,
        fam=fam,
    )
