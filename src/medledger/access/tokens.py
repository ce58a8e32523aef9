"""Access tokens, revocation, refresh-token rotation and client assertions (issue 4, "Tokens").

Pure library: no HTTP, no database. Storage is behind small protocols (``Revocations``,
``RefreshStore``, ``SeenJtis``) with in-memory implementations for tests and single processes.

**Access tokens** are JWTs (RFC 9068 profile, ``typ: at+jwt``) signed with the node key:
``EdDSA`` under ``intl-v1``, ``SM2SM3`` under ``sm-v1`` (see ``jose_sm2``). Claims: ``iss``
(the chain), ``sub`` (user or client id), ``inst`` (institution), ``roles``, ``scope`` (SMART
scopes, space-separated), ``aud``, ``iat``, ``nbf``, ``exp`` (10 minutes by default), ``jti``
(random) and, when known, ``client_id``. ``verify_access_token`` accepts only the node's own
algorithm and key id, checked before any signature work; then the signature, the claims, the
times (leeway at most 30 s) and the revocation list, so a revocation takes effect at once.

**Refresh tokens** are opaque random strings, stored only as a hash, each in a *family* started
by one sign-in. Using one marks it used and issues its successor; presenting a used token again
(a replay: someone holds a copy) revokes the whole family (OAuth 2.0 Security BCP §4.14.2).

**Client assertions** (RFC 7523, SMART backend services) are checked by
``verify_client_assertion`` against the client's registered public JWK.

Every refusal is ``TokenInvalid`` with a one-word ``reason``; no error or log holds a token.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from joserfc import jwk, jws
from joserfc.errors import (
    ClaimError,
    ExpiredTokenError,
    InvalidKeyCurveError,
    InvalidKeyTypeError,
    JoseError,
    KeyParameterError,
    MissingClaimError,
)
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry
from joserfc.util import json_b64encode, urlsafe_b64decode, urlsafe_b64encode

from medledger.access.jose_sm2 import (
    CLIENT_ASSERTION_ALGS,
    SM2SM3,
    ClientAssertionRegistry,
    NodeJWSRegistry,
    alg_for,
    check_compact,
    public_jwk,
)
from medledger.access.scopes import Scope, parse_scopes
from medledger.crypto.canonical import canonical_bytes, parse_json_object
from medledger.crypto.keys import key_id
from medledger.crypto.registry import get_suite
from medledger.crypto.suite import SigningKey, Suite, VerifyKey
from medledger.errors import InputError, MalformedDocument, TokenInvalid

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "CLIENT_ASSERTION_TYPE",
    "DEFAULT_TTL",
    "MAX_ASSERTION_LIFETIME",
    "MAX_LEEWAY",
    "ClientAssertion",
    "IssuedToken",
    "MemoryRefreshStore",
    "MemoryRevocations",
    "MemorySeenJtis",
    "NodeTokenKey",
    "RefreshGrant",
    "RefreshPolicy",
    "RefreshRecord",
    "RefreshStore",
    "Revocations",
    "SeenJtis",
    "TokenClaims",
    "TokenPolicy",
    "issue_access_token",
    "refresh_token_hash",
    "revoke_access_token",
    "revoke_refresh_token",
    "rotate_refresh_token",
    "start_refresh_family",
    "verify_access_token",
    "verify_client_assertion",
]

# RFC 9068 §2.1: the "typ" that tells an access token from any other JWT (not a secret).
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_TTL = 600
MAX_TTL = 3600
MAX_LEEWAY = 30
MAX_ASSERTION_LIFETIME = 300  # SMART: an assertion's exp is at most five minutes ahead
_MAX_INT_DATE = 2**53 - 1
_MAX_ID = 256
_REFRESH = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def _refuse(what: str, reason: str, problem: str, **details: Any) -> TokenInvalid:
    return TokenInvalid(f"{what} refused: {problem}", reason=reason, **details)


def _text(value: Any, name: str) -> str:
    """Return ``value`` if it is a non-empty string of sane length; else ``InputError``."""
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        raise InputError(
            f"{name} must be a non-empty string",
            field=name,
            value=value,
            expected=f"a string of 1 to {_MAX_ID} characters",
        )
    return value


def _now(now: float) -> int:
    """Return ``now`` (seconds since the epoch) as an integer; ``InputError`` if not finite."""
    if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
        raise InputError("now must be a finite number", field="now", value=str(now))
    return int(now)


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


def _bounded_int(value: Any, name: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise InputError(
            f"{name} is out of range",
            field=name,
            value=value,
            expected=f"an integer from {low} to {high}",
        )
    return value


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
        return out


_REQUIRED = ("iss", "sub", "inst", "roles", "scope", "aud", "iat", "nbf", "exp", "jti")
_CLAIMS = frozenset((*_REQUIRED, "client_id"))


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
    ttl: int | None = None,
) -> IssuedToken:
    """Sign an access token for ``subject`` of ``institution``.

    ``scope`` must parse as SMART scopes (``InputError`` otherwise); ``ttl`` overrides the
    policy's lifetime (1 to 3600 s). Raise ``InputError`` if ``key`` cannot sign.
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
    (``not-yet-valid``); the revocation list (``revoked``).
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
    _check_claims(
        claims.to_json(),
        what,
        now=at,
        leeway=policy.leeway,
        iss={"essential": True, "value": policy.issuer},
        aud={"essential": True, "value": policy.audience},
    )
    if revocations.is_revoked(claims.jti):
        raise _refuse(what, "revoked", "the token was revoked")
    return claims


