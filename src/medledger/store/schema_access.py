"""Access tables: institutions, users, service accounts, role grants, credentials.

No clinical data lives here. Passwords and client secrets are stored only as Argon2id hashes
(``access_credentials.secret_hash``); institutions' private keys live in key files, and only
their key ids and public keys are stored here.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from medledger.store.schema import Key, metadata

access_institutions = Table(
    "access_institutions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(10), nullable=False),  # central | member
    Column("suite", String(16), nullable=False),
    Column("key_id", String(16), nullable=False, unique=True),
    Column("public_key", String(200), nullable=False),  # hex
    Column("created", String(32), nullable=False),
)

access_users = Table(
    "access_users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("institution", String(64), ForeignKey("access_institutions.id"), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created", String(32), nullable=False),
    Index("ix_access_users_institution", "institution"),
)

access_clients = Table(
    "access_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("institution", String(64), ForeignKey("access_institutions.id"), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("jwk", Text, nullable=True),  # a public JWK (JSON), for private-key JWT assertions
    Column("jwk_thumbprint", String(64), nullable=True),  # RFC 7638, base64url SHA-256
    Column("created", String(32), nullable=False),
    Index("ix_access_clients_institution", "institution"),
)

# One row per grant ever made; revoking fills revoked_*. At most one active row per
# (principal, role, scope): the partial unique index.
_ACTIVE = text("revoked_at IS NULL")
access_grants = Table(
    "access_grants",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("kind", String(10), nullable=False),  # user | client
    Column("principal", String(64), nullable=False),
    Column("role", String(32), nullable=False),
    Column("scope", String(64), nullable=False),  # an institution id or *
    Column("granted_by", String(64), nullable=False),
    Column("granted_at", String(32), nullable=False),
    Column("revoked_by", String(64), nullable=True),
    Column("revoked_at", String(32), nullable=True),
    Index(
        "ux_access_grants_active",
        "kind",
        "principal",
        "role",
        "scope",
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    ),
    Index("ix_access_grants_role", "role"),
)

# A password (user) or client secret (client) as an Argon2id hash, and the lockout state.
access_credentials = Table(
    "access_credentials",
    metadata,
    Column("kind", String(10), primary_key=True),
    Column("principal", String(64), primary_key=True),
    Column("secret_hash", String(255), nullable=True),
    Column("failures", Integer, nullable=False),
    Column("lockouts", Integer, nullable=False),
    Column("locked_until", Float, nullable=True),  # epoch seconds
    Column("changed", String(32), nullable=False),
)

__all__ = [
    "access_clients",
    "access_credentials",
    "access_grants",
    "access_institutions",
    "access_users",
]
