"""A private PostGIS cluster for `sitewatch up` and the test fixtures: initdb and postgres
from Debian's postgresql-15 under DATA_DIR/pg, password logins only, a non-superuser
application role (docs/stack.md, docs/security.md)."""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from stack.processes import Child, Supervisor, free_port, wait_for_port
from stack.services import ServiceError

log = logging.getLogger("sitewatch.stack")

PG_BIN = Path(os.environ.get("SITEWATCH_PG_BIN", "/usr/lib/postgresql/15/bin"))
DB_NAME = "sitewatch"
DB_USER = "sitewatch"  # the cluster's superuser: migrations and roles
APP_USER = "sitewatch_app"  # what the services log in as


def _postgres_user() -> tuple[int, int] | None:
    """initdb and postgres refuse to run as root: as root, run them as the `postgres` user."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServiceError(
            "running as root needs the Debian `postgres` user (apt-get install postgresql-15)"
        ) from exc
    return pw.pw_uid, pw.pw_gid


def _as_user(ids: tuple[int, int] | None):  # type: ignore[no-untyped-def]
    if ids is None:
        return None
    uid, gid = ids

    def demote() -> None:
        os.setgid(gid)
        os.setuid(uid)

    return demote


def _make_traversable(path: Path) -> None:
    """The postgres user must reach the cluster directory through every parent."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o011)


@dataclass
class Postgres:
    """`url` is the application's login (no superuser: data, not the server); `owner_url` the
    cluster's superuser, for migrations and roles only. Both need their password."""

    child: Child
    port: int
    owner_password: str = ""
    app_password: str = ""

    @property
    def owner_url(self) -> str:
        return f"postgresql://{DB_USER}:{self.owner_password}@127.0.0.1:{self.port}/{DB_NAME}"

    @property
    def url(self) -> str:
        return f"postgresql://{APP_USER}:{self.app_password}@127.0.0.1:{self.port}/{DB_NAME}"


# Every login needs its password (SCRAM); over the socket and over TCP alike.
PG_HBA = """\
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


def _secret(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def start_postgres(sup: Supervisor, data_dir: Path, port: int | None = None) -> Postgres:
    if not (PG_BIN / "postgres").exists():
        raise ServiceError(
            f"{PG_BIN}/postgres not found: apt-get install postgresql-15 postgresql-15-postgis-3"
        )
    if not Path("/usr/share/postgresql/15/extension/postgis.control").exists():
        raise ServiceError("PostGIS is missing: apt-get install postgresql-15-postgis-3")
    ids = _postgres_user()
    cluster = data_dir / "pg"
    sockets = data_dir / "pg-run"
    sockets.mkdir(parents=True, exist_ok=True)
    if ids:
        _make_traversable(data_dir)
        os.chown(sockets, *ids)
    owner_password = _secret(data_dir / "secrets" / "pg-owner.secret")
    app_password = _secret(data_dir / "secrets" / "pg-app.secret")
    legacy_trust = (cluster / "PG_VERSION").exists() and "trust" in _hba_rules(cluster)
    if not (cluster / "PG_VERSION").exists():
        cluster.mkdir(parents=True, exist_ok=True)
        if ids:
            os.chown(cluster, *ids)
        log.info("initdb %s", cluster)
        pwfile = sockets / ".initdb-password"  # a place the `postgres` user may read
        pwfile.write_text(owner_password + "\n")
        pwfile.chmod(0o600)
        if ids:
            os.chown(pwfile, *ids)
        try:
            subprocess.run(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(cluster),
                    "-U",
                    DB_USER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                check=True,
                capture_output=True,
                preexec_fn=_as_user(ids),
            )
        finally:
            pwfile.unlink()
        _write_hba(cluster, ids)
    port = port or free_port()
    child = sup.start(
        "postgres",
        [
            str(PG_BIN / "postgres"),
            "-D",
            str(cluster),
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "synchronous_commit=off",
            "-c",
            "fsync=on",
            # fewer, smaller checkpoint storms: they stalled batches (docs/reliability.md)
            "-c",
            "wal_compression=lz4",
            "-c",
            "max_wal_size=2GB",
            # no JIT: it compiled for tens of milliseconds before short batch statements
            # whose row estimates were high (the evidence tail, store/evidence.py)
            "-c",
            "jit=off",
            # per-statement times for operators and the soak (docs/reliability.md)
            "-c",
            "shared_preload_libraries=pg_stat_statements",
        ],
        stop_signal=signal.SIGINT,  # fast shutdown
        preexec_fn=_as_user(ids),
    )
    wait_for_port("127.0.0.1", port, timeout_s=60, child=child)
    pg = Postgres(child, port, owner_password, app_password)
    if legacy_trust:  # a data directory of an earlier version: password logins from now on
        _set_password(port, owner_password)
        _write_hba(cluster, ids)
        _reload(pg)
    _create_database(pg)
    return pg


def _hba_rules(cluster: Path) -> str:
    lines = (cluster / "pg_hba.conf").read_text().splitlines()
    return "\n".join(line for line in lines if line.strip() and not line.startswith("#"))


def _write_hba(cluster: Path, ids: tuple[int, int] | None) -> None:
    hba = cluster / "pg_hba.conf"
    hba.write_text(PG_HBA)
    hba.chmod(0o600)
    if ids:
        os.chown(hba, *ids)


def _set_password(port: int, password: str) -> None:
    import psycopg

    with psycopg.connect(
        f"postgresql://{DB_USER}@127.0.0.1:{port}/postgres", autocommit=True, connect_timeout=30
    ) as conn:
        conn.execute(f"ALTER ROLE {DB_USER} PASSWORD %s", (password,))  # type: ignore[arg-type]


def _reload(pg: Postgres) -> None:
    import psycopg

    with psycopg.connect(pg.owner_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


def migrated(pg: Postgres) -> str:
    """Migrate the schema as its owner, grant the application role; the application's URL."""
    from config.settings import Settings
    from store.migrate import upgrade

    upgrade(Settings(database_url=pg.owner_url).sync_database_url)
    grant_app_role(pg)
    return pg.url


def redacted(url: str) -> str:
    """`url` without its password, for logs."""
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, userinfo = head.partition("//")
    return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{tail}"


def grant_app_role(pg: Postgres) -> None:
    """The application's login: no superuser, no role or database creation; reads and writes
    the data of the schema (after every migration: tables they add are granted too)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg.owner_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_USER,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(
                "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}"
            ).format(sql.SQL(verb), sql.Identifier(APP_USER), sql.Literal(pg.app_password))
        )
        for statement in (
            "GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {app}",
            "GRANT USAGE ON SCHEMA public TO {app}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
            "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {app}",
            # what the owner creates later (a migration, an operator's repair) is granted too
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
            "GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {app}",
            "REVOKE ALL ON TABLE alembic_version FROM {app}",
            "GRANT SELECT ON TABLE alembic_version TO {app}",
            # the application appends to the audit log and never rewrites it
            "REVOKE UPDATE, DELETE, TRUNCATE ON TABLE audit_log FROM {app}",
            # read-only server statistics: every statement's times in pg_stat_statements
            "GRANT pg_read_all_stats TO {app}",
        ):
            conn.execute(
                sql.SQL(statement).format(
                    db=sql.Identifier(DB_NAME),
                    app=sql.Identifier(APP_USER),
                    owner=sql.Identifier(DB_USER),
                )
            )


def _create_database(pg: Postgres) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg.connect(pg.owner_url.rsplit("/", 1)[0] + "/postgres", autocommit=True)
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            conn.execute(f"CREATE DATABASE {DB_NAME}")
    with psycopg.connect(pg.owner_url, autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