def revoke_access_token(revocations: Revocations, claims: TokenClaims) -> None:
    """Revoke the token with these claims until it would have expired anyway."""
    revocations.revoke(claims.jti, claims.exp + MAX_LEEWAY)


def _extract(raw: bytes, registry: Any, what: str) -> jws.CompactSignature:
    try:
        obj = jws.extract_compact(raw, registry=registry)
    except (JoseError, TypeError, ValueError):
        raise _refuse(what, "malformed", "cannot decode the JWS") from None
    if not isinstance(obj.protected, dict):
        raise _refuse(what, "malformed", "the header is not a JSON object")
    return obj


def _b64(segment: bytes) -> bytes | None:
    try:
        return urlsafe_b64decode(segment)
    except (TypeError, ValueError):
        return None


def _payload(payload: bytes, what: str) -> dict[str, Any]:
    try:
        return parse_json_object(payload, field="claims", error=MalformedDocument)
    except MalformedDocument:
        raise _refuse(what, "malformed", "the claims are not a JSON object") from None


def _access_claims(obj: dict[str, Any]) -> TokenClaims:
    """Build ``TokenClaims`` from a signed claims set; ``malformed`` if a claim is amiss."""
    missing = [n for n in _REQUIRED if n not in obj]
    extra = sorted(set(obj) - _CLAIMS)
    if missing or extra:
        raise _refuse(
            "access token", "malformed", "unexpected claims", missing=missing, unexpected=extra
        )
    strings = ("iss", "sub", "inst", "scope", "aud", "jti")
    client_id = obj.get("client_id")
    roles = obj["roles"]
    ok = (
        all(isinstance(obj[n], str) for n in strings)
        and all(_int_date(obj[n]) for n in ("iat", "nbf", "exp"))
        and isinstance(roles, list)
        and all(isinstance(r, str) for r in roles)
        and (client_id is None or isinstance(client_id, str))
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
    )


def _int_date(value: Any) -> bool:
    return type(value) is int and 0 <= value <= _MAX_INT_DATE


