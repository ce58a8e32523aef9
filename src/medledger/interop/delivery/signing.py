"""Signatures on rest-hook deliveries, so a subscriber can check that MedLedger sent the body.

Every rest-hook POST carries three headers. With the secret ``whsec-demo`` (ASCII), the body
``{"resourceType":"Bundle"}`` and the time 1795400000 they read (the signature header is one
line on the wire; it is wrapped here)::

    X-MedLedger-Signature: t=1795400000,
        v1=f71b899a44bb8512797818e663085d29c987f433cdba2ff0509b816f15c4e686
    X-MedLedger-Delivery: <idempotency key>
    Idempotency-Key: <the same idempotency key>

How a subscriber verifies a request:

1. Split the ``X-MedLedger-Signature`` value on ``,``; each element is ``name=value``. ``t`` is
   the signing time in Unix seconds (exactly one ``t``); each ``v1`` is a signature. Ignore
   other names (a later scheme may add ``v2``).
2. Build the signed bytes: the ASCII decimal digits of ``t``, a full stop, then the raw request
   body exactly as received (before any JSON parsing): ``f"{t}.".encode() + body``.
3. Compute HMAC-SHA256 over those bytes with the shared secret (the raw secret bytes) and
   hex-encode it in lower case.
4. Accept if it equals *any* ``v1`` value (compare in constant time) and ``t`` is within the
   tolerance of your clock (300 s by default), which stops replays of old requests.

While a secret is being rotated, the sender signs with the old and the new secret and sends one
``v1`` per secret; the subscriber accepts whichever it knows. Duplicate deliveries (after a lost
response) carry the same idempotency key: process each key once.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from medledger.errors import InputError

__all__ = [
    "DELIVERY_HEADER",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "delivery_headers",
    "sign",
    "sign_all",
    "verify",
]

SIGNATURE_HEADER = "X-MedLedger-Signature"
DELIVERY_HEADER = "X-MedLedger-Delivery"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_SCHEME = "v1"
_HEX_LEN = 64
_MAX_T = 10**12 - 1  # twelve digits of Unix seconds: beyond the year 33000


def sign(secret: bytes, body: bytes, t: int) -> str:
    """Return the signature header value ``t=<t>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    return sign_all([secret], body, t)


def sign_all(secrets: Sequence[bytes], body: bytes, t: int) -> str:
    """Return a header value with one ``v1`` per secret (for rotation), in the order given."""
    if isinstance(secrets, (bytes, bytearray)) or not secrets:
        raise InputError(
            "signing needs a list of secrets",
            field="secrets",
            value=type(secrets).__name__,
            expected="a non-empty sequence of byte strings",
        )
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= _MAX_T:
        raise InputError(
            "signing time must be Unix seconds",
            field="t",
            value=t,
            expected=f"an integer from 0 to {_MAX_T}",
        )
    if not isinstance(body, (bytes, bytearray)):
        raise InputError(
            "signed body must be bytes", field="body", value=type(body).__name__, expected="bytes"
        )
    sigs = [f"{_SCHEME}={_mac(_secret(s), bytes(body), t)}" for s in secrets]
    return ",".join([f"t={t}", *sigs])


def verify(
    secret: bytes | Sequence[bytes],
    body: bytes,
    header: str,
    *,
    now: float,
    tolerance: float = 300,
) -> bool:
    """Return whether ``header`` signs ``body`` with ``secret`` (or any of several secrets).

    False when the header is malformed, has no matching ``v1``, or its ``t`` is more than
    ``tolerance`` seconds from ``now`` either way.
    """
    secrets = [secret] if isinstance(secret, (bytes, bytearray)) else list(secret)
    if not isinstance(header, str) or not isinstance(body, (bytes, bytearray)) or not secrets:
        return False
    t: int | None = None
    candidates: list[str] = []
    for element in header.split(","):
        name, sep, value = element.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            if t is not None or not (value.isascii() and value.isdigit()) or len(value) > 12:
                return False
            t = int(value)
        elif name == _SCHEME:
            candidates.append(value.strip().lower())
    if t is None or not candidates or abs(now - t) > tolerance:
        return False
    expected = [_mac(_secret(s), bytes(body), t) for s in secrets]
    matched = False
    for candidate in candidates:
        if len(candidate) != _HEX_LEN:
            continue
        for mac in expected:
            # No early exit: the time taken does not depend on which one matched.
            matched |= hmac.compare_digest(candidate.encode(), mac.encode())
    return matched


def delivery_headers(
    key: str, secrets: Sequence[bytes], body: bytes, t: int, content_type: str
) -> dict[str, str]:
    """Return the headers of one signed rest-hook POST (see the module docstring)."""
    return {
        "Content-Type": content_type,
        SIGNATURE_HEADER: sign_all(secrets, body, t),
        DELIVERY_HEADER: key,
        IDEMPOTENCY_HEADER: key,
    }


def _mac(secret: bytes, body: bytes, t: int) -> str:
    return hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def _secret(secret: bytes) -> bytes:
    if not isinstance(secret, (bytes, bytearray)) or not secret:
        raise InputError(
            "a signing secret must be non-empty bytes",
            field="secret",
            value=type(secret).__name__,
            expected="non-empty bytes",
        )
    return bytes(secret)
