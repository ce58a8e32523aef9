"""Create the record tables: versions, current pointers, search rows, conditional creates.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_versions",
        sa.Column("rtype", sa.String(40), primary_key=True),
        sa.Column("rid", sa.String(64), primary_key=True),
        sa.Column("vid", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("inst", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("blob", sa.LargeBinary, nullable=True),
        sa.Column("payload_hash", sa.String(128), nullable=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("ledger_index", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_record_versions_state", "record_versions", ["state"])
    op.create_index("ix_record_versions_ts", "record_versions", ["ts"])
    op.create_table(
        "record_current",
        sa.Column("rtype", sa.String(40), primary_key=True),
        sa.Column("rid", sa.String(64), primary_key=True),
        sa.Column("vid", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("inst", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
    )
    op.create_index("ix_record_current_ts", "record_current", ["rtype", "ts"])
    op.create_table(
        "record_search",
        sa.Column("rtype", sa.String(40), nullable=False),
        sa.Column("rid", sa.String(64), nullable=False),
        sa.Column("param", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("system", sa.String(255), nullable=True),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("low", sa.String(40), nullable=True),
        sa.Column("high", sa.String(40), nullable=True),
    )
    op.create_index("ix_record_search_value", "record_search", ["rtype", "param", "value"])
    op.create_index("ix_record_search_range", "record_search", ["rtype", "param", "low"])
    op.create_index("ix_record_search_rid", "record_search", ["rtype", "rid"])
    op.create_table(
        "record_conditional",
        sa.Column("rtype", sa.String(40), primary_key=True),
        sa.Column("criteria", sa.String(64), primary_key=True),
        sa.Column("rid", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("record_conditional")
    op.drop_index("ix_record_search_rid", table_name="record_search")
    op.drop_index("ix_record_search_range", table_name="record_search")
    op.drop_index("ix_record_search_value", table_name="record_search")
    op.drop_table("record_search")
    op.drop_index("ix_record_current_ts", table_name="record_current")
    op.drop_table("record_current")
    op.drop_index("ix_record_versions_ts", table_name="record_versions")
    op.drop_index("ix_record_versions_state", table_name="record_versions")
    op.drop_table("record_versions")
