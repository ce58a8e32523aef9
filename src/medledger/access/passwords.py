"""Password and client-secret hashing (Argon2id) and the password policy.

Production parameters (``PRODUCTION``), following RFC 9106 §4's second recommended option
scaled to this hardware: Argon2id, ``time_cost=3`` passes, ``memory_cost=65536`` KiB (64 MiB),
``parallelism=2`` lanes, a 16-byte random salt and a 32-byte tag. One hash or verify takes
about 105 ms on the 2-core reference machine (measured: 101-109 ms; the budget is 250 ms),
so a single core tries at most ~10 guesses per second per stolen hash, and each guess costs
64 MiB.

The parameters are recorded inside every hash (``$argon2id$v=19$m=65536,t=3,p=2$…``).
``PasswordHasher.needs_rehash`` notices a hash made with other parameters, and the sign-in
path re-hashes it with the current ones once the password has been verified (the only time
the clear password is available).

Tests inject ``FAST`` (1 pass, 64 KiB): far too weak for real use, never the default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from medledger.errors import InputError

__all__ = [
    "FAST",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "PRODUCTION",
    "HashParams",
    "PasswordHasher",
    "check_password_policy",
]

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # a megabyte "password" would only be a way to burn CPU

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HashParams:
    """Argon2id cost parameters; ``memory_cost`` is in KiB."""

    time_cost: int = 3
    memory_cost: int = 64 * 1024
    parallelism: int = 2
    hash_len: int = 32
    salt_len: int = 16


PRODUCTION = HashParams()
FAST = HashParams(time_cost=1, memory_cost=64, parallelism=1)


class PasswordHasher:
    """Hash and verify secrets with Argon2id under one set of parameters."""

    def __init__(self, params: HashParams = PRODUCTION) -> None:
        self.params = params
        self._ph = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
            hash_len=params.hash_len,
            salt_len=params.salt_len,
            type=argon2.Type.ID,
        )
        self._dummy: str | None = None

    def hash(self, secret: str) -> str:
        """Return the encoded Argon2id hash of ``secret`` (a fresh random salt each call)."""
        return self._ph.hash(secret)

    def verify(self, encoded: str, secret: str) -> bool:
        """Return True if ``secret`` matches ``encoded``; False for a mismatch or a bad hash."""
        try:
            return self._ph.verify(encoded, secret)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError):
            # A stored hash we cannot parse: log that it happened, never the hash or secret.
            _log.warning("a stored credential hash is not a valid Argon2 hash; sign-in refused")
            return False

    def verify_dummy(self, secret: str) -> None:
        """Spend as long as a real verify, for an unknown account (no timing oracle)."""
        if self._dummy is None:
            self._dummy = self.hash("medledger-no-such-account")
        self.verify(self._dummy, secret)

    def needs_rehash(self, encoded: str) -> bool:
        """Return True if ``encoded`` was made with other parameters (or another type)."""
        try:
            return self._ph.check_needs_rehash(encoded)
        except (InvalidHashError, ValueError):
            return True


def check_password_policy(password: str, principal_id: str) -> None:
    """Raise InputError (field ``password``, value never shown) unless ``password`` is usable.

    Requires 12 to 1024 characters, not only whitespace, and not the account id itself
    (compared case-insensitively, with surrounding whitespace ignored).
    """

    def refuse(reason: str, expected: str) -> None:
        raise InputError(
            f"password refused: {reason}",
            field="password",
            value="(not shown)",
            expected=expected,
        )

    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        refuse(f"shorter than {MIN_PASSWORD} characters", f"at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        refuse(f"longer than {MAX_PASSWORD} characters", f"at most {MAX_PASSWORD} characters")
    if not password.strip():
        refuse("only whitespace", "a password with visible characters")
    if password.strip().casefold() == principal_id.strip().casefold():
        refuse("it equals the account id", "a password different from the account id")
