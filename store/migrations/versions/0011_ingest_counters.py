"""ingest: per-source, per-outcome message counters of the edge processes (bridge, HTTP ingest)

Revision ID: 0011_ingest
Revises: 0001
Create Date: 2026-11-24 05:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_ingest"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Written only by ingest.counters (raw SQL, no ORM model): each gate adds its deltas.
    op.create_table(
        "ingest_counters",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("source", "outcome"),
    )


def downgrade() -> None:
    op.drop_table("ingest_counters")
