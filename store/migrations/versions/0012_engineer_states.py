"""streams: the worker's per-engineer state in PostgreSQL (was a Faust table and changelog):
head rows and track-window rows

Revision ID: 0012_engineer_states
Revises: 0001
Create Date: 2026-11-24 15:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_engineer_states"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Written by store.engineer_states in the stream worker's batch transaction. `json`, not
    # `jsonb`: written once per engineer per batch and read back whole, never queried inside.
    op.create_table(
        "engineer_states",
        sa.Column("engineer_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        # the clock's stream time: a head is never replaced by one further behind
        sa.Column("stream_ts", sa.Float(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("engineer_id"),
    )

    # One row per fix of an engineer's track window (store.engineer_states.save adds the fixes
    # that entered it and deletes those that left, instead of rewriting the window).
    op.create_table(
        "engineer_track_window",
        sa.Column("engineer_id", sa.String(length=64), nullable=False),
        sa.Column("msg_id", sa.String(length=128), nullable=False),
        sa.Column("fix", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("engineer_id", "msg_id"),
    )


def downgrade() -> None:
    op.drop_table("engineer_track_window")
    op.drop_table("engineer_states")
