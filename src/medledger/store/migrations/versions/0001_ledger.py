"""Create the ledger tables: chain metadata, entries, subtree nodes, blocks, signatures.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# On SQLite only "INTEGER PRIMARY KEY" makes the key the rowid itself (one B-tree, not two).
KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("idx", KEY, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "ledger_nodes",
        sa.Column("id", KEY, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "ledger_blocks",
        sa.Column("height", KEY, primary_key=True, autoincrement=False),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.Column("header", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_ledger_blocks_tree_size", "ledger_blocks", ["tree_size"])
    op.create_table(
        "ledger_signatures",
        sa.Column("height", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("sig", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_signatures")
    op.drop_index("ix_ledger_blocks_tree_size", table_name="ledger_blocks")
    op.drop_table("ledger_blocks")
    op.drop_table("ledger_nodes")
    op.drop_table("ledger_entries")
    op.drop_table("chain_meta")
