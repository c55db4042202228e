"""registry: tokens get an id, an expiry and a revocation

Revision ID: 0015_token_lifecycle
Revises: 0001
Create Date: 2026-12-06 00:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_token_lifecycle"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tokens", sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False)
    )
    op.create_unique_constraint("uq_tokens_id", "tokens", ["id"])
    op.add_column("tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tokens", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("tokens", "revoked_at")
    op.drop_column("tokens", "expires_at")
    op.drop_constraint("uq_tokens_id", "tokens")
    op.drop_column("tokens", "id")
