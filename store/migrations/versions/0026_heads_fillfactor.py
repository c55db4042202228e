"""the tables updated once per engineer and batch: room on each page for HOT updates

`engineer_states` and `evidence_heads` get one row per engineer, updated by every batch that
has the engineer. Full pages (fillfactor 100) made most updates non-HOT: in a bench run 17 %
and 43 % were HOT, so the others added an entry to the primary key's index and left a dead
one behind. With half of each page free, an update usually stays on its page (the tables
hold one small row per engineer, so doubling them costs little). Pages written from now on
get the room; old ones as they are rewritten.

Revision ID: 0026_heads_fillfactor
Revises: 0001
Create Date: 2026-12-06 20:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0026_heads_fillfactor"
down_revision = "0001"
branch_labels = None
depends_on = ("0004_evidence", "0012_engineer_states")

TABLES = ("engineer_states", "evidence_heads")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 50)")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
