"""Every migration's revision id fits Alembic's `alembic_version.version_num` (VARCHAR(32)):
a longer one is applied and then fails to be recorded, and the stack does not start
(0028's first name, 34 characters, did). No database needed."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from store.migrate import MIGRATIONS, alembic_config

VERSION_NUM_LENGTH = 32


def test_every_revision_id_fits_the_version_table() -> None:
    scripts = ScriptDirectory.from_config(alembic_config("postgresql+psycopg://unused/x"))
    revisions = [r.revision for r in scripts.walk_revisions()]
    assert len(revisions) == len(list((MIGRATIONS / "versions").glob("0*.py")))  # all read
    too_long = [r for r in revisions if len(r) > VERSION_NUM_LENGTH]
    assert not too_long, too_long
