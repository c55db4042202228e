"""notices: rectification notices and stop-work orders with their lifecycle, and the chain of
their events (rules.notices; CONTRACT §6.4)

Revision ID: 0025_notices
Revises: 0001
Create Date: 2026-12-06 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0025_notices"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.String(200), primary_key=True),  # engineer:msg_id of its record
        sa.Column("engineer_id", sa.String(64), nullable=False, index=True),
        sa.Column("msg_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=True),
        sa.Column("deadline", TS, nullable=False),
        sa.Column("responsible", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        # the first time it was rectified or closed: what notice_overdue judges
        sa.Column("settled_at", TS, nullable=True),
        # its notice_overdue was raised (an alert retention trims must not be raised again)
        sa.Column("overdue_raised_at", TS, nullable=True),
        sa.Column("updated_at", TS, server_default=sa.text("now()"), nullable=False),
    )
    op.create_index(
        "ix_notices_not_overdue",
        "notices",
        ["deadline"],
        postgresql_where=sa.text("overdue_raised_at IS NULL"),
    )
    op.create_table(
        "notice_events",
        sa.Column("notice_id", sa.String(200), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("details", JSONB(), nullable=False),
        sa.Column("canonical", sa.LargeBinary(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notice_events")
    op.drop_table("notices")
