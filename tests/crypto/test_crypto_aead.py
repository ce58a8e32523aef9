"""AEAD and block-cipher known answers (SM4, SM4-GCM, AES-256-GCM), tampering and AD binding."""

from __future__ import annotations

import pytest
from tongsuopy.crypto.ciphers import Cipher, algorithms, modes

from medledger.crypto import get_suite
from medledger.errors import MalformedDocument, VerificationFailed

SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")


def _sm4_ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return bytes(enc.update(block) + enc.finalize())


def test_sm4_block_cipher_example_1() -> None:
    """GB/T 32907-2016 Appendix A example 1: key = plaintext = 0123…3210 -> 681edf34…4246."""
    assert _sm4_ecb(SM4_KEY, SM4_KEY).hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm4_block_cipher_example_2_million_iterations() -> None:
    """GB/T 32907-2016 Appendix A example 2: 1,000,000 encryptions give 595298c7…3f66."""
    # CBC over zero blocks with IV = the plaintext computes E(E(…E(x))) in one library call:
    # block i is E(0 xor block i-1) = E(block i-1).
    enc = Cipher(algorithms.SM4(SM4_KEY), modes.CBC(SM4_KEY)).encryptor()
    out = enc.update(bytes(16 * 1_000_000)) + enc.finalize()
    assert out[-16:].hex() == "595298c7c6fd271f0402f804c33d3f66"


RFC8998_PLAINTEXT = bytes.fromhex(
    "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
    "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
)
RFC8998_CIPHERTEXT = bytes.fromhex(
    "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
    "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
    "83DE3541E4C2B58177E065A9BF7B62EC"  # tag
)
RFC8998_NONCE = bytes.fromhex("00001234567800000000ABCD")
RFC8998_AAD = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")


def test_sm4_gcm_rfc8998_vector() -> None:
    """RFC 8998 Appendix A.1 SM4-GCM: exact ciphertext ‖ tag, and decryption back."""
    aead = get_suite("sm-v1").aead(SM4_KEY)
    assert aead.encrypt(RFC8998_NONCE, RFC8998_PLAINTEXT, RFC8998_AAD) == RFC8998_CIPHERTEXT
    assert aead.decrypt(RFC8998_NONCE, RFC8998_CIPHERTEXT, RFC8998_AAD) == RFC8998_PLAINTEXT


GCM_KEY = bytes.fromhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
GCM_IV = bytes.fromhex("cafebabefacedbaddecaf888")
GCM_P = bytes.fromhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
)
GCM_C = bytes.fromhex(
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
)


@pytest.mark.parametrize(
    ("case", "key", "iv", "plaintext", "aad", "expected"),
    [
        (
            "14",
            bytes(32),
            bytes(12),
            bytes(16),
            b"",
            bytes.fromhex("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"),
        ),
        (
            "15",
            GCM_KEY,
            GCM_IV,
            GCM_P,
            b"",
            GCM_C + bytes.fromhex("b094dac5d93471bdec1a502270e3cc6c"),
        ),
        (
            "16",
            GCM_KEY,
            GCM_IV,
            GCM_P[:60],
            bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2"),
            GCM_C[:60] + bytes.fromhex("76fc6ece0f4e1768cddf8853bb2d551b"),
        ),
    ],
)
def test_aes256_gcm_spec_vectors(
    case: str, key: bytes, iv: bytes, plaintext: bytes, aad: bytes, expected: bytes
) -> None:
    """McGrew & Viega GCM spec (NIST) test cases 14-16: exact AES-256-GCM ciphertext ‖ tag."""
    aead = get_suite("intl-v1").aead(key)
    assert aead.encrypt(iv, plaintext, aad) == expected
    assert aead.decrypt(iv, expected, aad) == plaintext


SUITE_NAMES = ["intl-v1", "sm-v1"]


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_round_trip_with_tag_appended(name: str) -> None:
    """Encrypt then decrypt returns the plaintext; the ciphertext is 16 bytes (the tag) longer."""
    suite = get_suite(name)
    aead = suite.aead(bytes(range(suite.aead_key_size)))
    for plaintext in (b"", b"x", b"clinical record " * 100):
        ct = aead.encrypt(b"\x01" * 12, plaintext, b"header")
        assert len(ct) == len(plaintext) + 16
        assert aead.decrypt(b"\x01" * 12, ct, b"header") == plaintext


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_tampering_raises_verification_failed(name: str) -> None:
    """A flipped ciphertext or tag bit, a truncation, or the wrong key fails with check="aead"."""
    suite = get_suite(name)
    key = bytes(range(suite.aead_key_size))
    nonce = b"\x02" * 12
    ct = suite.aead(key).encrypt(nonce, b"patient 42: allergy", b"ad")
    bad_inputs = [
        bytes([ct[0] ^ 1]) + ct[1:],
        ct[:-1] + bytes([ct[-1] ^ 0x80]),
        ct[:-1],
        ct[:10],
        b"",
    ]
    for bad in bad_inputs:
        with pytest.raises(VerificationFailed) as info:
            suite.aead(key).decrypt(nonce, bad, b"ad")
        assert info.value.check == "aead"
    other = bytes(suite.aead_key_size)
    with pytest.raises(VerificationFailed):
        suite.aead(other).decrypt(nonce, ct, b"ad")


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_associated_data_and_nonce_are_bound(name: str) -> None:
    """Decrypting with different associated data or a different nonce fails."""
    suite = get_suite(name)
    aead = suite.aead(b"\x07" * suite.aead_key_size)
    ct = aead.encrypt(b"\x03" * 12, b"secret", b"chain=a;index=1")
    with pytest.raises(VerificationFailed):
        aead.decrypt(b"\x03" * 12, ct, b"chain=a;index=2")
    with pytest.raises(VerificationFailed):
        aead.decrypt(b"\x03" * 12, ct, b"")
    with pytest.raises(VerificationFailed):
        aead.decrypt(b"\x04" * 12, ct, b"chain=a;index=1")


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_wrong_key_and_nonce_sizes_are_malformed(name: str) -> None:
    """Keys of the wrong size and nonces other than 12 bytes raise MalformedDocument."""
    suite = get_suite(name)
    with pytest.raises(MalformedDocument) as info:
        suite.aead(bytes(suite.aead_key_size + 1))
    assert info.value.field == "aead_key"
    aead = suite.aead(bytes(suite.aead_key_size))
    for nonce in (bytes(8), bytes(16)):
        with pytest.raises(MalformedDocument) as info:
            aead.encrypt(nonce, b"x", b"")
        assert info.value.field == "nonce"
        with pytest.raises(MalformedDocument):
            aead.decrypt(nonce, bytes(32), b"")
