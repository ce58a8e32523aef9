"""Deliver the versions of one resource to one recipient in order: ``interop_deliveries.resource``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The delivered resource without its version ("DiagnosticReport/<id>"); rows queued before
    # this revision have none and keep the old order-free behaviour.
    with op.batch_alter_table("interop_deliveries") as batch:
        batch.add_column(sa.Column("resource", sa.String(512), nullable=True))
    op.create_index(
        "ix_interop_deliveries_resource",
        "interop_deliveries",
        ["resource", "channel", "target", "status", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_interop_deliveries_resource", table_name="interop_deliveries")
    with op.batch_alter_table("interop_deliveries") as batch:
        batch.drop_column("resource")
