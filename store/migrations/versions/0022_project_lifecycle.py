"""projects: boundary revisions that apply from their effective time; retirement

A project's first boundary is `projects.geom`, for all time, until a revision is recorded:
then `project_boundaries` holds every boundary with the time it applies from (the first from
'-infinity') and `projects.geom` the newest (store.fence_cache, rules.fences.Revision).

Revision ID: 0022_project_lifecycle
Revises: 0001
Create Date: 2026-12-06 08:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0022_project_lifecycle"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("projects", sa.Column("retired_at", TS, nullable=True))
    op.create_table(
        "project_boundaries",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column(
            "geom",
            Geometry("MULTIPOLYGON", srid=4326, spatial_index=False),
            nullable=False,
        ),
        sa.Column("effective_from", TS, nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("recorded_at", TS, server_default=sa.text("now()"), nullable=False),
    )
    op.create_index(
        "ix_project_boundaries_project", "project_boundaries", ["project_id", "effective_from"]
    )


def downgrade() -> None:
    op.drop_table("project_boundaries")
    op.drop_column("projects", "retired_at")
