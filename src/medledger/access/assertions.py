"""Private-key JWT client assertions (issue 4, "Tokens").

**Client assertions** (RFC 7523, SMART backend services) are checked by
``verify_client_assertion`` against the client's registered public JWK. A store of the ids
already accepted (``SeenJtis``; in memory, ``MemorySeenJtis``) makes each assertion work once.

Every refusal is ``TokenInvalid`` with a one-word ``reason``; no error or log holds a token.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from joserfc import jwk
from joserfc.errors import InvalidKeyCurveError, InvalidKeyTypeError, JoseError, KeyParameterError
from joserfc.jwt import ClaimsOption
from joserfc.util import urlsafe_b64decode

from medledger.access._jwt import (
    _MAX_ID,
    _b64,
    _bounded_int,
    _check_claims,
    _extract,
    _now,
    _payload,
    _refuse,
)
from medledger.access.jose_sm2 import (
    CLIENT_ASSERTION_ALGS,
    SM2SM3,
    ClientAssertionRegistry,
    check_compact,
)
from medledger.access.tokens import MAX_LEEWAY
from medledger.crypto.registry import get_suite
from medledger.crypto.suite import VerifyKey
from medledger.errors import InputError, MalformedDocument

__all__ = [
    "CLIENT_ASSERTION_ALGS",
    "CLIENT_ASSERTION_TYPE",
    "MAX_ASSERTION_LIFETIME",
    "ClientAssertion",
    "MemorySeenJtis",
    "SeenJtis",
    "verify_client_assertion",
]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300  # SMART: an assertion's exp is at most five minutes ahead


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
