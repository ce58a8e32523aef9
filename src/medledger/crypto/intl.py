"""Suite ``intl-v1``: SHA-256, Ed25519 (RFC 8032, via PyNaCl) and AES-256-GCM."""

from __future__ import annotations

import hashlib

import nacl.bindings
import nacl.exceptions
import nacl.signing
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medledger.crypto._aead import aead_failed, check_key, check_nonce
from medledger.crypto.suite import HashFn
from medledger.errors import MalformedDocument

__all__ = ["IntlSuite", "sha256"]

_SHA256 = hashlib.sha256
_KEY_SIZE = 32
_SIG_SIZE = 64


def sha256(data: bytes) -> bytes:
    """Return the SHA-256 digest of ``data`` (the suite's hot-path one-shot hash)."""
    return _SHA256(data).digest()


class Ed25519VerifyKey:
    """An Ed25519 public key."""

    __slots__ = ("_key", "_raw")

    def __init__(self, raw: bytes) -> None:
        """Wrap a 32-byte key already checked to be a valid curve point."""
        self._raw = raw
        self._key = nacl.signing.VerifyKey(raw)

    @property
    def public_bytes(self) -> bytes:
        """Return the 32-byte RFC 8032 encoding."""
        return self._raw

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Return True if ``signature`` is a valid Ed25519 signature of ``message``."""
        if len(signature) != _SIG_SIZE:
            return False
        try:
            self._key.verify(message, signature)
        except nacl.exceptions.BadSignatureError:
            return False
        except Exception:  # never raise on garbage: a bad signature is an answer, not an error
            return False
        return True


class Ed25519SigningKey:
    """An Ed25519 private key, held as its 32-byte RFC 8032 seed."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: nacl.signing.SigningKey) -> None:
        """Wrap a PyNaCl signing key."""
        self._key = key
        self._public = bytes(key.verify_key)

    @property
    def public_bytes(self) -> bytes:
        """Return the 32-byte public key."""
        return self._public

    def private_bytes(self) -> bytes:
        """Return the 32-byte seed (what RFC 8032 calls the secret key)."""
        return bytes(self._key)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return bytes(self._key.sign(message).signature)

    def verify_key(self) -> Ed25519VerifyKey:
        """Return the matching public key."""
        return Ed25519VerifyKey(self._public)


class AesGcm:
    """AES-256-GCM with a 12-byte nonce and the 16-byte tag appended."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        """Use the 32-byte ``key``."""
        self._aead = AESGCM(check_key(key, 32, "AES-256-GCM"))

    def encrypt(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        """Return ciphertext ‖ tag."""
        check_nonce(nonce)
        return self._aead.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
        """Return the plaintext; raise ``VerificationFailed`` (check="aead") if tampered."""
        check_nonce(nonce)
        try:
            return self._aead.decrypt(nonce, ciphertext, associated_data)
        except InvalidTag:
            raise aead_failed("AES-256-GCM") from None


class IntlSuite:
    """The ``intl-v1`` suite."""

    name = "intl-v1"
    hash_name = "sha256"
    sig_alg = "ed25519"
    aead_name = "aes-256-gcm"
    digest_size = 32
    aead_key_size = 32
    public_key_size = _KEY_SIZE
    private_key_size = _KEY_SIZE

    def __init__(self) -> None:
        """Bind the one-shot hash as an instance attribute so it is not turned into a method."""
        self.hash: HashFn = sha256
        # The hashlib constructor itself: the Merkle hasher calls it inline, one Python call
        # per node instead of two (see rfc6962.hasher_for).
        self.hash_new = _SHA256

    def generate_signing_key(self) -> Ed25519SigningKey:
        """Return a fresh random Ed25519 key."""
        return Ed25519SigningKey(nacl.signing.SigningKey.generate())

    def load_signing_key(self, private_bytes: bytes) -> Ed25519SigningKey:
        """Load a 32-byte seed; raise ``MalformedDocument`` if it has the wrong size."""
        if len(private_bytes) != _KEY_SIZE:
            raise MalformedDocument(
                "Ed25519 private key has the wrong size",
                field="private_key",
                value=len(private_bytes),
                expected="32-byte Ed25519 seed",
            )
        return Ed25519SigningKey(nacl.signing.SigningKey(bytes(private_bytes)))

    def load_verify_key(self, public_bytes: bytes) -> Ed25519VerifyKey:
        """Load a 32-byte public key; raise ``MalformedDocument`` unless it is a usable point.

        libsodium's point check also refuses small-order points, which no honest key is and
        which its verifier would reject for every signature anyway.
        """
        raw = bytes(public_bytes)
        if len(raw) != _KEY_SIZE or not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
            raise MalformedDocument(
                "not a valid Ed25519 public key",
                field="public_key",
                value=raw,
                expected="32-byte Ed25519 public key (a valid curve point)",
            )
        return Ed25519VerifyKey(raw)

    def aead(self, key: bytes) -> AesGcm:
        """Return AES-256-GCM keyed with the 32-byte ``key``."""
        return AesGcm(key)
