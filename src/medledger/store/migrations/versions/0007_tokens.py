"""Create the token tables: revoked access tokens, refresh tokens, revoked sign-ins, assertions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_revoked_tokens",
        sa.Column("jti", sa.String(256), primary_key=True),
        sa.Column("until", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_access_revoked_tokens_until", "access_revoked_tokens", ["until"])
    op.create_table(
        "access_refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("family_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("institution", sa.String(256), nullable=False),
        sa.Column("client_id", sa.String(256), nullable=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("issued_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("family_expires_at", sa.BigInteger, nullable=False),
        sa.Column("used_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_access_refresh_tokens_family", "access_refresh_tokens", ["family_id"])
    op.create_index(
        "ix_access_refresh_tokens_family_expires", "access_refresh_tokens", ["family_expires_at"]
    )
    op.create_table(
        "access_revoked_families",
        sa.Column("family_id", sa.String(64), primary_key=True),
        sa.Column("revoked_at", sa.BigInteger, nullable=False),
        sa.Column("until", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_access_revoked_families_until", "access_revoked_families", ["until"])
    op.create_table(
        "access_seen_assertions",
        sa.Column("client_id", sa.String(256), primary_key=True),
        sa.Column("jti", sa.String(256), primary_key=True),
        sa.Column("until", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_access_seen_assertions_until", "access_seen_assertions", ["until"])


def downgrade() -> None:
    for table, index in (
        ("access_seen_assertions", "ix_access_seen_assertions_until"),
        ("access_revoked_families", "ix_access_revoked_families_until"),
        ("access_revoked_tokens", "ix_access_revoked_tokens_until"),
    ):
        op.drop_index(index, table_name=table)
        op.drop_table(table)
    op.drop_index("ix_access_refresh_tokens_family_expires", table_name="access_refresh_tokens")
    op.drop_index("ix_access_refresh_tokens_family", table_name="access_refresh_tokens")
    op.drop_table("access_refresh_tokens")
