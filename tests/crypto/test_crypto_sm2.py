"""SM2 (suite sm-v1): published examples, the GB/T 32918.2 reference, and rejection of forgeries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto import get_suite
from medledger.crypto.sm import N, SMSuite
from medledger.errors import MalformedDocument
from tests.crypto.sm2_reference import (
    ANNEX_A_FP256,
    DEFAULT_ID,
    SM2P256V1,
    digest_e,
    sign_with_k,
    verify,
    z_value,
)

MESSAGE = b"message digest"

# GB/T 32918.2-2016 Annex A / GM/T 0003.2-2012 Annex A (Fp-256 test curve, ID ALICE123@YAHOO.COM),
# as also given in draft-shen-sm2-ecdsa-02 Appendix A and OpenSSL test/sm2_internal_test.c.
ANNEX_A = {
    "id": b"ALICE123@YAHOO.COM",
    "d": 0x128B2FA8BD433C6C068C8D803DFF79792A519A55171B1B650C23661D15897263,
    "x": 0x0AE4C7798AA0F119471BEE11825BE46202BB79E2A5844495E97C04FF4DF2548A,
    "y": 0x7C0240F88F1CD4E16352A73C17B7F16F07353E53A176D684A9FE0C6BB798E857,
    "z": "F4A38489E32B45B6F876E3AC2168CA392362DC8F23459C1D1146FC3DBFB7BC9A",
    "e": 0xB524F552CD82B8B028476E005C377FB19A87E6FC682D48BB5D42E3D9B9EFFE76,
    "k": 0x6CB28D99385C175C94F94E934817663FC176D925DD72B727260DBAAE1FB2F96F,
    "r": 0x40F1EC59F793D9F49E09DCEF49130D4194F79FB1EED2CAA55BACDB49C4E755D1,
    "s": 0x6FC6DAC32C5D5CF10C77DFB20F7C2EB667A457872FB09EC56327A67EC7DEEBE7,
}

# GM/T 0003.5-2012 Annex A / GB/T 32918.5-2017 Annex A: the recommended curve sm2p256v1 with the
# default id 1234567812345678, as also used in OpenSSL test/sm2_internal_test.c.
RECOMMENDED = {
    "d": 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8,
    "x": 0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020,
    "y": 0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13,
    "z": "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3",
    "e": 0xF0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640,
    "k": 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21,
    "r": 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3,
    "s": 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA,
}


def _point(public_bytes: bytes) -> tuple[int, int]:
    assert len(public_bytes) == 65
    assert public_bytes[0] == 4
    return int.from_bytes(public_bytes[1:33], "big"), int.from_bytes(public_bytes[33:], "big")


def _rs(signature: bytes) -> tuple[int, int]:
    return int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")


def _sig(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.fixture(scope="module")
def suite() -> SMSuite:
    """Return the sm-v1 suite."""
    s = get_suite("sm-v1")
    assert isinstance(s, SMSuite)
    return s


def test_reference_reproduces_annex_a_test_curve_example() -> None:
    """GB/T 32918.2-2016 Annex A (Fp-256, ALICE123@YAHOO.COM): reference gives Z, e, r, s."""
    v = ANNEX_A
    curve = ANNEX_A_FP256
    public = curve.mul(v["d"], curve.g)
    assert public == (v["x"], v["y"])
    assert curve.on_curve(public)
    assert z_value(curve, v["id"], public).hex().upper() == v["z"]
    assert digest_e(curve, v["id"], public, MESSAGE) == v["e"]
    assert sign_with_k(curve, v["id"], v["d"], MESSAGE, v["k"]) == (v["r"], v["s"])
    assert verify(curve, v["id"], public, MESSAGE, v["r"], v["s"])
    assert not verify(curve, v["id"], public, b"message digesT", v["r"], v["s"])
    assert not verify(curve, DEFAULT_ID, public, MESSAGE, v["r"], v["s"])


def test_reference_reproduces_recommended_curve_example() -> None:
    """GM/T 0003.5-2012 Annex A (sm2p256v1, default id): reference gives the published values."""
    v = RECOMMENDED
    curve = SM2P256V1
    public = curve.mul(v["d"], curve.g)
    assert public == (v["x"], v["y"])
    assert z_value(curve, DEFAULT_ID, public).hex().upper() == v["z"]
    assert digest_e(curve, DEFAULT_ID, public, MESSAGE) == v["e"]
    assert sign_with_k(curve, DEFAULT_ID, v["d"], MESSAGE, v["k"]) == (v["r"], v["s"])
    assert verify(curve, DEFAULT_ID, public, MESSAGE, v["r"], v["s"])


def test_suite_accepts_recommended_curve_example(suite: SMSuite) -> None:
    """GM/T 0003.5-2012 Annex A: sm-v1 derives the published key, accepts the published r, s."""
    v = RECOMMENDED
    public = b"\x04" + v["x"].to_bytes(32, "big") + v["y"].to_bytes(32, "big")
    assert suite.load_signing_key(v["d"].to_bytes(32, "big")).public_bytes == public
    vk = suite.load_verify_key(public)
    assert vk.verify(_sig(v["r"], v["s"]), MESSAGE)
    assert not vk.verify(_sig(v["r"], v["s"]), MESSAGE + b".")
    assert not vk.verify(_sig(v["r"], (v["s"] + 1) % N), MESSAGE)


def test_tongsuo_signatures_use_default_id_per_reference(suite: SMSuite) -> None:
    """GB/T 32918.2 + GM/T 0009: the reference accepts sm-v1 signatures only with the default id."""
    for i in range(4):
        key = suite.generate_signing_key()
        message = b"entry %d" % i
        r, s = _rs(key.sign(message))
        public = _point(key.public_bytes)
        assert SM2P256V1.on_curve(public)
        assert verify(SM2P256V1, DEFAULT_ID, public, message, r, s)
        assert not verify(SM2P256V1, b"", public, message, r, s)
        assert not verify(SM2P256V1, b"ALICE123@YAHOO.COM", public, message, r, s)


def test_suite_accepts_reference_signatures(suite: SMSuite) -> None:
    """GB/T 32918.2: sm-v1 verifies signatures the reference makes with the default id."""
    d = 0x1F2E3D4C5B6A79880102030405060708090A0B0C0D0E0F101112131415161718
    key = suite.load_signing_key(d.to_bytes(32, "big"))
    for k in (3, 0x1234567890ABCDEF, N - 5):
        r, s = sign_with_k(SM2P256V1, DEFAULT_ID, d, b"from the reference", k)
        assert key.verify_key().verify(_sig(r, s), b"from the reference")


def test_sign_verify_round_trip(suite: SMSuite) -> None:
    """sm-v1 signatures are 64 bytes and verify under the signer's public key only."""
    key = suite.generate_signing_key()
    sig = key.sign(b"payload")
    assert len(sig) == 64
    assert len(key.public_bytes) == 65
    assert key.verify_key().verify(sig, b"payload")
    assert suite.load_verify_key(key.public_bytes).verify(sig, b"payload")
    assert not key.verify_key().verify(sig, b"payload!")
    other = suite.generate_signing_key()
    assert not other.verify_key().verify(sig, b"payload")


