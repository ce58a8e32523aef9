"""Checks shared by the suites' AEAD wrappers."""

from __future__ import annotations

from medledger.errors import MalformedDocument, VerificationFailed

NONCE_SIZE = 12
TAG_SIZE = 16


def check_key(key: bytes, size: int, alg: str) -> bytes:
    """Return ``key`` as bytes; raise ``MalformedDocument`` unless it is ``size`` bytes."""
    if len(key) != size:
        raise MalformedDocument(
            f"{alg} key has the wrong size",
            field="aead_key",
            value=len(key),
            expected=f"{size}-byte key",
        )
    return bytes(key)


def check_nonce(nonce: bytes) -> None:
    """Raise ``MalformedDocument`` unless ``nonce`` is the fixed 12 bytes every suite uses."""
    if len(nonce) != NONCE_SIZE:
        raise MalformedDocument(
            "AEAD nonce has the wrong size",
            field="nonce",
            value=len(nonce),
            expected=f"{NONCE_SIZE}-byte nonce",
        )


def aead_failed(alg: str) -> VerificationFailed:
    """Return the error for a ciphertext that does not authenticate."""
    return VerificationFailed(
        f"{alg} authentication failed: wrong key, nonce or associated data, "
        "or the ciphertext was altered",
        check="aead",
    )
