"""Create the audit-trail tables: events, their entity index, and the anchored batches.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", _KEY, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("recorded", sa.String(32), nullable=False),
        sa.Column("principal", sa.String(64), nullable=False),
        sa.Column("institution", sa.String(64), nullable=False),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("outcome", sa.Integer, nullable=False),
        sa.Column("break_glass", sa.Boolean, nullable=False),
        sa.Column("event", sa.LargeBinary, nullable=False),
        sa.Column("batch_id", sa.String(36), nullable=True),
    )
    op.create_index("ix_audit_events_recorded", "audit_events", ["recorded"])
    op.create_index("ix_audit_events_principal", "audit_events", ["principal"])
    op.create_index("ix_audit_events_break_glass", "audit_events", ["break_glass"])
    op.create_index("ix_audit_events_batch", "audit_events", ["batch_id"])
    op.create_table(
        "audit_entities",
        sa.Column("seq", _KEY, primary_key=True, autoincrement=False),
        sa.Column("ref", sa.String(200), primary_key=True),
    )
    op.create_index("ix_audit_entities_ref", "audit_entities", ["ref", "seq"])
    op.create_table(
        "audit_batches",
        sa.Column("batch_id", sa.String(36), primary_key=True),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("root", sa.String(128), nullable=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("ledger_index", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_audit_batches_state", "audit_batches", ["state"])
    op.create_index("ix_audit_batches_first_seq", "audit_batches", ["first_seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_batches_first_seq", table_name="audit_batches")
    op.drop_index("ix_audit_batches_state", table_name="audit_batches")
    op.drop_table("audit_batches")
    op.drop_index("ix_audit_entities_ref", table_name="audit_entities")
    op.drop_table("audit_entities")
    op.drop_index("ix_audit_events_batch", table_name="audit_events")
    op.drop_index("ix_audit_events_break_glass", table_name="audit_events")
    op.drop_index("ix_audit_events_recorded", table_name="audit_events")
    op.drop_index("ix_audit_events_principal", table_name="audit_events")
    op.drop_table("audit_events")