def test_private_key_round_trip(suite: SMSuite) -> None:
    """A private key reloads from its 32 bytes to the same public key and valid signatures."""
    key = suite.generate_signing_key()
    again = suite.load_signing_key(key.private_bytes())
    assert again.public_bytes == key.public_bytes
    assert key.verify_key().verify(again.sign(b"m"), b"m")


@pytest.mark.parametrize("flip", [0, 31, 32, 63])
def test_flipped_signature_bit_is_rejected(suite: SMSuite, flip: int) -> None:
    """Any changed byte of r or s makes the signature invalid."""
    key = suite.generate_signing_key()
    sig = bytearray(key.sign(b"m"))
    sig[flip] ^= 0x01
    assert not key.verify_key().verify(bytes(sig), b"m")


def test_out_of_range_and_malformed_signatures_are_false(suite: SMSuite) -> None:
    """r or s outside [1, n-1], wrong lengths and DER encodings are rejected without raising."""
    vk = suite.generate_signing_key().verify_key()
    good = suite.generate_signing_key().sign(b"m")
    r, s = _rs(good)
    for bad in (
        _sig(0, s),
        _sig(r, 0),
        _sig(N, s),
        _sig(r, N),
        _sig(r + N, s) if r + N < 2**256 else _sig(2**256 - 1, s),
        b"\xff" * 64,
        b"",
        good[:63],
        good + b"\x00",
        b"\x30\x44\x02\x20" + good[:32] + b"\x02\x20" + good[32:],
    ):
        assert vk.verify(bad, b"m") is False


@settings(max_examples=50, deadline=None)
@given(sig=st.binary(min_size=0, max_size=80), message=st.binary(max_size=64))
def test_garbage_signatures_return_false(sig: bytes, message: bytes) -> None:
    """Arbitrary bytes as a signature give False, never an exception."""
    vk = get_suite("sm-v1").load_verify_key(
        b"\x04" + RECOMMENDED["x"].to_bytes(32, "big") + RECOMMENDED["y"].to_bytes(32, "big")
    )
    assert vk.verify(sig, message) is False


@pytest.mark.parametrize(
    "public",
    [
        b"",
        b"\x04" + bytes(64),
        b"\x02" + bytes(32),
        b"\x04" + (1).to_bytes(32, "big") + (2).to_bytes(32, "big"),
        b"\x05" + RECOMMENDED["x"].to_bytes(32, "big") + RECOMMENDED["y"].to_bytes(32, "big"),
        b"\x04"
        + RECOMMENDED["x"].to_bytes(32, "big")
        + RECOMMENDED["y"].to_bytes(32, "big")
        + b"\0",
    ],
)
def test_bad_public_keys_are_malformed(suite: SMSuite, public: bytes) -> None:
    """Anything but a 65-byte uncompressed sm2p256v1 point raises MalformedDocument."""
    with pytest.raises(MalformedDocument) as info:
        suite.load_verify_key(public)
    assert info.value.field == "public_key"


@pytest.mark.parametrize("d", [0, N - 1, N, 2**256 - 1])
def test_bad_private_scalars_are_malformed(suite: SMSuite, d: int) -> None:
    """Private keys outside [1, n-2] (GB/T 32918.1 §6.1) raise MalformedDocument."""
    with pytest.raises(MalformedDocument):
        suite.load_signing_key(d.to_bytes(32, "big"))


def test_short_private_key_is_malformed(suite: SMSuite) -> None:
    """A private key that is not exactly 32 bytes raises MalformedDocument."""
    with pytest.raises(MalformedDocument):
        suite.load_signing_key(b"\x01" * 31)
