"""RFC 6962 hashing, the suite registry and strict hex decoding."""

from __future__ import annotations

import pytest

from medledger.crypto import SUITES, MerkleHasher, from_hex, get_suite
from medledger.crypto.suite import Suite
from medledger.errors import MalformedDocument, UnknownSuite

# Reference inputs and tree heads from the Certificate Transparency project's RFC 6962 tests
# (google/certificate-transparency, merkle_tree_test.cc), used by many independent logs.
CT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _mth(h: MerkleHasher, leaves: list[bytes]) -> bytes:
    """Return MTH(D[n]) exactly as RFC 6962 §2.1 defines it (split at the largest 2^k < n)."""
    if not leaves:
        return h.empty_root()
    if len(leaves) == 1:
        return h.leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return h.node_hash(_mth(h, leaves[:k]), _mth(h, leaves[k:]))


@pytest.mark.parametrize("size", range(9))
def test_rfc6962_reference_roots(size: int) -> None:
    """CT reference tree heads (RFC 6962 §2.1 with SHA-256) for sizes 0 to 8."""
    h = MerkleHasher(get_suite("intl-v1").hash)
    leaves = [bytes.fromhex(x) for x in CT_LEAVES[:size]]
    assert _mth(h, leaves).hex() == CT_ROOTS[size]


@pytest.mark.parametrize("name", SUITES)
def test_merkle_hasher_prefixes(name: str) -> None:
    """Leaves hash as H(0x00 ‖ d), nodes as H(0x01 ‖ l ‖ r), the empty tree as H("")."""
    suite = get_suite(name)
    h = MerkleHasher(suite.hash)
    assert h.digest_size == 32
    assert h.empty_root() == suite.hash(b"")
    assert h.leaf_hash(b"abc") == suite.hash(b"\x00abc")
    left, right = suite.hash(b"l"), suite.hash(b"r")
    assert h.node_hash(left, right) == suite.hash(b"\x01" + left + right)
    # A leaf whose data looks like two child hashes must not collide with their parent.
    assert h.leaf_hash(left + right) != h.node_hash(left, right)


def test_get_suite_returns_singletons() -> None:
    """get_suite returns one shared instance per name, with the documented attributes."""
    expected = {
        "intl-v1": ("sha256", "ed25519", "aes-256-gcm", 32),
        "sm-v1": ("sm3", "sm2-sm3", "sm4-gcm", 16),
    }
    assert SUITES == ("intl-v1", "sm-v1")
    for name in SUITES:
        suite: Suite = get_suite(name)
        assert get_suite(name) is suite
        assert suite.name == name
        assert (suite.hash_name, suite.sig_alg, suite.aead_name, suite.aead_key_size) == expected[
            name
        ]
        assert suite.digest_size == 32


@pytest.mark.parametrize("name", ["", "intl-v2", "SM-V1", "sha256"])
def test_get_suite_unknown(name: str) -> None:
    """An unknown name raises UnknownSuite naming field, value and the known suites."""
    with pytest.raises(UnknownSuite) as info:
        get_suite(name)
    assert info.value.field == "suite"
    assert info.value.value == name
    assert info.value.expected == "one of intl-v1, sm-v1"


def test_from_hex_accepts_lowercase() -> None:
    """Lowercase hex decodes, with or without a size."""
    assert from_hex("00ff10", field="f") == b"\x00\xff\x10"
    assert from_hex("", field="f") == b""
    assert from_hex("abcd", field="f", size=2) == b"\xab\xcd"


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("ABCD", None),
        ("abc", None),
        ("ab cd", None),
        ("0x00", None),
        ("abcd", 3),
        (None, 2),
        (b"ab", None),
        ("ab\n", None),
    ],
)
def test_from_hex_rejects(value: object, size: int | None) -> None:
    """Upper case, odd length, whitespace, prefixes, wrong sizes and non-strings are refused."""
    with pytest.raises(MalformedDocument) as info:
        from_hex(value, field="cert.root", size=size)
    assert info.value.field == "cert.root"
    assert info.value.expected == (f"{size}-byte lowercase hex" if size else "lowercase hex")


def test_public_api_is_pinned() -> None:
    """medledger.crypto exports exactly this API; changing it must be deliberate."""
    import medledger.crypto as crypto

    assert sorted(crypto.__all__) == sorted(
        [
            "SIGNING_KEY_FORMAT",
            "SUITES",
            "TRUST_BUNDLE_FORMAT",
            "Aead",
            "HashFn",
            "MerkleHasher",
            "SigningKey",
            "Suite",
            "TrustBundle",
            "TrustedKey",
            "VerifyKey",
            "canonical_bytes",
            "from_hex",
            "get_suite",
            "key_id",
            "load_trust_bundle",
            "parse_json_object",
            "read_signing_key",
            "write_signing_key",
        ]
    )
    assert all(hasattr(crypto, name) for name in crypto.__all__)
