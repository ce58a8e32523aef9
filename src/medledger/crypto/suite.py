"""The one small interface every crypto suite implements.

A suite is fixed per chain at ``medledger init`` and named in every certificate. Byte formats
(exactly what ``docs/certificate.md`` promises a stranger):

- hash: ``intl-v1`` SHA-256, ``sm-v1`` SM3; both 32 bytes.
- signature: ``intl-v1`` Ed25519 (RFC 8032), 64 bytes; ``sm-v1`` SM2 with SM3 and the default
  user id ``1234567812345678`` (GB/T 32918.2, GM/T 0009), encoded as ``r ‖ s``, each a 32-byte
  big-endian integer (64 bytes; fixed length, so no DER malleability).
- public key: ``intl-v1`` the 32-byte Ed25519 key; ``sm-v1`` the 65-byte uncompressed point
  ``04 ‖ x ‖ y``.
- AEAD: ``intl-v1`` AES-256-GCM (32-byte key); ``sm-v1`` SM4-GCM (16-byte key); 12-byte nonce,
  16-byte tag appended to the ciphertext.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

HashFn = Callable[[bytes], bytes]


class VerifyKey(Protocol):
    """A public key that checks signatures."""

    @property
    def public_bytes(self) -> bytes: ...

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Return True if ``signature`` is valid for ``message``; never raises on bad input."""
        ...


class SigningKey(Protocol):
    """A private key that signs."""

    @property
    def public_bytes(self) -> bytes: ...

    def private_bytes(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...

    def verify_key(self) -> VerifyKey: ...


class Aead(Protocol):
    """Authenticated encryption with associated data."""

    def encrypt(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes: ...

    def decrypt(self, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
        """Raise ``medledger.errors.VerificationFailed`` (check="aead") if authentication fails."""
        ...


class Suite(Protocol):
    """A named bundle of hash, signature and AEAD algorithms."""

    name: str  # "intl-v1" | "sm-v1"
    hash_name: str  # "sha256" | "sm3"
    sig_alg: str  # "ed25519" | "sm2-sm3"
    aead_name: str  # "aes-256-gcm" | "sm4-gcm"
    digest_size: int  # 32
    aead_key_size: int  # 32 | 16
    hash: HashFn  # the fastest available one-shot hash: bytes -> digest

    def generate_signing_key(self) -> SigningKey: ...

    def load_signing_key(self, private_bytes: bytes) -> SigningKey: ...

    def load_verify_key(self, public_bytes: bytes) -> VerifyKey:
        """Raise ``medledger.errors.MalformedDocument`` if the bytes are not a valid key."""
        ...

    def aead(self, key: bytes) -> Aead: ...
