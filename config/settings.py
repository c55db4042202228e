"""The one settings object of every SiteWatch process (pydantic-settings, env prefix SITEWATCH_).

`sitewatch up` fills the service URLs in the environment of every child it starts; a deployment
sets them itself. Nothing is built at import time: call `Settings()` where it is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SITEWATCH_", frozen=True)

    data_dir: Path = Path("./sitewatch-data")
    # Services. Empty means "start the embedded one" for `sitewatch up`.
    database_url: str = ""  # postgresql://user@host:port/db
    kafka_url: str = ""  # host:port[,host:port]
    mqtt_url: str = ""  # mqtt://user:password@host:port (user/password: the service identity)
    mqtt_bridge_username: str = "sitewatch-bridge"
    mqtt_bridge_password: SecretStr = SecretStr("")
    mqtt_admin_username: str = "sitewatch-admin"
    mqtt_admin_password: SecretStr = SecretStr("")
    http_host: str = "127.0.0.1"
    http_port: int = 0
    # `sitewatch up --listen ADDR`: HTTPS (and MQTT over TLS, in Mosquitto) on ADDR; the plain
    # listeners stay on loopback. Certificate and key: the operator's, or a private CA's.
    listen: str = ""
    https_port: int = 0
    mqtts_port: int = 0
    tls_cert_file: str = ""
    tls_key_file: str = ""

    # Kafka topics: explicit partition counts (Faust stops on a mismatch: config.topics).
    kafka_partitions: int = 8
    # Idempotent Kafka producers (bridge, HTTP ingest): a retried request is not written twice.
    # The sinks dedupe by msg_id either way.
    kafka_idempotence: bool = True
    bridge_client_id: str = "sitewatch-bridge"
    # How long Kafka may take to confirm a batch before the bridge gives up (and exits).
    bridge_kafka_timeout_ms: int = 30_000
    # How often the bridge clears the retained copies of OwnTracks topics (ingest.bridge).
    bridge_retained_sweep_s: float = 60.0
    # SM2 verification processes of the bridge; None: as many as cores, 0: on the event loop.
    bridge_sm2_workers: int | None = None
    # v1 OsmAnd clients send the engineer id as `id`: anyone could post any engineer's
    # position. Since v1.1 the id is a phone's secret id; true accepts the old form too.
    osmand_engineer_ids: bool = False
    # Practice records (POST /records): a photo whose EXIF puts it further than this from the
    # record's position, or taken longer than this from its time, is flagged on the record.
    record_exif_max_distance_m: float = 1000.0
    record_exif_max_time_s: float = 3600.0
    # How often an open WebSocket's token is checked again (revoked or expired: closed).
    ws_token_recheck_s: float = 30.0
    # permessage-deflate on /ws/live when a client offers it. Off: compressing every small
    # live message for every client was a third of the API's CPU per fix (docs/BENCHMARKS.md);
    # on for clients on slow links, where bandwidth costs more than the server's CPU.
    ws_compression: bool = False
    # Accounts: how long a login's token lasts.
    login_token_ttl_s: int = 8 * 3600
    # Rate limits per API process, in `limits` notation (ingest.rate_limits); over them: 429
    # with Retry-After. HTTP ingest per identity and per source address (a phone sends about
    # one fix a second, a backlog after a tunnel faster); failed logins per username, and
    # login attempts per address.
    ingest_rate_per_identity: str = "20/second"
    ingest_rate_per_address: str = "200/second"
    login_failures_per_username: str = "5/minute"
    login_attempts_per_address: str = "30/minute"

    # Secrets: SM4 key for personal data at rest (32 hex chars); never stored in the database.
    personal_data_key: SecretStr = SecretStr("")
    # Or a file holding it, best outside the data directory (docs/security.md): a copy of the
    # data directory (a backup, a disk image) then carries ciphertext without its key.
    personal_data_key_file: str = ""
    # Seals of the evidence chains (docs/evidence.md): signed with an SM2 key the database
    # never holds (made on the first start; best kept outside the data directory), written to
    # a directory (default DATA_DIR/seals) and, when set, POSTed to seal_push_url.
    seal_key_file: str = ""
    seal_dir: str = ""
    seal_interval_s: float = 300.0
    seal_push_url: str = ""

    # Rules (CONTRACT section 4).
    timezone: str = "Asia/Shanghai"
    max_accuracy_m: float = 100.0
    max_speed_kmh: float = 300.0
    min_jump_m: float = 5000.0
    max_gap_s: float = 900.0
    # a check-in and the next check-out at most this far apart count whole (CONTRACT §6.5)
    max_shift_s: float = 43200.0
    min_minutes_present: float = 240.0
    # never negative: the evidence chain's order relies on it (rules.evidence_chain.may_have_tail)
    allowed_lateness_s: Annotated[float, Field(ge=0.0)] = 3600.0
    max_future_s: float = 300.0
    offline_factor: float = 3.0
    # device_offline clock: "wall" (received time vs now), "stream" (event time vs the
    # project's stream time) or "auto" (stream for a device whose newest reading arrived more
    # than replay_lag_s after its event time, i.e. a replay; wall otherwise). docs/streams.md
    offline_clock: Literal["auto", "wall", "stream"] = "auto"
    replay_lag_s: float = 3600.0
    offline_check_interval_s: float = 5.0
    # chief_absent (rules.chief_absence): how often the closed months are judged again
    chief_check_interval_s: float = 300.0
    # ... once no on-site fix of the month has been written for this long (a closed month
    # that gets fixes is being backfilled or replayed: judge it when they stop coming)
    chief_quiet_s: float = 300.0
    # offline trainings (store.trainings): how often ended trainings are credited
    training_check_interval_s: float = 60.0
    # notice_overdue (rules.notices): how often deadlines are looked at
    notice_check_interval_s: float = 60.0
    # Live attendance messages: each (engineer, project, day) at most once per interval, with
    # its figures of then; a key that gets its first on-site fix goes out within half a
    # second. Its minutes change with every fix, so a short interval meant a message per key
    # and fix, more than the positions themselves (docs/BENCHMARKS.md, 2026-12-07).
    attendance_push_interval_s: float = 30.0

    # Retention of bounded-growth tables (fixes, telemetry, transitions, rejected, seen ids).
    retention_days: int = 400
    # The rejected log (streams.rejected_log): rows kept per source, reason and hour (every
    # rejection is counted in rejected_tallies), and for how long the rows are kept.
    rejected_sample_per_hour: int = 100
    rejected_retention_days: int = 30
    seen_ids_days: int = 30

    # Stream worker batching. Engineer and telemetry agents take up to `batch_events` Kafka
    # records (each one record or an envelope of up to 250, ingest.gate.envelopes) or what
    # arrived within `batch_within_s`; the dead-letter agent up to `batch_size` records.
    batch_events: int = 64
    batch_size: int = 1000
    # Short: Faust's take_events waits this long after each batch even when nothing is coming,
    # while what arrives during a batch is there at once (0.05 cost 50 ms at half load).
    batch_within_s: float = 0.005
    # The telemetry and rejection agents: an idle agent wakes this often (at 0.005 the three
    # agents' wake-ups were 3.6 % of a core on an idle worker, docs/BENCHMARKS.md), and a
    # device's reading or a rejection can wait that long, a fix not.
    side_batch_within_s: float = 0.05

    @property
    def sync_database_url(self) -> str:
        return _with_driver(self.database_url, "postgresql+psycopg")

    @property
    def async_database_url(self) -> str:
        return _with_driver(self.database_url, "postgresql+asyncpg")


def _with_driver(url: str, driver: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"database URL {url!r} has no scheme (expected postgresql://...)")
    return f"{driver}://{rest}"
