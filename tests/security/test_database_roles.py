"""The embedded PostgreSQL (CONTRACT 6.1): every login needs a password, and SiteWatch's own
login is not a superuser (it cannot run programs on the server, read its files, or make
itself an admin token by writing a role's password)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from stack.up import Stack
from tests.stack_client import StackClient


def test_logins_need_a_password(sw: StackClient) -> None:
    url = psycopg.conninfo.conninfo_to_dict(sw.endpoints["database"])
    for user in ("sitewatch", "sitewatch_app", "postgres"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(
                host="127.0.0.1", port=url["port"], dbname="sitewatch", user=user, password=""
            ).close()


def test_the_application_role_is_no_superuser(sw: StackClient) -> None:
    with psycopg.connect(sw.endpoints["database"], autocommit=True) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role == (False, False, False)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY (SELECT 1) TO PROGRAM 'id'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER ROLE sitewatch PASSWORD 'x'")
        # its work still goes: reading and writing the data
        assert conn.execute("SELECT count(*) FROM engineers").fetchone() is not None


def test_no_password_in_the_logs(running_stack: Stack) -> None:
    data = Path(running_stack.options.data_dir)
    secrets = [
        (data / "secrets" / n).read_text().strip() for n in ("pg-app.secret", "pg-owner.secret")
    ]
    for log in (data / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        assert not any(secret in text for secret in secrets), log.name