def _numeric_date(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return _int_date(value) or (isinstance(value, float) and math.isfinite(value))


_CLAIM_REASONS = {
    "iss": "wrong-issuer",
    "sub": "wrong-issuer",
    "aud": "wrong-audience",
    "nbf": "not-yet-valid",
    "iat": "not-yet-valid",
}


def _check_claims(
    claims: dict[str, Any], what: str, *, now: int, leeway: int, **options: ClaimsOption
) -> None:
    """Run joserfc's registered-claims checks; map each failure to a ``TokenInvalid`` reason."""
    for name in ("exp", "nbf", "iat"):
        if name in claims and not _numeric_date(claims[name]):
            raise _refuse(what, "malformed", f"claim {name} is not a NumericDate")
    try:
        JWTClaimsRegistry(now=now, leeway=leeway, **options).validate(claims)
    except ExpiredTokenError:
        raise _refuse(what, "expired", "the token has expired") from None
    except MissingClaimError as e:
        raise _refuse(what, "malformed", "a required claim is missing", claim=e.claim) from None
    except ClaimError as e:
        reason = _CLAIM_REASONS.get(e.claim, "malformed")
        raise _refuse(what, reason, f"claim {e.claim} is not acceptable", claim=e.claim) from None


# -- revocation ----------------------------------------------------------------------------------


class Revocations(Protocol):
    """Revoked access token ids; ``verify_access_token`` asks on every call."""

    def is_revoked(self, jti: str) -> bool:
        """Return True if the token with this ``jti`` was revoked."""
        ...

    def revoke(self, jti: str, until: int) -> None:
        """Revoke ``jti``; the entry may be forgotten after ``until`` (epoch seconds)."""
        ...


class MemoryRevocations:
    """An in-process ``Revocations`` (tests, single-process deployments)."""

    def __init__(self) -> None:
        """Start with nothing revoked."""
        self._until: dict[str, int] = {}
        self._lock = threading.Lock()

    def is_revoked(self, jti: str) -> bool:
        """Return True if ``jti`` was revoked."""
        with self._lock:
            return jti in self._until

    def revoke(self, jti: str, until: int) -> None:
        """Revoke ``jti`` until ``until``."""
        with self._lock:
            self._until[jti] = max(until, self._until.get(jti, until))

    def prune(self, now: float) -> int:
        """Forget entries whose tokens have expired; return how many."""
        with self._lock:
            gone = [j for j, until in self._until.items() if until < now]
            for j in gone:
                del self._until[j]
            return len(gone)


# -- refresh tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshRecord:
    """One refresh token as stored: its hash (never the token), its family and its life."""

    token_hash: str
    family_id: str
    subject: str
    institution: str
    client_id: str | None
    scope: str
    issued_at: int
    expires_at: int
    family_expires_at: int
    used_at: int | None = None


class RefreshStore(Protocol):
    """Where refresh tokens live. ``mark_used`` must be atomic (compare-and-set)."""

    def add(self, record: RefreshRecord) -> None:
        """Store a new, unused record."""
        ...

    def find(self, token_hash: str) -> RefreshRecord | None:
        """Return the record with this hash, or None."""
        ...

    def mark_used(self, token_hash: str, at: int) -> bool:
        """Set ``used_at`` if it is unset and return True; return False if it was already set."""
        ...

    def revoke_family(self, family_id: str, at: int) -> None:
        """Revoke every token of the family, including any added later."""
        ...

    def family_revoked(self, family_id: str) -> bool:
        """Return True if the family was revoked."""
        ...


class MemoryRefreshStore:
    """An in-process ``RefreshStore``."""

    def __init__(self) -> None:
        """Start empty."""
        self._records: dict[str, RefreshRecord] = {}
        self._revoked: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, record: RefreshRecord) -> None:
        """Store ``record``."""
        with self._lock:
            self._records[record.token_hash] = record

    def find(self, token_hash: str) -> RefreshRecord | None:
        """Return the record with this hash, or None."""
        with self._lock:
            return self._records.get(token_hash)

    def mark_used(self, token_hash: str, at: int) -> bool:
        """Mark the record used unless it already was."""
        with self._lock:
            rec = self._records.get(token_hash)
            if rec is None or rec.used_at is not None:
                return False
            self._records[token_hash] = replace(rec, used_at=at)
            return True

    def revoke_family(self, family_id: str, at: int) -> None:
        """Revoke the family."""
        with self._lock:
            self._revoked.setdefault(family_id, at)

    def family_revoked(self, family_id: str) -> bool:
        """Return True if the family was revoked."""
        with self._lock:
            return family_id in self._revoked


