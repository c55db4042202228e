"""streams: track windows rebuilt from `fixes`, no longer stored apart

Every fix of an engineer's track window is a row of `fixes`, written in the same transaction
as the head; the worker now reads the window back from there (rules.engineer_state). The
`engineer_track_window` rows (an insert and a delete per fix) go; each head (format 2 → 3)
gets the time of its newest window fix, which bounds that read.

Revision ID: 0027_track_window_from_fixes
Revises: 0001
Create Date: 2026-12-06 23:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027_track_window_from_fixes"
down_revision = "0001"
branch_labels = None
depends_on = ("0012_engineer_states", "0026_heads_fillfactor")


def upgrade() -> None:
    # the newest fix of the stored window (its rows, or a window still inline in the head)
    op.execute(
        """
        UPDATE engineer_states s SET state = CAST(
            jsonb_set(jsonb_set(CAST(s.state AS jsonb) - 'window', '{format}', '3'),
                      '{newest}',
                      coalesce(to_jsonb(greatest(
                          (SELECT max(CAST(w.fix ->> 1 AS double precision))
                           FROM engineer_track_window w WHERE w.engineer_id = s.engineer_id),
                          (SELECT max(CAST(x ->> 1 AS double precision))
                           FROM json_array_elements(
                               CASE WHEN json_typeof(s.state -> 'window') = 'array'
                                    THEN s.state -> 'window' ELSE '[]'::json END) x)
                      )), 'null'::jsonb))
            AS json)
        WHERE CAST(s.state AS jsonb) ->> 'format' = '2'
        """
    )
    op.drop_table("engineer_track_window")


def downgrade() -> None:
    # The windows themselves are not written back: the older worker then resumes each track
    # from its anchor (events of pairs across that point are not re-examined).
    op.create_table(
        "engineer_track_window",
        sa.Column("engineer_id", sa.String(length=64), nullable=False),
        sa.Column("msg_id", sa.String(length=128), nullable=False),
        sa.Column("fix", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("engineer_id", "msg_id"),
    )
    op.execute(
        "UPDATE engineer_states SET state = CAST(jsonb_set(CAST(state AS jsonb) - 'newest', "
        "'{format}', '2') AS json) WHERE CAST(state AS jsonb) ->> 'format' = '3'"
    )
