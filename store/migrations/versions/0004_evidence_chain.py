"""evidence chain: entries and heads

Revision ID: 0004_evidence
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_evidence"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_entries",
        sa.Column("engineer_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("msg_id", sa.String(length=128), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("order_ts", sa.Float(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("canonical", sa.LargeBinary(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column(
            "chained_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("engineer_id", "seq"),
    )
    op.create_index(
        "ux_evidence_entries_record",
        "evidence_entries",
        ["engineer_id", "kind", "msg_id"],
        unique=True,
    )
    op.create_index(
        "ix_evidence_entries_order", "evidence_entries", ["engineer_id", "order_ts"], unique=False
    )
    op.create_index(
        "ix_evidence_entries_day", "evidence_entries", ["engineer_id", "local_date"], unique=False
    )
    op.create_table(
        "evidence_heads",
        sa.Column("engineer_id", sa.String(length=64), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("watermark", sa.Float(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("engineer_id"),
    )


def downgrade() -> None:
    op.drop_table("evidence_heads")
    op.drop_index("ix_evidence_entries_day", table_name="evidence_entries")
    op.drop_index("ix_evidence_entries_order", table_name="evidence_entries")
    op.drop_index("ux_evidence_entries_record", table_name="evidence_entries")
    op.drop_table("evidence_entries")
