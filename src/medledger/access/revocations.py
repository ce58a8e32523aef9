"""Revoked access tokens: the ``Revocations`` protocol and an in-memory implementation.

``verify_access_token`` asks a ``Revocations`` about every token: about its ``jti`` (a token
revoked on its own, RFC 7009) and its ``fam`` (a revoked sign-in: every access token issued
from that refresh token family). The SQL implementation is ``token_store.SqlRevocations``.
"""

from __future__ import annotations

import threading
from typing import Protocol

__all__ = ["MemoryRevocations", "Revocations", "RevokedFamilies"]


class Revocations(Protocol):
    """Revoked access token ids and sign-ins; ``verify_access_token`` asks on every call."""

    def is_revoked(self, jti: str, family: str | None = None) -> bool:
        """Return True if the token ``jti`` was revoked, or (``family`` given) its sign-in was."""
        ...

    def revoke(self, jti: str, until: int) -> None:
        """Revoke ``jti``; the entry may be forgotten after ``until`` (epoch seconds)."""
        ...


class RevokedFamilies(Protocol):
    """Where revoked sign-ins are recorded (a ``RefreshStore`` is one)."""

    def family_revoked(self, family_id: str) -> bool:
        """Return True if the family was revoked."""
        ...


class MemoryRevocations:
    """An in-process ``Revocations`` (tests, single-process deployments)."""

    def __init__(self, families: RevokedFamilies | None = None) -> None:
        """Start with nothing revoked; ask ``families`` (if any) about sign-ins."""
        self._until: dict[str, int] = {}
        self._lock = threading.Lock()
        self._families = families

    def is_revoked(self, jti: str, family: str | None = None) -> bool:
        """Return True if ``jti`` was revoked, or ``family`` is a revoked sign-in."""
        with self._lock:
            if jti in self._until:
                return True
        return (
            family is not None
            and self._families is not None
            and self._families.family_revoked(family)
        )

    def revoke(self, jti: str, until: int) -> None:
        """Revoke ``jti`` until ``until``."""
        with self._lock:
            self._until[jti] = max(until, self._until.get(jti, until))

    def prune(self, now: float) -> int:
        """Forget entries whose tokens have expired; return how many."""
        with self._lock:
            gone = [j for j, until in self._until.items() if until < now]
            for j in gone:
                del self._until[j]
            return len(gone)
