"""fixes: drop the GiST index on geom, set insert-triggered vacuum to small steps

No query filters `fixes` by space (positions, tracks and the heat map select by engineer, day
and time), yet every inserted fix paid for a GiST insertion, and every insert-triggered
autovacuum scanned the whole GiST index (GiST's cleanup always does). Both grow with the
table; without them the soak's lag bumps at 2.5 and 3.0 million rows were gone (its rise near
the end of a 60-minute run was not theirs: docs/BENCHMARKS.md).

Insert-triggered vacuum (PostgreSQL 13+) fires after 20 % of the table by default: one long
pass every few hundred thousand rows. A fixed step of 100,000 rows keeps each pass short.

Revision ID: 0016_fixes_without_spatial_index
Revises: 0001
Create Date: 2026-12-06 05:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0016_fixes_without_spatial_index"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("idx_fixes_geom", table_name="fixes", postgresql_using="gist")
    op.execute(
        "ALTER TABLE fixes SET (autovacuum_vacuum_insert_scale_factor = 0,"
        " autovacuum_vacuum_insert_threshold = 100000)"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE fixes RESET (autovacuum_vacuum_insert_scale_factor,"
        " autovacuum_vacuum_insert_threshold)"
    )
    op.create_index("idx_fixes_geom", "fixes", ["geom"], unique=False, postgresql_using="gist")
