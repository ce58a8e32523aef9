"""Create the integration gateway tables: messages, deliveries, watermarks, sequences.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "interop_messages",
        sa.Column("id", Key, primary_key=True, autoincrement=True),
        sa.Column("interface", sa.String(128), nullable=False),
        sa.Column("institution", sa.String(256), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("control_id", sa.String(256), nullable=False),
        sa.Column("message_type", sa.String(32), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ack_code", sa.String(2), nullable=True),
        sa.Column("acked_at", sa.BigInteger, nullable=True),
        sa.Column("duplicates", sa.Integer, nullable=False),
        sa.Column("salt", sa.LargeBinary, nullable=False),
        sa.Column("raw_hash", sa.String(128), nullable=False),
        sa.Column("raw_sealed", sa.LargeBinary, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("mismatch", sa.Text, nullable=True),
        sa.Column("unmapped", sa.Text, nullable=True),
        sa.Column("refs", sa.Text, nullable=True),
        sa.Column("ledger_index", sa.BigInteger, nullable=True),
    )
    op.create_index(
        "ux_interop_messages_identity",
        "interop_messages",
        ["institution", "source", "control_id"],
        unique=True,
    )
    op.create_index("ix_interop_messages_day", "interop_messages", ["day", "interface"])
    op.create_index("ix_interop_messages_status", "interop_messages", ["status"])
    op.create_table(
        "interop_deliveries",
        sa.Column("id", Key, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("institution", sa.String(256), nullable=False),
        sa.Column("ref", sa.String(512), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("deadline_at", sa.BigInteger, nullable=False),
        sa.Column("delivered_at", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_interop_deliveries_due", "interop_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index("ix_interop_deliveries_day", "interop_deliveries", ["day", "channel"])
    op.create_table(
        "interop_watermarks",
        sa.Column("connector", sa.String(128), primary_key=True),
        sa.Column("watermark", sa.Text, nullable=False),
        sa.Column("row_key", sa.Text, nullable=True),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "interop_sequences",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("interop_sequences")
    op.drop_table("interop_watermarks")
    op.drop_index("ix_interop_deliveries_day", table_name="interop_deliveries")
    op.drop_index("ix_interop_deliveries_due", table_name="interop_deliveries")
    op.drop_table("interop_deliveries")
    op.drop_index("ix_interop_messages_status", table_name="interop_messages")
    op.drop_index("ix_interop_messages_day", table_name="interop_messages")
    op.drop_index("ux_interop_messages_identity", table_name="interop_messages")
    op.drop_table("interop_messages")