@dataclass(frozen=True)
class RefreshPolicy:
    """Refresh token lifetimes: each token's (``ttl``, default 12 h) and the family's absolute
    lifetime from sign-in (``family_ttl``, default 7 days; rotation never extends it)."""

    ttl: int = 12 * 3600
    family_ttl: int = 7 * 24 * 3600

    def __post_init__(self) -> None:
        """Check the lifetimes."""
        _bounded_int(self.ttl, "ttl", 60, 30 * 24 * 3600)
        _bounded_int(self.family_ttl, "family_ttl", self.ttl, 365 * 24 * 3600)


@dataclass(frozen=True)
class RefreshGrant:
    """A new refresh token (kept out of ``repr``) and its stored record."""

    refresh_token: str = field(repr=False)
    record: RefreshRecord


def refresh_token_hash(token: str) -> str:
    """Return the hex SHA-256 of a refresh token: the only form in which it is stored.

    The token is 256 random bits, so a plain hash is enough (no salt or slow hash needed).
    """
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _new_refresh(template: RefreshRecord, now: int, policy: RefreshPolicy) -> RefreshGrant:
    token = secrets.token_urlsafe(32)
    record = replace(
        template,
        token_hash=refresh_token_hash(token),
        issued_at=now,
        expires_at=min(now + policy.ttl, template.family_expires_at),
        used_at=None,
    )
    return RefreshGrant(token, record)


def start_refresh_family(
    store: RefreshStore,
    policy: RefreshPolicy,
    *,
    subject: str,
    institution: str,
    client_id: str | None,
    scope: str,
    now: float,
) -> RefreshGrant:
    """Start a new family (one sign-in) and return its first refresh token."""
    at = _now(now)
    template = RefreshRecord(
        token_hash="",
        family_id=secrets.token_urlsafe(16),
        subject=_text(subject, "subject"),
        institution=_text(institution, "institution"),
        client_id=None if client_id is None else _text(client_id, "client_id"),
        scope=" ".join(s.text for s in parse_scopes(scope)),
        issued_at=at,
        expires_at=at,
        family_expires_at=at + policy.family_ttl,
    )
    grant = _new_refresh(template, at, policy)
    store.add(grant.record)
    return grant


def rotate_refresh_token(
    store: RefreshStore,
    policy: RefreshPolicy,
    token: str,
    *,
    client_id: str | None,
    now: float,
) -> RefreshGrant:
    """Spend ``token`` and return its successor in the same family.

    Refused (``TokenInvalid``) if it is not a refresh token (``malformed``), unknown
    (``unknown``), of a revoked family (``revoked``), issued to another client
    (``wrong-client``, and the family is revoked), already used (``replayed``: the family is
    revoked, so the thief's and the victim's copies both stop working) or expired
    (``expired``). Two concurrent rotations of one token: one wins, the other is a replay.
    """
    what = "refresh token"
    at = _now(now)
    if not isinstance(token, str) or not _REFRESH.fullmatch(token):
        raise _refuse(what, "malformed", "not a refresh token")
    token_hash = refresh_token_hash(token)
    rec = store.find(token_hash)
    if rec is None:
        raise _refuse(what, "unknown", "no such refresh token")
    if store.family_revoked(rec.family_id):
        raise _refuse(what, "revoked", "the sign-in was revoked")
    if rec.client_id != client_id:
        store.revoke_family(rec.family_id, at)
        raise _refuse(what, "wrong-client", "issued to another client; the sign-in is revoked")
    replayed = _refuse(what, "replayed", "already used; the sign-in is revoked")
    if rec.used_at is not None:
        store.revoke_family(rec.family_id, at)
        raise replayed
    if at >= rec.expires_at or at >= rec.family_expires_at:
        raise _refuse(what, "expired", "the refresh token has expired")
    if not store.mark_used(token_hash, at):  # a concurrent rotation of the same token won
        store.revoke_family(rec.family_id, at)
        raise replayed
    grant = _new_refresh(rec, at, policy)
    store.add(grant.record)
    if store.family_revoked(rec.family_id):  # revoked while we rotated: the new one is dead too
        raise _refuse(what, "revoked", "the sign-in was revoked")
    return grant


