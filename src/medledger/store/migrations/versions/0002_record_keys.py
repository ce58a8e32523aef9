"""Create ``record_keys``: one wrapped data key per subject, for encryption at rest.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_keys",
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("master_kid", sa.String(16), nullable=False),
        # NULL once the subject is erased: the tombstone row keeps the subject from ever
        # getting a fresh key.
        sa.Column("wrapped", sa.LargeBinary, nullable=True),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("shredded_at", sa.String(32), nullable=True),
        sa.Column("shred_reason", sa.Text, nullable=True),
    )
    # Rotation progress counts rows per master key.
    op.create_index("ix_record_keys_master_kid", "record_keys", ["master_kid"])


def downgrade() -> None:
    op.drop_index("ix_record_keys_master_kid", table_name="record_keys")
    op.drop_table("record_keys")
