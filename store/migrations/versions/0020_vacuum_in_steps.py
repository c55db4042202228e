"""the other tables with a row per fix: insert-triggered vacuum in steps of 100,000 rows

`evidence_entries` and `ingest_seen` grow by one row per accepted fix, like `fixes`
(0016): with the default scale factor (20 % of the table) both reach their threshold
together, in passes that grow with the table; in steps, each pass stays short. (The soak's
lag near the end of a 60-minute run is not theirs: no vacuum ran then, docs/BENCHMARKS.md.)

Revision ID: 0020_vacuum_in_steps
Revises: 0001
Create Date: 2026-12-06 06:25:00
"""

from __future__ import annotations

from alembic import op

revision = "0020_vacuum_in_steps"
down_revision = "0001"
branch_labels = None
depends_on = ("0004_evidence",)  # evidence_entries is made there

TABLES = ("evidence_entries", "ingest_seen")


def upgrade() -> None:
    for table in TABLES:
        op.execute(
            f"ALTER TABLE {table} SET (autovacuum_vacuum_insert_scale_factor = 0,"
            " autovacuum_vacuum_insert_threshold = 100000)"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(
            f"ALTER TABLE {table} RESET (autovacuum_vacuum_insert_scale_factor,"
            " autovacuum_vacuum_insert_threshold)"
        )
