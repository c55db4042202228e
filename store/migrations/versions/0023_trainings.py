"""offline trainings: a place and a time window; attendees credited once (CONTRACT §6.3)

Revision ID: 0023_trainings
Revises: 0001
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0023_trainings"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "trainings",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.Column("starts_at", TS, nullable=False),
        sa.Column("ends_at", TS, nullable=False),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.Column("min_minutes_present", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        # set once the window plus the allowed lateness has passed and the attendees are in
        sa.Column("settled_at", TS, nullable=True),
    )
    op.create_index(
        "ix_trainings_unsettled",
        "trainings",
        ["ends_at"],
        postgresql_where=sa.text("settled_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("trainings")
