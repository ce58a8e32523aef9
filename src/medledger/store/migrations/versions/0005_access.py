"""Create the access tables: institutions, users, clients, role grants, credentials.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "access_institutions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("suite", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False, unique=True),
        sa.Column("public_key", sa.String(200), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
    )
    op.create_table(
        "access_users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "institution",
            sa.String(64),
            sa.ForeignKey("access_institutions.id"),
            nullable=False,
        ),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
    )
    op.create_index("ix_access_users_institution", "access_users", ["institution"])
    op.create_table(
        "access_clients",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column(
            "institution",
            sa.String(64),
            sa.ForeignKey("access_institutions.id"),
            nullable=False,
        ),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("jwk", sa.Text, nullable=True),
        sa.Column("jwk_thumbprint", sa.String(64), nullable=True),
        sa.Column("created", sa.String(32), nullable=False),
    )
    op.create_index("ix_access_clients_institution", "access_clients", ["institution"])
    op.create_table(
        "access_grants",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("principal", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("granted_at", sa.String(32), nullable=False),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.Column("revoked_at", sa.String(32), nullable=True),
    )
    op.create_index(
        "ux_access_grants_active",
        "access_grants",
        ["kind", "principal", "role", "scope"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_index("ix_access_grants_role", "access_grants", ["role"])
    op.create_table(
        "access_credentials",
        sa.Column("kind", sa.String(10), primary_key=True),
        sa.Column("principal", sa.String(64), primary_key=True),
        sa.Column("secret_hash", sa.String(255), nullable=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("lockouts", sa.Integer, nullable=False),
        sa.Column("locked_until", sa.Float, nullable=True),
        sa.Column("changed", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("access_credentials")
    op.drop_index("ix_access_grants_role", table_name="access_grants")
    op.drop_index("ux_access_grants_active", table_name="access_grants")
    op.drop_table("access_grants")
    op.drop_index("ix_access_clients_institution", table_name="access_clients")
    op.drop_table("access_clients")
    op.drop_index("ix_access_users_institution", table_name="access_users")
    op.drop_table("access_users")
    op.drop_table("access_institutions")
