"""ingest: the rejected log aggregated per source, reason and hour (exact counts), and the
offsets of the rejected.v1 records already counted (a redelivered batch is not counted twice)

Revision ID: 0013_rejected_tallies
Revises: 0001
Create Date: 2026-12-05 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_rejected_tallies"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Written only by streams.rejected_log (raw SQL) in the rejected sink's transaction.
    op.create_table(
        "rejected_tallies",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("kept", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "reason", "hour"),
    )
    op.create_index("ix_rejected_tallies_hour", "rejected_tallies", ["hour"])
    op.create_table(
        "sink_offsets",
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition"),
    )


def downgrade() -> None:
    op.drop_table("sink_offsets")
    op.drop_index("ix_rejected_tallies_hour", table_name="rejected_tallies")
    op.drop_table("rejected_tallies")