def revoke_refresh_token(store: RefreshStore, token: str, *, now: float) -> bool:
    """Revoke the family of ``token`` (sign-out); return False if the token is unknown.

    RFC 7009 answers success either way, so callers need not tell the two apart.
    """
    if not isinstance(token, str) or not _REFRESH.fullmatch(token):
        return False
    rec = store.find(refresh_token_hash(token))
    if rec is None:
        return False
    store.revoke_family(rec.family_id, _now(now))
    return True


# -- client assertions ---------------------------------------------------------------------------


class SeenJtis(Protocol):
    """Assertion ids already accepted, per client, so an assertion works once."""

    def remember(self, client_id: str, jti: str, until: int) -> bool:
        """Record ``jti`` for ``client_id`` until ``until``; return False if already recorded."""
        ...


class MemorySeenJtis:
    """An in-process ``SeenJtis``; entries are dropped once their assertion has expired."""

    def __init__(self) -> None:
        """Start empty."""
        self._until: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def remember(self, client_id: str, jti: str, until: int) -> bool:
        """Record the pair unless it is already there."""
        with self._lock:
            k = (client_id, jti)
            if k in self._until:
                return False
            self._until[k] = until
            return True

    def prune(self, now: float) -> int:
        """Forget the ids of assertions that have expired; return how many."""
        with self._lock:
            gone = [k for k, until in self._until.items() if until < now]
            for k in gone:
                del self._until[k]
            return len(gone)


@dataclass(frozen=True)
class ClientAssertion:
    """What a verified client assertion told us."""

    client_id: str
    jti: str
    exp: float
    alg: str
    kid: str | None


@dataclass(frozen=True)
class _ClientKey:
    """A client's registered key, loaded: a joserfc key, or an sm-v1 key for ``SM2SM3``."""

    key: Any
    kid: str | None
    sm2: bool


def _client_key(public_jwk: Any) -> _ClientKey:
    """Load a client's registered public JWK; ``InputError`` if it is not a usable one."""
    expected = "a public JWK: OKP Ed25519, EC P-256, P-384 or SM2, or RSA of at least 2048 bits"
    kty = public_jwk.get("kty") if isinstance(public_jwk, dict) else None

    def bad(problem: str) -> InputError:
        return InputError(
            f"client key: {problem}", field="public_jwk", value=kty, expected=expected
        )

    if kty not in ("OKP", "EC", "RSA"):
        raise bad("unsupported key type")
    if any(p in public_jwk for p in ("d", "p", "q", "dp", "dq", "qi", "oth", "k")):
        raise bad("holds private key material; register the public key only")
    kid = public_jwk.get("kid")
    kid = kid if isinstance(kid, str) else None
    if kty == "EC" and public_jwk.get("crv") == "SM2":
        try:
            return _ClientKey(_sm2_key(public_jwk), kid, sm2=True)
        except (MalformedDocument, ValueError, TypeError):
            raise bad("not a valid SM2 public key") from None
    if kty == "RSA" and _rsa_bits(public_jwk.get("n")) < 2048:  # before joserfc warns about it
        raise bad("not an RSA modulus of at least 2048 bits")
    try:
        return _ClientKey(jwk.import_key(public_jwk), kid, sm2=False)
    except (JoseError, ValueError, TypeError, KeyError):
        raise bad("cannot be imported") from None


def _sm2_key(public_jwk: dict[str, Any]) -> VerifyKey:
    """Load ``{"kty": "EC", "crv": "SM2", "x", "y"}`` as an sm-v1 verify key."""
    x, y = public_jwk.get("x"), public_jwk.get("y")
    if not (isinstance(x, str) and isinstance(y, str) and x.isascii() and y.isascii()):
        raise ValueError("x and y must be base64url strings")
    point = b"\x04" + urlsafe_b64decode(x.encode()) + urlsafe_b64decode(y.encode())
    return get_suite("sm-v1").load_verify_key(point)


