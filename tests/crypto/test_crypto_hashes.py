"""Known-answer tests for the suite hashes: SHA-256 (FIPS 180-4) and SM3 (GB/T 32905-2016)."""

from __future__ import annotations

import pytest

from medledger.crypto import get_suite
from medledger.crypto import sm as sm_module


@pytest.mark.parametrize(
    ("message", "digest"),
    [
        (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
    ],
)
def test_sha256_known_answers(message: bytes, digest: str) -> None:
    """FIPS 180-4 / NIST CSRC SHA-256 examples: empty string, "abc" and the 448-bit message."""
    assert get_suite("intl-v1").hash(message).hex() == digest


SM3_VECTORS = [
    (b"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
    (b"abcd" * 16, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
]


@pytest.mark.parametrize(("message", "digest"), SM3_VECTORS)
def test_sm3_known_answers(message: bytes, digest: str) -> None:
    """GB/T 32905-2016 Annex A examples 1 and 2: "abc" and the 512-bit "abcd" x 16."""
    assert get_suite("sm-v1").hash(message).hex() == digest


@pytest.mark.parametrize(("message", "digest"), SM3_VECTORS)
def test_sm3_tongsuo_fallback_known_answers(
    monkeypatch: pytest.MonkeyPatch, message: bytes, digest: str
) -> None:
    """GB/T 32905-2016 Annex A: the tongsuopy fallback (no hashlib SM3) gives the same digests."""
    monkeypatch.setattr(sm_module.hashlib, "algorithms_available", frozenset())
    fallback = sm_module._pick_sm3()
    assert fallback.__name__ == "sm3_tongsuo"
    assert fallback(message).hex() == digest


def test_hash_is_a_plain_one_shot_callable() -> None:
    """Each suite's ``hash`` is a bytes -> 32-byte digest function, reused across calls."""
    for name in ("intl-v1", "sm-v1"):
        suite = get_suite(name)
        assert suite.hash is suite.hash
        assert len(suite.hash(b"x" * 1000)) == suite.digest_size == 32
        assert suite.hash(b"a") != suite.hash(b"b")


def test_sm3_copy_trick_does_not_leak_state() -> None:
    """Successive SM3 calls are independent: the shared base context is never updated."""
    h = get_suite("sm-v1").hash
    assert h.__name__ == "sm3_hashlib"  # this Python's OpenSSL has SM3, so the fast path is used
    first = h(b"abc")
    h(b"something else entirely")
    assert h(b"abc") == first
    assert h(bytearray(b"abc")) == first
