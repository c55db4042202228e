"""Tables of the system of record. The schema is created only by the Alembic migrations in
`store/migrations`; these models describe it for queries and for `alembic check`.

Growing tables (fixes, telemetry, transitions, logs, rejected messages, seen message ids) carry
a timestamp and are trimmed by `store.retention` after `Settings.retention_days`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


TS = DateTime(timezone=True)


def _now() -> Any:
    return func.now()


class Region(Base):
    __tablename__ = "regions"
    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(String(8))
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True))


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    crs: Mapped[str] = mapped_column(String(8), default="wgs84")
    chief_engineer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    engineer_ids: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    required_days_per_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    buffer_m: Mapped[float] = mapped_column(Float, default=0.0)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True))
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())
    retired_at: Mapped[dt.datetime | None] = mapped_column(TS, nullable=True)


class ProjectBoundary(Base):
    """A project's boundary from `effective_from` on (migration 0022; rules.fences.Revision)."""

    __tablename__ = "project_boundaries"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False))
    effective_from: Mapped[dt.datetime] = mapped_column(TS)
    actor: Mapped[str] = mapped_column(String(160))
    recorded_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())


class ChangeLog(Base):
    """One row per change: `projects`/`regions` (workers rebuild their fence index when the
    newest of these moves: store.fence_cache), `registry` (engineers and filings changed:
    store.engineer_facts)."""

    __tablename__ = "change_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())


class Engineer(Base):
    __tablename__ = "engineers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    registered_region: Mapped[str] = mapped_column(String(6))
    cert_status: Mapped[str] = mapped_column(String(16))
    id_number_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    id_number_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    phone_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    sm2_public_key: Mapped[str | None] = mapped_column(String(130), nullable=True)
    ce_hours: Mapped[float] = mapped_column(Float, default=0.0)
    # SHA-256 of the MQTT password (a random 144-bit token): OwnTracks HTTP's Basic auth
    ingest_password_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())
    # registry lifecycle (CONTRACT §6.3)
    cert_status_from: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    cert_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cert_valid_to: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    employer_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    employer_credit_code: Mapped[str | None] = mapped_column(String(18), nullable=True)
    retired_at: Mapped[dt.datetime | None] = mapped_column(TS, nullable=True)


class CertStatusChange(Base):
    """An engineer's certificate status from a date on: the history the rules read by date."""

    __tablename__ = "cert_status_history"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    engineer_id: Mapped[str] = mapped_column(ForeignKey("engineers.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    from_date: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())


class CeRecord(Base):
    """Continuing education: hours of one year (CONTRACT §6.3). `ref` is unique per engineer:
    a training (its id) or an import row credits once; `declared:YEAR` holds the hours
    declared on the engineer's registry entry."""

    __tablename__ = "ce_records"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    engineer_id: Mapped[str] = mapped_column(ForeignKey("engineers.id"))
    year: Mapped[int] = mapped_column(Integer)
    hours: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(16))  # online | offline | exam | declared
    provider: Mapped[str | None] = mapped_column(Text, nullable=True)
    ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    actor: Mapped[str] = mapped_column(String(160))
    recorded_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())


class Training(Base):
    """An offline training (CONTRACT §6.3): engineers whose own fixes put them inside it long
    enough get an `offline` CE record with `ref` = its id (rules.training)."""

    __tablename__ = "trainings"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False))
    starts_at: Mapped[dt.datetime] = mapped_column(TS)
    ends_at: Mapped[dt.datetime] = mapped_column(TS)
    hours: Mapped[float] = mapped_column(Float)
    min_minutes_present: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())
    settled_at: Mapped[dt.datetime | None] = mapped_column(TS, nullable=True)


class Phone(Base):
    """A phone's secret OsmAnd id (Traccar Client's "device identifier"), kept as SHA-256."""

    __tablename__ = "phones"
    osmand_id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    engineer_id: Mapped[str] = mapped_column(ForeignKey("engineers.id"), index=True)
    label: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(TS, nullable=True)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    report_interval_s: Mapped[float] = mapped_column(Float)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    hmac_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())
    retired_at: Mapped[dt.datetime | None] = mapped_column(TS, nullable=True)


