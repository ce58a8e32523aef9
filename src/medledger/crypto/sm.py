"""Suite ``sm-v1``: SM3, SM2 signatures (GB/T 32918.2) and SM4-GCM, via Tongsuo (tongsuopy).

SM2 signing hashes e = SM3(Z ‖ M) with Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA). The id
is the GM/T 0009 default ``1234567812345678``: tongsuopy's ``sign``/``verify`` apply exactly that
Z (the tests check this against a from-the-standard reference verifier and the GB/T 32918.5
Annex A example), so nothing here computes Z by hand.

Signatures travel as fixed-length r ‖ s (two 32-byte big-endian integers) rather than DER,
so one signature has exactly one encoding.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from tongsuopy.crypto import hashes, serialization
from tongsuopy.crypto.asymciphers import ec
from tongsuopy.crypto.ciphers.aead import SM4GCM
from tongsuopy.crypto.exceptions import InvalidSignature, InvalidTag

from medledger.crypto._aead import aead_failed, check_key, check_nonce
from medledger.crypto.suite import HashFn
from medledger.errors import MalformedDocument

__all__ = ["DEFAULT_USER_ID", "SMSuite", "sm3"]

DEFAULT_USER_ID = b"1234567812345678"
# Order of the base point of the recommended curve sm2p256v1 (GB/T 32918.5).
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
_SCALAR_SIZE = 32
_SIG_SIZE = 64
_POINT_SIZE = 65


def _pick_sm3() -> HashFn:
    """Return the fastest working one-shot SM3."""
    if "sm3" in hashlib.algorithms_available:
        try:
            base = hashlib.new("sm3")
        except ValueError:  # listed but refused (e.g. an OpenSSL FIPS configuration)
            pass
        else:
            copy = base.copy

            # Copying a ready context skips OpenSSL's by-name digest fetch: twice as fast as
            # hashlib.new("sm3", data) on every call.
            def sm3_hashlib(data: bytes) -> bytes:
                h = copy()
                h.update(data)
                return h.digest()

            return sm3_hashlib

    def sm3_tongsuo(data: bytes) -> bytes:
        h = hashes.Hash(hashes.SM3())
        h.update(bytes(data))
        digest: bytes = h.finalize()
        return digest

    return sm3_tongsuo


sm3: HashFn = _pick_sm3()

_ALG = ec.ECDSA(hashes.SM3())


class SM2VerifyKey:
    """An SM2 public key on sm2p256v1."""

    __slots__ = ("_key", "_raw")

    def __init__(self, key: ec.EllipticCurvePublicKey, raw: bytes) -> None:
        """Wrap a loaded key and its 65-byte uncompressed encoding."""
        self._key = key
        self._raw = raw

    @property
    def public_bytes(self) -> bytes:
        """Return the 65-byte uncompressed point 04 ‖ x ‖ y."""
        return self._raw

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Return True if ``signature`` (r ‖ s) is a valid SM2 signature of ``message``."""
        if len(signature) != _SIG_SIZE:
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        if not (0 < r < N and 0 < s < N):
            return False
        try:
            self._key.verify(encode_dss_signature(r, s), bytes(message), _ALG)
        except InvalidSignature:
            return False
        except Exception:  # never raise on garbage: a bad signature is an answer, not an error
            return False
        return True


class SM2SigningKey:
    """An SM2 private key on sm2p256v1."""

    __slots__ = ("_d", "_key", "_public")

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        """Wrap a tongsuopy private key."""
        self._key = key
        self._d: int = key.private_numbers().private_value
        self._public = _encode_point(key.public_key())

    @property
    def public_bytes(self) -> bytes:
        """Return the 65-byte uncompressed public point."""
        return self._public

    def private_bytes(self) -> bytes:
        """Return the private scalar as 32 big-endian bytes."""
        return self._d.to_bytes(_SCALAR_SIZE, "big")

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte r ‖ s SM2 signature of ``message`` (default id)."""
        r, s = decode_dss_signature(self._key.sign(bytes(message), _ALG))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verify_key(self) -> SM2VerifyKey:
        """Return the matching public key."""
        return SM2VerifyKey(self._key.public_key(), self._public)


class Sm4Gcm:
    """SM4-GCM with a 12-byte nonce and the 16-byte tag appended."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        """Use the 16-byte ``key``."""
        self._aead = SM4GCM(check_key(key, 16, "SM4-GCM"))

    def encrypt(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        """Return ciphertext ‖ tag."""
        check_nonce(nonce)
        return bytes(self._aead.encrypt(bytes(nonce), bytes(plaintext), bytes(associated_data)))

    def decrypt(self, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
        """Return the plaintext; raise ``VerificationFailed`` (check="aead") if tampered."""
        check_nonce(nonce)
        try:
            return bytes(
                self._aead.decrypt(bytes(nonce), bytes(ciphertext), bytes(associated_data))
            )
        except InvalidTag:
            raise aead_failed("SM4-GCM") from None


def _encode_point(key: ec.EllipticCurvePublicKey) -> bytes:
    return bytes(
        key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


class SMSuite:
    """The ``sm-v1`` suite."""

    name = "sm-v1"
    hash_name = "sm3"
    sig_alg = "sm2-sm3"
    aead_name = "sm4-gcm"
    digest_size = 32
    aead_key_size = 16
    public_key_size = _POINT_SIZE
    private_key_size = _SCALAR_SIZE

    def __init__(self) -> None:
        """Bind the one-shot hash as an instance attribute so it is not turned into a method."""
        self.hash: HashFn = sm3

    def generate_signing_key(self) -> SM2SigningKey:
        """Return a fresh random SM2 key."""
        while True:
            key = SM2SigningKey(ec.generate_private_key(ec.SM2()))
            # GB/T 32918.2 signing inverts (1 + d), so d = n - 1 is unusable.
            if key._d <= N - 2:
                return key

    def load_signing_key(self, private_bytes: bytes) -> SM2SigningKey:
        """Load a 32-byte big-endian scalar d with 1 <= d <= n - 2."""
        d = int.from_bytes(private_bytes, "big")
        if len(private_bytes) != _SCALAR_SIZE or not 0 < d <= N - 2:
            raise MalformedDocument(
                "not a valid SM2 private key",
                field="private_key",
                value=len(private_bytes),
                expected="32-byte big-endian scalar in [1, n-2]",
            )
        return SM2SigningKey(ec.derive_private_key(d, ec.SM2()))

    def load_verify_key(self, public_bytes: bytes) -> SM2VerifyKey:
        """Load a 65-byte point 04 ‖ x ‖ y; raise ``MalformedDocument`` unless it is on-curve."""
        raw = bytes(public_bytes)
        try:
            if len(raw) != _POINT_SIZE or raw[0] != 0x04:
                raise ValueError("not an uncompressed point")
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SM2(), raw)
        except Exception:  # tongsuopy signals a bad point in several ways; all mean "not a key"
            raise MalformedDocument(
                "not a valid SM2 public key",
                field="public_key",
                value=raw,
                expected="65-byte uncompressed sm2p256v1 point 04 ‖ x ‖ y",
            ) from None
        return SM2VerifyKey(key, raw)

    def aead(self, key: bytes) -> Sm4Gcm:
        """Return SM4-GCM keyed with the 16-byte ``key``."""
        return Sm4Gcm(key)
