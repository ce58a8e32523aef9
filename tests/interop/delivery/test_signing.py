"""Rest-hook signatures: golden vectors computed independently, rotation, staleness, tampering."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.errors import InputError
from medledger.interop.delivery import signing
from medledger.interop.delivery.signing import delivery_headers, sign, sign_all, verify

SECRET = b"whsec-demo"
BODY = b'{"resourceType":"Bundle"}'
T = 1_795_400_000


def _independent(secret: bytes, body: bytes, t: int) -> str:
    """The documented recipe, step by step: HMAC-SHA256 over b"<t>." + body, lower-case hex."""
    return hmac.new(secret, str(t).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def test_golden_vector() -> None:
    """sign() equals an HMAC computed independently with hmac + hashlib, in the header format."""
    assert sign(SECRET, BODY, T) == f"t={T},v1={_independent(SECRET, BODY, T)}"


def test_documented_example_is_correct() -> None:
    """The example in the module docstring (what vendors read) is the real signature."""
    doc = signing.__doc__ or ""
    assert f"t={T}," in doc
    assert "v1=f71b899a44bb8512797818e663085d29c987f433cdba2ff0509b816f15c4e686" in doc
    assert _independent(SECRET, BODY, T).startswith("f71b899a44bb")


def test_verify_accepts_within_tolerance_and_rejects_stale_or_future() -> None:
    """verify holds within ±300 s of t and fails outside it, both ways."""
    header = sign(SECRET, BODY, T)
    assert verify(SECRET, BODY, header, now=T)
    assert verify(SECRET, BODY, header, now=T + 300)
    assert verify(SECRET, BODY, header, now=T - 300)
    assert not verify(SECRET, BODY, header, now=T + 301)
    assert not verify(SECRET, BODY, header, now=T - 301)
    assert verify(SECRET, BODY, header, now=T + 1000, tolerance=1000)


def test_rotation_several_v1_values() -> None:
    """A header signed with old and new secrets verifies with either; verify takes several too."""
    old, new = b"old-secret", b"new-secret"
    header = sign_all([old, new], BODY, T)
    assert header.count("v1=") == 2
    assert verify(old, BODY, header, now=T)
    assert verify(new, BODY, header, now=T)
    assert not verify(b"other", BODY, header, now=T)
    assert verify([b"other", new], BODY, sign(new, BODY, T), now=T)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"v1={_independent(SECRET, BODY, T)}",  # no t
        f"t={T}",  # no v1
        f"t={T},t={T},v1={_independent(SECRET, BODY, T)}",  # two t
        f"t=abc,v1={_independent(SECRET, BODY, T)}",
        f"t={T},v1={_independent(SECRET, BODY, T)[:-2]}",  # truncated
        f"t={T},v0={_independent(SECRET, BODY, T)}",  # unknown scheme only
        f"t={T + 1},v1={_independent(SECRET, BODY, T)}",  # t changed after signing
        f"t={'9' * 5000},v1={_independent(SECRET, BODY, T)}",  # absurdly long t
    ],
)
def test_malformed_or_mismatched_headers_fail(header: str) -> None:
    """Malformed headers and signatures over other inputs are rejected, never an exception."""
    assert not verify(SECRET, BODY, header, now=T)


def test_unknown_elements_are_ignored() -> None:
    """A future v2 element beside a valid v1 does not stop verification (forward compatible)."""
    header = sign(SECRET, BODY, T) + ",v2=deadbeef"
    assert verify(SECRET, BODY, header, now=T)


@given(
    secret=st.binary(min_size=1, max_size=64),
    body=st.binary(max_size=512),
    t=st.integers(min_value=0, max_value=10**12 - 1),
    flip=st.integers(min_value=0),
)
def test_sign_verify_round_trip_and_tamper(secret: bytes, body: bytes, t: int, flip: int) -> None:
    """Any body verifies under its own signature; changing any byte or appending one fails."""
    header = sign(secret, body, t)
    assert verify(secret, body, header, now=t)
    appended = body + b"x"
    assert not verify(secret, appended, header, now=t)
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
        assert not verify(secret, tampered, header, now=t)


def test_delivery_headers_carry_key_twice_and_signature() -> None:
    """The POST headers: content type, signature, delivery id and Idempotency-Key (equal)."""
    headers = delivery_headers("dlv-1", [SECRET], BODY, T, "application/fhir+json")
    assert headers["Content-Type"] == "application/fhir+json"
    assert headers["X-MedLedger-Delivery"] == headers["Idempotency-Key"] == "dlv-1"
    assert verify(SECRET, BODY, headers["X-MedLedger-Signature"], now=T)


@pytest.mark.parametrize(
    ("secret", "t", "field"),
    [(b"", T, "secret"), (SECRET, -1, "t"), (SECRET, 1.5, "t"), (SECRET, 10**12, "t")],
)
def test_bad_signing_input_is_an_input_error(secret: bytes, t: int, field: str) -> None:
    """An empty secret or a non-integer or negative time raises InputError naming the field."""
    with pytest.raises(InputError) as info:
        sign(secret, BODY, t)
    assert info.value.field == field
