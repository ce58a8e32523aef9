"""Index versions by type and time, for type-level history (GET /fhir/R4/{type}/_history).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_record_versions_type_ts", "record_versions", ["rtype", "ts"])


def downgrade() -> None:
    op.drop_index("ix_record_versions_type_ts", table_name="record_versions")
