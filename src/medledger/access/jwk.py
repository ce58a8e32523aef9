"""Public JWKs registered for clients that sign private-key JWT assertions (RFC 7523).

Accepted: OKP Ed25519, EC P-256 / P-384, EC ``SM2`` (for ``sm-v1`` deployments; standard JOSE
libraries do not know this curve, so it is checked here against the SM2 suite), and RSA of at
least 2048 bits. A JWK holding private members (``d``, ``p``, ``q``, ``k`` …) is refused: the
private key stays with the client. The key is stored reduced to its public members plus
``kid``/``alg``/``use``, and identified by its RFC 7638 thumbprint (SHA-256, base64url).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from joserfc.jwk import JWKRegistry

from medledger.crypto.canonical import parse_json_object
from medledger.crypto.registry import get_suite
from medledger.errors import InputError, MalformedDocument

__all__ = ["parse_public_jwk", "thumbprint"]

_REQUIRED = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}
_CURVES = {"OKP": {"Ed25519"}, "EC": {"P-256", "P-384", "SM2"}}
_PRIVATE = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
_OPTIONAL = ("kid", "alg", "use")


def _bad(problem: str, value: Any, expected: str) -> InputError:
    return InputError(f"jwk: {problem}", field="jwk", value=value, expected=expected)


def _b64(value: Any, member: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise _bad(f"member {member} is not a base64url string", member, "base64url text")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise _bad(f"member {member} is not base64url", member, "base64url text") from None


def thumbprint(jwk: dict[str, str]) -> str:
    """Return the RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    members = {k: jwk[k] for k in _REQUIRED[jwk["kty"]]}
    data = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def parse_public_jwk(raw: bytes, where: str = "jwk") -> tuple[dict[str, str], str]:
    """Parse and check one public JWK; return ``(reduced JWK, thumbprint)``."""
    doc = parse_json_object(raw, field=where, error=MalformedDocument)
    kty = doc.get("kty")
    if kty not in _REQUIRED:
        raise _bad(f"unsupported key type {kty!r}", kty, "OKP, EC or RSA (a public key)")
    private = sorted(_PRIVATE & doc.keys())
    if private:
        raise _bad(
            "the JWK holds private key material; register the public key only",
            ", ".join(private),
            "a public JWK (no d, p, q, dp, dq, qi, oth or k)",
        )
    for member in _REQUIRED[kty]:
        if not isinstance(doc.get(member), str):
            raise _bad(f"member {member} is missing", member, f"members {_REQUIRED[kty]}")
    crv = doc.get("crv")
    if kty in _CURVES and crv not in _CURVES[kty]:
        raise _bad(f"unsupported curve {crv!r}", crv, ", ".join(sorted(_CURVES[kty])))
    jwk = {k: str(doc[k]) for k in (*_REQUIRED[kty], *_OPTIONAL) if isinstance(doc.get(k), str)}
    if crv == "SM2":
        x, y = _b64(jwk["x"], "x"), _b64(jwk["y"], "y")
        if len(x) != 32 or len(y) != 32:
            raise _bad("SM2 coordinates must be 32 bytes each", crv, "32-byte x and y")
        get_suite("sm-v1").load_verify_key(b"\x04" + x + y)  # MalformedDocument if off-curve
    else:
        if kty == "RSA" and int.from_bytes(_b64(jwk["n"], "n"), "big").bit_length() < 2048:
            raise _bad("RSA key shorter than 2048 bits", kty, "at least 2048 bits")
        try:
            JWKRegistry.import_key(dict(jwk))
        except (ValueError, TypeError, KeyError) as exc:
            raise _bad(f"not a valid {kty} key: {exc}", kty, "a valid public key") from None
    return jwk, thumbprint(jwk)