def _rsa_bits(n: Any) -> int:
    """Return the bit length of the base64url modulus ``n``, or 0 if it is not one."""
    raw = _b64(n.encode("ascii")) if isinstance(n, str) and n.isascii() else None
    return int.from_bytes(raw, "big").bit_length() if raw else 0


def verify_client_assertion(
    assertion: str,
    *,
    client_id: str,
    public_jwk: dict[str, Any],
    token_endpoint_url: str,
    now: float,
    seen_jti: SeenJtis,
    leeway: int = MAX_LEEWAY,
    algorithms: tuple[str, ...] = CLIENT_ASSERTION_ALGS,
) -> ClientAssertion:
    """Check a private-key JWT client assertion (RFC 7523 §3, SMART backend services).

    ``public_jwk`` is the client's registered key: OKP Ed25519, EC P-256/P-384, RSA (2048 bits
    or more), or ``{"kty": "EC", "crv": "SM2"}``, which only ``SM2SM3`` fits (see ``jose_sm2``).

    Requires: an ``alg`` from ``algorithms`` that fits the client's key (``alg-not-allowed``,
    checked before the signature); a matching ``kid`` if both carry one (``wrong-key``); a
    valid signature (``bad-signature``); ``iss`` = ``sub`` = ``client_id`` (``wrong-issuer``);
    ``aud`` naming ``token_endpoint_url`` (``wrong-audience``); ``exp`` in the future
    (``expired``) but at most five minutes ahead (``lifetime-too-long``); ``nbf``/``iat`` not
    in the future (``not-yet-valid``); a ``jti`` never seen before for this client
    (``replayed``), which is then remembered until ``exp``.
    """
    what = "client assertion"
    at = _now(now)
    _bounded_int(leeway, "leeway", 0, MAX_LEEWAY)
    key = _client_key(public_jwk)
    raw = check_compact(assertion, what)
    if not set(algorithms) <= set(CLIENT_ASSERTION_ALGS):
        raise InputError("unsupported assertion algorithm", field="algorithms", value=algorithms)
    registry = ClientAssertionRegistry.allowing(algorithms)
    obj = _extract(raw, registry, what)
    header = obj.protected
    alg = header.get("alg")
    if alg not in algorithms:
        raise _refuse(what, "alg-not-allowed", "algorithm not accepted", allowed=list(algorithms))
    kid = header.get("kid")
    if kid is not None and key.kid is not None and kid != key.kid:
        raise _refuse(what, "wrong-key", "signed with another key than the registered one")
    try:
        registry.check_header(header)
    except (JoseError, TypeError, ValueError):
        raise _refuse(what, "malformed", "unexpected header fields") from None
    model = registry.get_alg(str(alg))
    try:
        if key.sm2 != (alg == SM2SM3.name):
            raise InvalidKeyTypeError()
        model.check_key(key.key)
    except (KeyParameterError, InvalidKeyCurveError):
        raise _refuse(what, "alg-not-allowed", f"{alg} does not fit the client's key") from None
    signing_input = obj.segments["header"] + b"." + obj.segments["payload"]
    signature = _b64(obj.segments["signature"])
    if signature is None or not model.verify(signing_input, signature, key.key):
        raise _refuse(what, "bad-signature", "the signature does not verify")
    claims = _payload(obj.payload, what)
    required: ClaimsOption = {"essential": True}
    _check_claims(
        claims,
        what,
        now=at,
        leeway=leeway,
        iss={"essential": True, "value": client_id},
        sub={"essential": True, "value": client_id},
        aud={"essential": True, "value": token_endpoint_url},
        exp=required,
        jti=required,
    )
    jti, exp = claims["jti"], claims["exp"]
    if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_ID:
        raise _refuse(what, "malformed", "jti must be a string of 1 to 256 characters")
    if exp > at + MAX_ASSERTION_LIFETIME + leeway:
        raise _refuse(what, "lifetime-too-long", "exp is more than five minutes ahead")
    if not seen_jti.remember(client_id, jti, math.ceil(exp) + leeway):
        raise _refuse(what, "replayed", "this assertion was already used")
    return ClientAssertion(client_id, jti, exp, str(alg), kid if isinstance(kid, str) else None)
