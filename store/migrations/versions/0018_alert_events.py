"""alerts: the chain of each alert's events (rules.alert_chain)

Revision ID: 0018_alert_events
Revises: 0001
Create Date: 2026-12-06 05:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_alert_events"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_events",
        sa.Column("alert_id", sa.String(240), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("canonical", sa.LargeBinary(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column(
            "chained_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_index("ix_alert_events_chained_at", "alert_events", ["chained_at"])


def downgrade() -> None:
    op.drop_table("alert_events")
