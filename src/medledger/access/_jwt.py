"""Private helpers shared by ``tokens`` and ``assertions``: refusals, input checks, JWS parsing.

Every refusal is ``TokenInvalid`` with a one-word ``reason``; no error or log holds a token.
"""

from __future__ import annotations

import math
from typing import Any

from joserfc import jws
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry
from joserfc.util import urlsafe_b64decode

from medledger.crypto.canonical import parse_json_object
from medledger.errors import InputError, MalformedDocument, TokenInvalid

_MAX_INT_DATE = 2**53 - 1
_MAX_ID = 256


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


def _bounded_int(value: Any, name: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise InputError(
            f"{name} is out of range",
            field=name,
            value=value,
            expected=f"an integer from {low} to {high}",
        )
    return value


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
