"""registry lifecycle: certificate details and history, employer, retirement, revoked filings

Revision ID: 0019_registry_lifecycle
Revises: 0001
Create Date: 2026-12-06 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_registry_lifecycle"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    for name, column_type in (
        ("cert_status_from", sa.Date()),
        ("cert_number", sa.String(64)),
        ("cert_valid_to", sa.Date()),
        ("employer_name", sa.Text()),
        ("employer_credit_code", sa.String(18)),
        ("retired_at", TS),
    ):
        op.add_column("engineers", sa.Column(name, column_type, nullable=True))
    op.add_column("devices", sa.Column("retired_at", TS, nullable=True))
    op.add_column("filings", sa.Column("revoked_on", sa.Date(), nullable=True))
    op.create_table(
        "cert_status_history",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("engineer_id", sa.String(64), sa.ForeignKey("engineers.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("from_date", sa.Date(), nullable=False),
        sa.Column("recorded_at", TS, server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("ix_cert_status_history_engineer_id", "cert_status_history", ["engineer_id"])


def downgrade() -> None:
    op.drop_table("cert_status_history")
    op.drop_column("filings", "revoked_on")
    op.drop_column("devices", "retired_at")
    for name in (
        "retired_at",
        "employer_credit_code",
        "employer_name",
        "cert_valid_to",
        "cert_number",
        "cert_status_from",
    ):
        op.drop_column("engineers", name)
