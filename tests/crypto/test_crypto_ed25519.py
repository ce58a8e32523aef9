"""Ed25519 (suite intl-v1): RFC 8032 §7.1 test vectors and rejection of forgeries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto import get_suite
from medledger.errors import MalformedDocument

# RFC 8032 §7.1: (name, secret key, public key, message, signature), all hex.
RFC8032 = [
    (
        "TEST 1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555f"
        "b8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "TEST 2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da08"
        "5ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "TEST 3",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18"
        "ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        "TEST SHA(abc)",
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
        "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
]
IDS = [v[0] for v in RFC8032]


@pytest.mark.parametrize(("name", "secret", "public", "message", "signature"), RFC8032, ids=IDS)
def test_rfc8032_sign_reproduces_signature(
    name: str, secret: str, public: str, message: str, signature: str
) -> None:
    """RFC 8032 §7.1: the seed gives the published public key and exactly the published sig."""
    key = get_suite("intl-v1").load_signing_key(bytes.fromhex(secret))
    assert key.public_bytes.hex() == public
    assert key.private_bytes().hex() == secret
    assert key.sign(bytes.fromhex(message)).hex() == signature


@pytest.mark.parametrize(("name", "secret", "public", "message", "signature"), RFC8032, ids=IDS)
def test_rfc8032_verify_accepts_and_rejects_flips(
    name: str, secret: str, public: str, message: str, signature: str
) -> None:
    """RFC 8032 §7.1: the published signature verifies; flipped bits in it or the message do not."""
    vk = get_suite("intl-v1").load_verify_key(bytes.fromhex(public))
    msg = bytes.fromhex(message)
    sig = bytes.fromhex(signature)
    assert vk.verify(sig, msg)
    for i in (0, 31, 32, 63):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        assert not vk.verify(bytes(bad), msg)
    assert not vk.verify(sig, msg + b"\x00")
    if msg:
        assert not vk.verify(sig, bytes([msg[0] ^ 0x80]) + msg[1:])


def test_round_trip_and_wrong_key() -> None:
    """A fresh key's signature verifies under its public key and not under another key."""
    suite = get_suite("intl-v1")
    key = suite.generate_signing_key()
    sig = key.sign(b"entry")
    assert len(sig) == 64
    assert len(key.public_bytes) == 32
    assert key.verify_key().verify(sig, b"entry")
    assert not suite.generate_signing_key().verify_key().verify(sig, b"entry")
    assert suite.load_signing_key(key.private_bytes()).public_bytes == key.public_bytes


def test_non_canonical_s_is_rejected() -> None:
    """RFC 8032 §5.1.7: a signature with S + L (same value mod L) is refused (no malleability)."""
    ell = 2**252 + 27742317777372353535851937790883648493
    _, _secret, public, message, signature = RFC8032[0]
    sig = bytes.fromhex(signature)
    s = int.from_bytes(sig[32:], "little") + ell
    forged = sig[:32] + s.to_bytes(32, "little")
    vk = get_suite("intl-v1").load_verify_key(bytes.fromhex(public))
    assert not vk.verify(forged, bytes.fromhex(message))


@settings(max_examples=50, deadline=None)
@given(sig=st.binary(max_size=80), message=st.binary(max_size=64))
def test_garbage_signatures_return_false(sig: bytes, message: bytes) -> None:
    """Arbitrary bytes as a signature give False, never an exception."""
    vk = get_suite("intl-v1").load_verify_key(bytes.fromhex(RFC8032[0][2]))
    assert vk.verify(sig, message) is False


@pytest.mark.parametrize(
    "public",
    [b"", bytes(31), bytes(33), bytes(32), (1).to_bytes(32, "little")],
    ids=["empty", "short", "long", "zero-small-order", "identity"],
)
def test_bad_public_keys_are_malformed(public: bytes) -> None:
    """Wrong sizes and small-order points raise MalformedDocument naming public_key."""
    with pytest.raises(MalformedDocument) as info:
        get_suite("intl-v1").load_verify_key(public)
    assert info.value.field == "public_key"


def test_bad_seed_size_is_malformed() -> None:
    """A seed that is not 32 bytes raises MalformedDocument."""
    with pytest.raises(MalformedDocument):
        get_suite("intl-v1").load_signing_key(bytes(16))
