"""Token tables: revoked access tokens, refresh tokens, revoked sign-ins, seen assertions.

No token is stored here: refresh tokens only as their SHA-256, access tokens only by ``jti``.
Every row carries the epoch second after which it is useless (``until`` /
``family_expires_at``), indexed so that pruning expired rows is a range delete.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table, Text

from medledger.store.schema import metadata

# Access tokens revoked on their own (RFC 7009), kept until the token would have expired.
access_revoked_tokens = Table(
    "access_revoked_tokens",
    metadata,
    Column("jti", String(256), primary_key=True),
    Column("until", BigInteger, nullable=False),  # epoch seconds
    Index("ix_access_revoked_tokens_until", "until"),
)

# One row per refresh token (its SHA-256, hex), each in the family of one sign-in.
access_refresh_tokens = Table(
    "access_refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(64), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("institution", String(256), nullable=False),
    Column("client_id", String(256), nullable=True),
    Column("scope", Text, nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("family_expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Index("ix_access_refresh_tokens_family", "family_id"),
    Index("ix_access_refresh_tokens_family_expires", "family_expires_at"),
)

# Revoked sign-ins (refresh token families): their refresh and access tokens are all refused.
access_revoked_families = Table(
    "access_revoked_families",
    metadata,
    Column("family_id", String(64), primary_key=True),
    Column("revoked_at", BigInteger, nullable=False),
    Column("until", BigInteger, nullable=False),  # past it no token of the family is valid
    Index("ix_access_revoked_families_until", "until"),
)

# Client assertion ids already accepted (RFC 7523 §3 item 7), kept until the assertion expires.
access_seen_assertions = Table(
    "access_seen_assertions",
    metadata,
    Column("client_id", String(256), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("until", BigInteger, nullable=False),
    Index("ix_access_seen_assertions_until", "until"),
)

__all__ = [
    "access_refresh_tokens",
    "access_revoked_families",
    "access_revoked_tokens",
    "access_seen_assertions",
]
