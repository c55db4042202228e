"""Apache Kafka 3.9 as one KRaft node (broker and controller) under DATA_DIR/kafka, its jars from
`make kafka`; ready once a group coordinator answers."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from stack.processes import Child, Supervisor, free_port, wait_for_port
from stack.services import ServiceError

log = logging.getLogger("sitewatch.stack")


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
        # every pause of the broker's collector, with its time: a stall of the end-to-end
        # latency is matched against it (the Python processes log theirs: config.gc_tuning)
        f"-Xlog:gc:file={logs / 'kafka-gc.log'}:time,uptime:filecount=2,filesize=10m",
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
