"""supervision_logs: practice records (CONTRACT §6.4): their kind, their files (named by SM3,
stored content-addressed under the data directory) and what the receiver flagged

Revision ID: 0024_practice_records
Revises: 0001
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0024_practice_records"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "supervision_logs",
        sa.Column("kind", sa.String(16), nullable=False, server_default="log"),
    )
    # quality, safety, progress, materials, environment, documents or other (categories.model)
    op.add_column("supervision_logs", sa.Column("category", sa.String(16), nullable=True))
    op.add_column(
        "supervision_logs",
        sa.Column("files", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
    )
    op.add_column(
        "supervision_logs",
        sa.Column("flags", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
    )

    # GET /api/attachments/{sm3}: the records naming a file
    op.create_index(
        "ix_supervision_logs_files",
        "supervision_logs",
        ["files"],
        postgresql_using="gin",
        postgresql_ops={"files": "jsonb_path_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_supervision_logs_files", table_name="supervision_logs")
    for column in ("flags", "files", "category", "kind"):
        op.drop_column("supervision_logs", column)
