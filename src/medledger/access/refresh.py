"""Refresh tokens: rotation with replay detection (issue 4, "Tokens").

Pure library: no HTTP, no database. Storage is behind a small protocol (``RefreshStore``) with
an in-memory implementation for tests and single processes.

**Refresh tokens** are opaque random strings, stored only as a hash, each in a *family* started
by one sign-in. Using one marks it used and issues its successor; presenting a used token again
(a replay: someone holds a copy) revokes the whole family (OAuth 2.0 Security BCP §4.14.2).

Every refusal is ``TokenInvalid`` with a one-word ``reason``; no error or log holds a token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from dataclasses import dataclass, field, replace
from typing import Protocol

from medledger.access._jwt import _bounded_int, _now, _refuse, _text
from medledger.access.scopes import parse_scopes

__all__ = [
    "MemoryRefreshStore",
    "RefreshGrant",
    "RefreshPolicy",
    "RefreshRecord",
    "RefreshStore",
    "refresh_token_hash",
    "revoke_refresh_token",
    "rotate_refresh_token",
    "start_refresh_family",
]

_REFRESH = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


# -- refresh tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshRecord:
    """One refresh token as stored: its hash (never the token), its family and its life."""

    token_hash: str
    family_id: str
    subject: str
    institution: str
    client_id: str | None
    scope: str
    issued_at: int
    expires_at: int
    family_expires_at: int
    used_at: int | None = None


class RefreshStore(Protocol):
    """Where refresh tokens live. ``mark_used`` must be atomic (compare-and-set)."""

    def add(self, record: RefreshRecord) -> None:
        """Store a new, unused record."""
        ...

    def find(self, token_hash: str) -> RefreshRecord | None:
        """Return the record with this hash, or None."""
        ...

    def mark_used(self, token_hash: str, at: int) -> bool:
        """Set ``used_at`` if it is unset and return True; return False if it was already set."""
        ...

    def revoke_family(self, family_id: str, at: int) -> None:
        """Revoke every token of the family, including any added later."""
        ...

    def family_revoked(self, family_id: str) -> bool:
        """Return True if the family was revoked."""
        ...


class MemoryRefreshStore:
    """An in-process ``RefreshStore``."""

    def __init__(self) -> None:
        """Start empty."""
        self._records: dict[str, RefreshRecord] = {}
        self._revoked: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, record: RefreshRecord) -> None:
        """Store ``record``."""
        with self._lock:
            self._records[record.token_hash] = record

    def find(self, token_hash: str) -> RefreshRecord | None:
        """Return the record with this hash, or None."""
        with self._lock:
            return self._records.get(token_hash)

    def mark_used(self, token_hash: str, at: int) -> bool:
        """Mark the record used unless it already was."""
        with self._lock:
            rec = self._records.get(token_hash)
            if rec is None or rec.used_at is not None:
                return False
            self._records[token_hash] = replace(rec, used_at=at)
            return True

    def revoke_family(self, family_id: str, at: int) -> None:
        """Revoke the family."""
        with self._lock:
            self._revoked.setdefault(family_id, at)

    def family_revoked(self, family_id: str) -> bool:
        """Return True if the family was revoked."""
        with self._lock:
            return family_id in self._revoked


@dataclass(frozen=True)
class RefreshPolicy:
    """Refresh token lifetimes: each token's (``ttl``, default 12 h) and the family's absolute
    lifetime from sign-in (``family_ttl``, default 7 days; rotation never extends it)."""

    ttl: int = 12 * 3600
    family_ttl: int = 7 * 24 * 3600

    def __post_init__(self) -> None:
        """Check the lifetimes."""
        _bounded_int(self.ttl, "ttl", 60, 30 * 24 * 3600)
        _bounded_int(self.family_ttl, "family_ttl", self.ttl, 365 * 24 * 3600)


@dataclass(frozen=True)
class RefreshGrant:
    """A new refresh token (kept out of ``repr``) and its stored record."""

    refresh_token: str = field(repr=False)
    record: RefreshRecord


def refresh_token_hash(token: str) -> str:
    """Return the hex SHA-256 of a refresh token: the only form in which it is stored.

    The token is 256 random bits, so a plain hash is enough (no salt or slow hash needed).
    """
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _new_refresh(template: RefreshRecord, now: int, policy: RefreshPolicy) -> RefreshGrant:
    token = secrets.token_urlsafe(32)
    record = replace(
        template,
        token_hash=refresh_token_hash(token),
        issued_at=now,
        expires_at=min(now + policy.ttl, template.family_expires_at),
        used_at=None,
    )
    return RefreshGrant(token, record)


def start_refresh_family(
    store: RefreshStore,
    policy: RefreshPolicy,
    *,
    subject: str,
    institution: str,
    client_id: str | None,
    scope: str,
    now: float,
) -> RefreshGrant:
    """Start a new family (one sign-in) and return its first refresh token."""
    at = _now(now)
    template = RefreshRecord(
        token_hash="",
        family_id=secrets.token_urlsafe(16),
        subject=_text(subject, "subject"),
        institution=_text(institution, "institution"),
        client_id=None if client_id is None else _text(client_id, "client_id"),
        scope=" ".join(s.text for s in parse_scopes(scope)),
        issued_at=at,
        expires_at=at,
        family_expires_at=at + policy.family_ttl,
    )
    grant = _new_refresh(template, at, policy)
    store.add(grant.record)
    return grant


def rotate_refresh_token(
    store: RefreshStore,
    policy: RefreshPolicy,
    token: str,
    *,
    client_id: str | None,
    now: float,
) -> RefreshGrant:
    """Spend ``token`` and return its successor in the same family.

    Refused (``TokenInvalid``) if it is not a refresh token (``malformed``), unknown
    (``unknown``), of a revoked family (``revoked``), issued to another client
    (``wrong-client``, and the family is revoked), already used (``replayed``: the family is
    revoked, so the thief's and the victim's copies both stop working) or expired
    (``expired``). Concurrent rotations of one token: exactly one wins and gets a successor;
    each other is a replay and revokes the family, so the winner's successor dies with it.
    """
    what = "refresh token"
    at = _now(now)
    if not isinstance(token, str) or not _REFRESH.fullmatch(token):
        raise _refuse(what, "malformed", "not a refresh token")
    token_hash = refresh_token_hash(token)
    rec = store.find(token_hash)
    if rec is None:
        raise _refuse(what, "unknown", "no such refresh token")
    if store.family_revoked(rec.family_id):
        raise _refuse(what, "revoked", "the sign-in was revoked")
    if rec.client_id != client_id:
        store.revoke_family(rec.family_id, at)
        raise _refuse(what, "wrong-client", "issued to another client; the sign-in is revoked")
    replayed = _refuse(what, "replayed", "already used; the sign-in is revoked")
    if rec.used_at is not None:
        store.revoke_family(rec.family_id, at)
        raise replayed
    if at >= rec.expires_at or at >= rec.family_expires_at:
        raise _refuse(what, "expired", "the refresh token has expired")
    if not store.mark_used(token_hash, at):  # a concurrent rotation of the same token won
        store.revoke_family(rec.family_id, at)
        raise replayed
    # Won: the successor is returned even if the family is revoked meanwhile (by a concurrent
    # loser, or a sign-out); it then fails at its first use, and so do its access tokens.
    grant = _new_refresh(rec, at, policy)
    store.add(grant.record)
    return grant


def revoke_refresh_token(store: RefreshStore, token: str, *, now: float) -> bool:
    """Revoke the family of ``token`` (sign-out); return False if the token is unknown.

    RFC 7009 answers success either way, so callers need not tell the two apart.
    """
    if not isinstance(token, str) or not _REFRESH.fullmatch(token):
        return False
    rec = store.find(refresh_token_hash(token))
    if rec is None:
        return False
    store.revoke_family(rec.family_id, _now(now))
    return True
