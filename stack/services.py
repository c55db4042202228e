"""The embedded services of `sitewatch up` and of the test fixtures: a private PostGIS
cluster, a private Mosquitto with dynamic security, and Apache Kafka (one KRaft node).

Each `start_*` returns the running child and what a client needs to reach it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from stack.processes import Child, Supervisor, free_port, wait_for_port
from stack.tls import TlsFiles

log = logging.getLogger("sitewatch.stack")

PG_BIN = Path(os.environ.get("SITEWATCH_PG_BIN", "/usr/lib/postgresql/15/bin"))
DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
# stack/mosquitto/sitewatch_journal.c, built by `make` (mosquitto-journal): keeps what Mosquitto
# acknowledged until its next snapshot, and publishes it again after a crash.
JOURNAL_PLUGIN = Path(
    os.environ.get(
        "SITEWATCH_MQTT_JOURNAL_PLUGIN",
        Path(__file__).resolve().parents[1] / ".mosquitto" / "sitewatch_journal.so",
    )
)
DB_NAME = "sitewatch"
DB_USER = "sitewatch"  # the cluster's superuser: migrations and roles
APP_USER = "sitewatch_app"  # what the services log in as


class ServiceError(RuntimeError):
    """An embedded service could not be started; the message says what to install or check."""


# --- PostGIS ----------------------------------------------------------------------------


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


# --- Mosquitto --------------------------------------------------------------------------


@dataclass
class Mosquitto:
    child: Child
    port: int
    admin_password: str


def start_mosquitto(
    sup: Supervisor,
    data_dir: Path,
    port: int | None = None,
    *,
    bridge_username: str = "sitewatch-bridge",
    tls: TlsListener | None = None,
) -> Mosquitto:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise ServiceError("mosquitto not found: apt-get install mosquitto mosquitto-clients")
    if not DYNSEC_PLUGIN.exists():
        raise ServiceError(f"{DYNSEC_PLUGIN} not found (Debian mosquitto ships it)")
    mqtt_dir = data_dir / "mqtt"
    mqtt_dir.mkdir(parents=True, exist_ok=True)
    mqtt_dir.chmod(0o700)  # password hashes, the admin secret, the persisted messages
    dynsec = mqtt_dir / "dynamic-security.json"
    secret_file = mqtt_dir / "admin.secret"
    if not dynsec.exists():
        admin_password = secrets.token_urlsafe(18)
        subprocess.run(
            ["mosquitto_ctrl", "dynsec", "init", str(dynsec), "sitewatch-admin", admin_password],
            check=True,
            capture_output=True,
        )
        secret_file.write_text(admin_password)
        secret_file.chmod(0o600)
    admin_password = secret_file.read_text().strip()
    port = port or free_port()
    conf = mqtt_dir / "mosquitto.conf"
    user_line = "user root\n" if os.geteuid() == 0 else ""
    if JOURNAL_PLUGIN.exists():
        journal = (
            f"plugin {JOURNAL_PLUGIN}\n"
            f"plugin_opt_journal_dir {mqtt_dir / 'journal'}\n"
            f"plugin_opt_snapshot_file {mqtt_dir / 'mosquitto.db'}\n"
            f"plugin_opt_skip_username {bridge_username}\n"
        )
    else:
        journal = ""
        log.warning(
            "%s is missing (make mosquitto-journal): a crash of Mosquitto loses what it "
            "acknowledged in the second before",
            JOURNAL_PLUGIN,
        )
    public = ""
    if tls is not None:  # MQTT over TLS on the public address; the same accounts and ACLs
        public = (
            f"listener {tls.port} {tls.host}\n"
            f"certfile {tls.files.cert}\nkeyfile {tls.files.key}\n"
            "tls_version tlsv1.2\n"
        )
    conf.write_text(
        f"{user_line}"
        "per_listener_settings false\n"
        f"listener {port} 127.0.0.1\n"
        f"{public}"
        "allow_anonymous false\n"
        f"plugin {DYNSEC_PLUGIN}\n"
        f"plugin_opt_config_file {dynsec}\n"
        f"{journal}"
        "persistence true\n"
        f"persistence_location {mqtt_dir}/\n"
        "autosave_interval 1\n"
        "max_queued_messages 0\n"
        "max_inflight_messages 0\n"
        # Ingest payloads are at most 64 KiB (wire.fields.MAX_PAYLOAD); bigger ones up to this
        # size still reach the bridge, so the sender's mistake is in the rejected log.
        "max_packet_size 2000000\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
        "log_dest stdout\n"
    )
    child = sup.start("mosquitto", [exe, "-c", str(conf)])
    wait_for_port("127.0.0.1", port, timeout_s=20, child=child)
    return Mosquitto(child, port, admin_password)


# --- Apache Kafka ------------------------------------------------------------------------

KAFKA_LIB = Path(
    os.environ.get("SITEWATCH_KAFKA_LIB", Path(__file__).resolve().parents[1] / ".kafka" / "lib")
)
KAFKA_HEAP = "256m"
# The broker's retention for a topic created without its own (config.topics gives SiteWatch's
# topics theirs): fixes are in PostGIS seconds after they arrive, so Kafka's log only has to
# cover a stream worker that is down or behind: a day, or 512 MiB per partition, first reached.
KAFKA_RETENTION_HOURS = 24
KAFKA_RETENTION_BYTES = 512 * 1024 * 1024
KAFKA_SEGMENT_BYTES = 64 * 1024 * 1024  # retention deletes whole segments: keep them small


@dataclass(frozen=True)
class TlsListener:
    host: str
    port: int
    files: TlsFiles


@dataclass
class Kafka:
    child: Child
    port: int
    controller_port: int

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"


def kafka_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not starting
    with '-' (Kafka's own Uuid.randomUuid rule, so command lines do not take it as a flag)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _kafka_properties(data: Path, port: int, cport: int) -> str:
    props = {
        # one process is broker and KRaft controller (no ZooKeeper)
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data / "data"),
        # a single node: every internal topic has one replica
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "8",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "group.initial.rebalance.delay.ms": "0",
        # after a crash the restarted node may only register once the dead incarnation's
        # session expired: 9 s by default, most of the restart time (measured: 14 s -> 8 s)
        "broker.session.timeout.ms": "4000",
        "broker.heartbeat.interval.ms": "1000",
        # config.topics and Faust declare every topic with its partition count; a topic made
        # up by a typo should fail, not appear with some default count
        "auto.create.topics.enable": "false",
        "num.partitions": "8",
        # sized for two cores shared with PostgreSQL, Mosquitto and the Python processes
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "log.cleaner.threads": "1",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),  # 128 MiB of heap by default
        # broker-wide retention for topics nobody configured (Faust's own are compacted)
        "log.retention.hours": str(KAFKA_RETENTION_HOURS),
        "log.retention.bytes": str(KAFKA_RETENTION_BYTES),
        "log.segment.bytes": str(KAFKA_SEGMENT_BYTES),
        "log.retention.check.interval.ms": "60000",
        # no fsync of its own: a killed process loses nothing (the page cache has it), a power
        # loss can lose the last seconds (docs/reliability.md)
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _kafka_log4j(logs: Path) -> str:
    return (
        "log4j.rootLogger=WARN, file\n"
        "log4j.appender.file=org.apache.log4j.RollingFileAppender\n"
        f"log4j.appender.file.File={logs / 'kafka-server.log'}\n"
        "log4j.appender.file.MaxFileSize=10MB\n"
        "log4j.appender.file.MaxBackupIndex=3\n"
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        # the line that says the broker is up, so a restart shows in the log
        "log4j.logger.kafka.server.KafkaRaftServer=INFO\n"
    )


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    exe = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not exe or not Path(exe).exists():
        raise ServiceError("java not found: apt-get install default-jre-headless")
    return exe


def start_kafka(
    sup: Supervisor, data_dir: Path, port: int | None = None, *, ready_timeout_s: float = 120
) -> Kafka:
    """Apache Kafka, one node in KRaft combined mode, its log under DATA_DIR/kafka/data.

    The storage is formatted once (the cluster id is kept in DATA_DIR/kafka/cluster.id); a
    later start on the same directory resumes the log. Returns once a group coordinator
    answers, not merely once the port is open."""
    if not any(KAFKA_LIB.glob("kafka_2.13-*.jar")):
        raise ServiceError(f"the Kafka jars are missing from {KAFKA_LIB}: run `make kafka`")
    java = _java()
    kdir = data_dir / "kafka"
    kdir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    # the controller keeps its port across restarts of one data directory when it can
    cport_file = kdir / "controller.port"
    cport = int(cport_file.read_text()) if cport_file.exists() else 0
    if not cport or cport == port or not _port_free(cport):
        cport = free_port()
        while cport == port:
            cport = free_port()
        cport_file.write_text(str(cport))
    conf = kdir / "server.properties"
    conf.write_text(_kafka_properties(kdir, port, cport))
    log4j = kdir / "log4j.properties"
    log4j.write_text(_kafka_log4j(logs))
    classpath = str(KAFKA_LIB / "*")
    jvm = [
        java,
        f"-Xmx{KAFKA_HEAP}",
        f"-Xms{KAFKA_HEAP}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",  # `up` restarts it rather than it limping on
        f"-XX:ErrorFile={logs / 'kafka-hs_err_%p.log'}",  # not in the working directory
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{log4j}",
        f"-Dkafka.logs.dir={logs}",
        "-cp",
        classpath,
    ]
    cid_file = kdir / "cluster.id"
    if not cid_file.exists():
        cid_file.write_text(kafka_cluster_id())
    if not (kdir / "data" / "meta.properties").exists():
        cid = cid_file.read_text().strip()
        log.info("formatting Kafka storage %s (cluster id %s)", kdir / "data", cid)
        done = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", "-t", cid, "-c", str(conf)],
            capture_output=True,
            text=True,
            umask=0o077,  # its log4j opens logs/kafka-server.log first: owner only
        )
        if done.returncode != 0:
            raise ServiceError(f"kafka-storage format failed: {done.stdout}{done.stderr}")
    child = sup.start("kafka", [*jvm, "kafka.Kafka", str(conf)])
    wait_for_port("127.0.0.1", port, timeout_s=ready_timeout_s, child=child)
    kafka = Kafka(child, port, cport)
    wait_kafka_ready(kafka.url, timeout_s=ready_timeout_s, child=child)
    return kafka


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_kafka_ready(bootstrap: str, *, timeout_s: float, child: Child | None = None) -> None:
    """Until a group coordinator answers FindCoordinator: before that, consumers and Faust
    get COORDINATOR_NOT_AVAILABLE (the offsets topic is created on the first request)."""
    asyncio.run(_wait_coordinator(bootstrap, timeout_s, child))


async def _wait_coordinator(bootstrap: str, timeout_s: float, child: Child | None) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if child is not None and child.popen.poll() is not None:
            raise ServiceError(
                f"kafka exited with code {child.popen.returncode} during start-up; "
                f"see {child.log_path}"
            )
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.find_coordinator("sitewatch-ready-check")
            return
        except Exception as exc:  # not ready yet: connection refused, coordinator not available
            last = f"{type(exc).__name__}: {exc}"
        finally:
            await admin.close()
        await asyncio.sleep(0.3)
    raise TimeoutError(
        f"Kafka at {bootstrap} has no group coordinator after {timeout_s:.0f} s ({last})"
    )


def write_json(path: Path, payload: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    tmp.chmod(0o600)  # it holds the service identity's MQTT password
    tmp.replace(path)