class Filing(Base):
    __tablename__ = "filings"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    engineer_id: Mapped[str] = mapped_column(ForeignKey("engineers.id"), index=True)
    region_code: Mapped[str] = mapped_column(String(6))
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date] = mapped_column(Date)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())
    # revoked: no longer valid from this local date on (CONTRACT §6.3)
    revoked_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class Token(Base):
    __tablename__ = "tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    engineer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device_ids: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), unique=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(TS, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(TS, nullable=True)
    # the account that logged in for this token; None for a machine token (`token:<id>`)
    account: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class Account(Base):
    """A person who signs in (CONTRACT §6.2); the password only as its Argon2id hash."""

    __tablename__ = "accounts"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    engineer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device_ids: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())


class AuditEntry(Base):
    """Every change made through the API and every sign-in, with its named actor."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now(), index=True)
    actor: Mapped[str] = mapped_column(String(80), index=True)
    action: Mapped[str] = mapped_column(String(48))
    target: Mapped[str] = mapped_column(String(160), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class Fix(Base):
    __tablename__ = "fixes"
    engineer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    ts: Mapped[dt.datetime] = mapped_column(TS)
    local_date: Mapped[dt.date] = mapped_column(Date)
    geom: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False)
    )  # no query filters fixes by space
    acc_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    speed_kmh: Mapped[float | None] = mapped_column(Float, nullable=True)
    battery: Mapped[float | None] = mapped_column(Float, nullable=True)
    project_ids: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    region_code: Mapped[str] = mapped_column(String(6), default="")
    received_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())

    __table_args__ = (
        Index("ix_fixes_engineer_day_ts", "engineer_id", "local_date", "ts"),
        Index("ix_fixes_ts", "ts"),
    )


class Transition(Base):
    __tablename__ = "transitions"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    engineer_id: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    ts: Mapped[dt.datetime] = mapped_column(TS, index=True)
    msg_id: Mapped[str] = mapped_column(String(128))


class Telemetry(Base):
    __tablename__ = "telemetry"
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    ts: Mapped[dt.datetime] = mapped_column(TS, index=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB)
    geom: Mapped[Any | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=True), nullable=True
    )
    received_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())


class SupervisionLog(Base):
    __tablename__ = "supervision_logs"
    engineer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    ts: Mapped[dt.datetime] = mapped_column(TS, index=True)
    local_date: Mapped[dt.date] = mapped_column(Date)
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326, spatial_index=True))
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), server_default="log")
    category: Mapped[str | None] = mapped_column(String(16), nullable=True)
    files: Mapped[list[Any]] = mapped_column(JSONB, server_default=sql_text("'[]'::jsonb"))
    flags: Mapped[list[Any]] = mapped_column(JSONB, server_default=sql_text("'[]'::jsonb"))


class Notice(Base):
    """A rectification notice or stop-work order and where its lifecycle stands (rules.notices)."""

    __tablename__ = "notices"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    engineer_id: Mapped[str] = mapped_column(String(64), index=True)
    msg_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    region_code: Mapped[str] = mapped_column(String(12))
    text: Mapped[str] = mapped_column(Text)
    severity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    deadline: Mapped[dt.datetime] = mapped_column(TS)
    responsible: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[dt.datetime] = mapped_column(TS)
    settled_at: Mapped[dt.datetime | None] = mapped_column(TS, nullable=True)
    overdue_raised_at: Mapped[dt.datetime | None] = mapped_column(TS, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())


class NoticeEvent(Base):
    """One link of a notice's chain: seq 1..n per notice."""

    __tablename__ = "notice_events"
    notice_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    event: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)
    canonical: Mapped[bytes] = mapped_column(LargeBinary)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class OwnTracksEvent(Base):
    __tablename__ = "owntracks_events"
    engineer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    ts: Mapped[dt.datetime] = mapped_column(TS, index=True)
    type: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[str] = mapped_column(String(240), primary_key=True)  # the alert's identity
    type: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    engineer_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ts: Mapped[dt.datetime] = mapped_column(TS, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class AlertHistory(Base):
    __tablename__ = "alert_history"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str] = mapped_column(String(80))
    at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())


