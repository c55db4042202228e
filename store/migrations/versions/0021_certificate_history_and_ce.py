"""certificate history from registration on; continuing-education records

Every engineer gets the status they were registered with as the first entry of their
certificate's history, dated 0001-01-01 (rules.certificate: the registration applies to
everything before the first recorded change): the "before" of their first status change in
the audit log, else their current status. Continuing education: one row per record, the
year's sum is what credit and eligibility read (CONTRACT §6.3); a `ref` is unique per engineer
(a training credits once, an import row once). Hours declared on the engineer (`ce_hours`)
become a `declared` record of the year of the upgrade (the field held the current hours).

Revision ID: 0021_certificate_history_and_ce
Revises: 0001
Create Date: 2026-12-06 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_certificate_history_and_ce"
down_revision = "0001"
branch_labels = None
# cert_status_history is made in 0019, audit_log in 0017
depends_on = ("0019_registry_lifecycle", "0017_accounts_and_audit")


def upgrade() -> None:
    # the first entry: the status the engineer had before the first change recorded (the
    # audit log keeps it as the change's "before"), else the current one
    op.execute(
        """
        INSERT INTO cert_status_history (engineer_id, status, from_date, recorded_at)
        SELECT e.id,
               coalesce(
                   (SELECT a.details->'changes'->'cert_status'->>0 FROM audit_log a
                    WHERE a.target = 'engineer:' || e.id AND a.action = 'engineer.update'
                      AND a.details->'changes' ? 'cert_status'
                      AND a.details->'changes'->'cert_status'->>0 IS NOT NULL
                    ORDER BY a.id LIMIT 1),
                   e.cert_status),
               DATE '0001-01-01', e.created_at
        FROM engineers e
        WHERE NOT EXISTS (
            SELECT 1 FROM cert_status_history h
            WHERE h.engineer_id = e.id AND h.from_date <= DATE '0001-01-01'
        )
        """
    )
    op.create_table(
        "ce_records",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("engineer_id", sa.String(64), sa.ForeignKey("engineers.id"), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("ref", sa.String(128), nullable=True),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_index("ix_ce_records_engineer_year", "ce_records", ["engineer_id", "year"])
    op.create_index(
        "ux_ce_records_ref",
        "ce_records",
        ["engineer_id", "ref"],
        unique=True,
        postgresql_where=sa.text("ref IS NOT NULL"),
    )
    op.execute(
        """
        INSERT INTO ce_records (engineer_id, year, hours, kind, ref, actor, recorded_at)
        SELECT id, extract(year FROM now())::int, ce_hours, 'declared',
               'declared:' || extract(year FROM now())::int, 'registry', now()
        FROM engineers WHERE ce_hours > 0
        """
    )


def downgrade() -> None:
    op.drop_table("ce_records")
