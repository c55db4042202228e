"""streams: device_last_seen, indexes for missing_log and device_offline

Revision ID: 0003_streams
Revises: 0001
Create Date: 2026-11-24 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_streams"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_last_seen",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("last_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_index(
        "ix_supervision_logs_engineer_day",
        "supervision_logs",
        ["engineer_id", "local_date", "project_id"],
        unique=False,
    )
    op.create_index("ix_alerts_device_type", "alerts", ["device_id", "type"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alerts_device_type", table_name="alerts")
    op.drop_index("ix_supervision_logs_engineer_day", table_name="supervision_logs")
    op.drop_table("device_last_seen")