class AlertEvent(Base):
    """One link of an alert's chain (rules.alert_chain): seq 1..n per alert. Never trimmed."""

    __tablename__ = "alert_events"
    alert_id: Mapped[str] = mapped_column(String(240), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    event: Mapped[str] = mapped_column(String(16))
    canonical: Mapped[bytes] = mapped_column(LargeBinary)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    chained_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now(), index=True)


class RejectedMessage(Base):
    __tablename__ = "rejected_messages"
    id: Mapped[str] = mapped_column(
        String(64), primary_key=True
    )  # uuid from the bridge: idempotent
    source: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    message: Mapped[str] = mapped_column(Text)
    excerpt: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(TS, index=True)


class SeenMessage(Base):
    """Message ids accepted at the edge: replay protection that survives restarts."""

    __tablename__ = "ingest_seen"
    identity: Mapped[str] = mapped_column(String(64), primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now(), index=True)


# --- streams (issue 5): device clocks and the indexes the rules read ------------------------


class DeviceLastSeen(Base):
    """Newest reading of each device, upserted by the stream worker with greatest() (so a
    redelivered batch changes nothing): the `device_offline` rule reads this, never telemetry."""

    __tablename__ = "device_last_seen"
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_ts: Mapped[dt.datetime] = mapped_column(TS)  # newest event time
    last_received_at: Mapped[dt.datetime] = mapped_column(TS)  # newest arrival at the edge


Index(
    "ix_supervision_logs_engineer_day",
    SupervisionLog.engineer_id,
    SupervisionLog.local_date,
    SupervisionLog.project_id,
)
Index("ix_alerts_device_type", Alert.device_id, Alert.type)


class EvidenceEntry(Base):
    """One link of an engineer's evidence chain (rules.evidence_chain): seq 1..n in event order,
    hash = SM3(prev_hash || canonical). Never trimmed by retention."""

    __tablename__ = "evidence_entries"
    engineer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(8))  # fix | log
    msg_id: Mapped[str] = mapped_column(String(128))
    ts: Mapped[float] = mapped_column(Float)  # event time, epoch seconds, as the record had it
    order_ts: Mapped[float] = mapped_column(Float)  # ts clamped to the sealing horizon
    local_date: Mapped[dt.date] = mapped_column(Date)
    canonical: Mapped[bytes] = mapped_column(LargeBinary)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    chained_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())

    __table_args__ = (
        Index("ux_evidence_entries_record", "engineer_id", "kind", "msg_id", unique=True),
        Index("ix_evidence_entries_order", "engineer_id", "order_ts"),
        Index("ix_evidence_entries_day", "engineer_id", "local_date"),
    )


class EvidenceHead(Base):
    """The head of an engineer's chain: entry count, last hash, watermark (newest event time);
    the row is locked while a batch is chained."""

    __tablename__ = "evidence_heads"
    engineer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    entries: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    watermark: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())


class EngineerStateRow(Base):
    """The stream worker's state of one engineer (rules.engineer_state.EngineerState: the
    track's anchor, its newest fix's time and the `missing_log` clock, as JSON; the window's
    fixes are rows of `fixes`), written in the same transaction as the facts derived from it
    (store.engineer_states)."""

    __tablename__ = "engineer_states"
    engineer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[Any] = mapped_column(JSON)
    stream_ts: Mapped[float | None] = mapped_column(Float, nullable=True)  # never goes back
    updated_at: Mapped[dt.datetime] = mapped_column(TS, server_default=_now())
