"""registry: credentials of the HTTP ingest: the hash of an engineer's MQTT password (OwnTracks
HTTP Basic auth) and phones' secret OsmAnd ids

Revision ID: 0014_http_ingest_credentials
Revises: 0001
Create Date: 2026-12-06 00:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_http_ingest_credentials"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "engineers", sa.Column("ingest_password_hash", sa.String(length=64), nullable=True)
    )
    op.create_table(
        "phones",
        sa.Column("osmand_id_hash", sa.String(length=64), nullable=False),
        sa.Column("engineer_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["engineer_id"], ["engineers.id"]),
        sa.PrimaryKeyConstraint("osmand_id_hash"),
    )
    op.create_index("ix_phones_engineer_id", "phones", ["engineer_id"])


def downgrade() -> None:
    op.drop_index("ix_phones_engineer_id", table_name="phones")
    op.drop_table("phones")
    op.drop_column("engineers", "ingest_password_hash")
