"""Device telemetry: `sensor_threshold` once per excursion and `device_offline` once per
silence (CONTRACT section 4). `process` and `offline_due` are pure; the rest is the SQL the
worker runs.

Clocks of `device_offline` (setting `offline_clock`):

* wall: a device is silent when nothing has *arrived* from it (the gate's `received_at`, or
  its registration when it never reported) for `offline_factor` x `report_interval_s` of
  wall-clock time. Checked by the worker's timer.
* stream: silence is measured in event time. The stream time of a device is the newest event
  time of the devices of its project that are on the stream clock (a replayed site's devices
  are replayed together): the timer raises an alert when it is past the device's newest
  reading by the limit; and a reading that follows its predecessor by more than the limit
  proves a silence that has already ended (raised and resolved at once). Both give the same
  identity, so one silence is one alert whichever sees it first.
* auto (default): stream for a device whose newest reading arrived more than `replay_lag_s`
  after its event time (it is being replayed), wall otherwise.

Identity: `device_offline:{device}:{start of the silence}` (ISO-8601 UTC: the newest arrival
on the wall clock, the newest reading's event time on the stream clock).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from config.settings import Settings
from rules.alerts import alert, point_wkt, utc
from store import alert_events
from store.models import Device, DeviceLastSeen, Project
from wire.records import Record, Telemetry


@dataclass(frozen=True)
class DeviceFacts:
    project_id: str
    region_code: str
    thresholds: dict[str, dict[str, float]]
    report_interval_s: float = 60.0


@dataclass
class DeviceOutput:
    rows: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    live: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_seen: list[dict[str, Any]] = field(default_factory=list)  # device_last_seen upserts
    newest: dict[str, float] = field(default_factory=dict)  # device -> newest event time here
    clocks: dict[str, str] = field(default_factory=dict)  # device -> "wall" | "stream"

    @property
    def seen(self) -> set[str]:
        return set(self.newest)


async def load_devices(engine: AsyncEngine, device_ids: set[str]) -> dict[str, DeviceFacts]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                Device.id,
                Device.project_id,
                Project.region_code,
                Device.thresholds,
                Device.report_interval_s,
            )
            .join(Project, Project.id == Device.project_id)
            .where(Device.id.in_(device_ids))
        )
        return {
            r.id: DeviceFacts(r.project_id, r.region_code, r.thresholds or {}, r.report_interval_s)
            for r in rows
        }


def outside(value: float, limits: Mapping[str, float]) -> bool:
    """Strictly below `min` or strictly above `max`: the limits themselves are in range."""
    lo, hi = limits.get("min"), limits.get("max")
    return (lo is not None and value < lo) or (hi is not None and value > hi)


def clock_of(setting: str, replay_lag_s: float, ts: float, received_at: float | None) -> str:
    """Which clock judges a device's silence (see the module docstring)."""
    if setting in ("wall", "stream"):
        return setting
    if received_at is not None and received_at - ts > replay_lag_s:
        return "stream"
    return "wall"


def offline_alert(
    device_id: str,
    project_id: str,
    region_code: str,
    report_interval_s: float,
    since: dt.datetime,
    clock: str,
    factor: float,
) -> dict[str, Any]:
    limit_s = factor * report_interval_s
    return alert(
        f"device_offline:{device_id}:{since.isoformat()}",
        "device_offline",
        region_code,
        since + dt.timedelta(seconds=limit_s),
        device_id=device_id,
        project_id=project_id,
        details={
            "last_seen": since.isoformat(),
            "last_seen_ts": since.timestamp(),
            "clock": clock,
            "report_interval_s": report_interval_s,
            "silent_after_s": limit_s,
        },
    )


def process(
    records: Sequence[Record],
    *,
    devices: Mapping[str, DeviceFacts],
    states: Mapping[str, dict[str, Any]],
    settings: Settings | None = None,
    received: Sequence[float | None] | None = None,
) -> DeviceOutput:
    """One batch of telemetry. State per device: `open` (metric -> id of the excursion's
    alert) and `last_ts` (newest event time processed). A reading older than `last_ts` is
    stored but neither opens nor closes an excursion (its neighbours in event time are
    unknown); an excursion opens when a metric goes outside its limits and closes when it is
    back inside, so one excursion gives one alert."""
    settings = settings or Settings()
    out = DeviceOutput()
    arrived = list(received) if received is not None else [None] * len(records)
    items = sorted(
        (
            (r, a)
            for r, a in zip(records, arrived, strict=True)
            if isinstance(r, Telemetry) and r.device_id in devices
        ),
        key=lambda x: (x[0].device_id, x[0].ts, x[0].msg_id),
    )
    by_device: dict[str, list[tuple[Telemetry, float | None]]] = defaultdict(list)
    for r, a in items:
        by_device[r.device_id].append((r, a))
    for device_id, readings in by_device.items():
        facts = devices[device_id]
        old = states.get(device_id) or {}
        state: dict[str, Any] = {"open": dict(old.get("open", {})), "last_ts": old.get("last_ts")}
        newest_r, newest_a = readings[-1]
        clock = clock_of(settings.offline_clock, settings.replay_lag_s, newest_r.ts, newest_a)
        out.clocks[device_id] = clock
        out.newest[device_id] = newest_r.ts
        arrivals = [a for _, a in readings if a is not None]
        out.last_seen.append(
            {
                "device_id": device_id,
                "last_ts": utc(newest_r.ts),
                "last_received_at": utc(max(arrivals)) if arrivals else utc(newest_r.ts),
            }
        )
        for r, _ in readings:
            _reading(out, facts, state, r, clock, settings)
        out.states[device_id] = state
    return out


def _reading(
    out: DeviceOutput,
    facts: DeviceFacts,
    state: dict[str, Any],
    r: Telemetry,
    clock: str,
    settings: Settings,
) -> None:
    out.rows.append(
        {
            "device_id": r.device_id,
            "msg_id": r.msg_id,
            "ts": utc(r.ts),
            "metrics": r.metrics,
            "geom": point_wkt(r.lon, r.lat) if r.lon is not None and r.lat is not None else None,
        }
    )
    out.live.append(
        {
            "type": "telemetry",
            "device_id": r.device_id,
            "project_id": facts.project_id,
            "region_code": facts.region_code,
            "ts": utc(r.ts).isoformat(),
            "metrics": r.metrics,
        }
    )
    last_ts = state["last_ts"]
    if last_ts is not None and r.ts < last_ts:
        return  # late: stored, no excursion or silence decided from it
    limit_s = settings.offline_factor * facts.report_interval_s
    if clock == "stream" and last_ts is not None and r.ts - last_ts > limit_s:
        out.alerts.append(
            offline_alert(
                r.device_id,
                facts.project_id,
                facts.region_code,
                facts.report_interval_s,
                utc(last_ts),
                clock,
                settings.offline_factor,
            )
        )
    state["last_ts"] = r.ts
    for metric, value in r.metrics.items():
        limits = facts.thresholds.get(metric)
        if not limits:
            continue
        if not outside(value, limits):
            state["open"].pop(metric, None)
        elif metric not in state["open"]:
            alert_id = f"sensor_threshold:{r.device_id}:{metric}:{r.msg_id}"
            state["open"][metric] = alert_id
            out.alerts.append(
                alert(
                    alert_id,
                    "sensor_threshold",
                    facts.region_code,
                    utc(r.ts),
                    device_id=r.device_id,
                    project_id=facts.project_id,
                    details={"metric": metric, "value": value, **limits, "msg_id": r.msg_id},
                )
            )


async def upsert_last_seen(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """greatest() of what is stored and what came: idempotent and order-independent."""
    if not rows:
        return
    stmt = pg_insert(DeviceLastSeen).values(list(rows))
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[DeviceLastSeen.device_id],
            set_={
                "last_ts": text("greatest(device_last_seen.last_ts, excluded.last_ts)"),
                "last_received_at": text(
                    "greatest(device_last_seen.last_received_at, excluded.last_received_at)"
                ),
            },
        )
    )


DEVICES_SQL = text(
    """
    SELECT d.id, d.project_id, p.region_code, d.report_interval_s, d.created_at,
           s.last_ts, s.last_received_at
    FROM devices d
    JOIN projects p ON p.id = d.project_id
    LEFT JOIN device_last_seen s ON s.device_id = d.id
    WHERE d.retired_at IS NULL  -- a retired device is silent on purpose
    """
)


def offline_due(rows: Sequence[Any], settings: Settings, now: dt.datetime) -> list[dict[str, Any]]:
    """Devices silent for longer than `offline_factor` x `report_interval_s` on their clock
    (rows of DEVICES_SQL). Pure: `now` is the wall clock, passed in."""
    clocks: dict[str, str | None] = {}
    project_stream: dict[str, dt.datetime] = {}
    for r in rows:
        if r.last_ts is None:
            clocks[r.id] = None if settings.offline_clock == "stream" else "wall"
            continue
        clock = clock_of(
            settings.offline_clock,
            settings.replay_lag_s,
            r.last_ts.timestamp(),
            r.last_received_at.timestamp(),
        )
        clocks[r.id] = clock
        if clock == "stream":
            prev = project_stream.get(r.project_id)
            if prev is None or r.last_ts > prev:
                project_stream[r.project_id] = r.last_ts
    out = []
    for r in rows:
        judged_by = clocks[r.id]
        if judged_by is None:
            continue  # stream clock, never reported: no event time to measure a silence by
        limit = dt.timedelta(seconds=settings.offline_factor * r.report_interval_s)
        if judged_by == "wall":
            since = r.last_received_at if r.last_received_at is not None else r.created_at
            due = now - since > limit
        else:
            since = r.last_ts
            due = project_stream[r.project_id] - since > limit
        if due:
            out.append(
                offline_alert(
                    r.id,
                    r.project_id,
                    r.region_code,
                    r.report_interval_s,
                    since.astimezone(dt.UTC),
                    judged_by,
                    settings.offline_factor,
                )
            )
    return out


async def offline_alerts(conn: AsyncConnection, settings: Settings) -> list[dict[str, Any]]:
    rows = (await conn.execute(DEVICES_SQL)).all()
    now = (await conn.execute(text("SELECT now()"))).scalar_one()
    return offline_due(rows, settings, now)


CLOSE_SQL = text(
    """
    WITH b(device_id, newest) AS (
        SELECT * FROM unnest(CAST(:devices AS text[]), CAST(:newest AS float8[]))
    )
    UPDATE alerts a
    SET status = 'resolved', details = a.details || '{"resolved_by": "telemetry"}'::jsonb
    FROM b
    WHERE a.device_id = b.device_id AND a.type = 'device_offline' AND a.status <> 'resolved'
      AND (coalesce(a.details->>'clock', 'wall') <> 'stream'
           OR (a.details->>'last_seen_ts')::float8 < b.newest)
    RETURNING a.id, a.type, a.status, a.region_code, a.engineer_id, a.device_id, a.project_id,
              a.ts, a.created_at, a.details
    """
)


async def close_offline(conn: AsyncConnection, newest: Mapping[str, float]) -> list[dict[str, Any]]:
    """A device that reports again ends its silence: its open (or acked) offline alert is
    resolved, with the change in the alert's history. On the stream clock only a reading
    newer than the start of the silence ends it. Returns the resolved alerts."""
    if not newest:
        return []
    devices = sorted(newest)
    result = await conn.execute(
        CLOSE_SQL, {"devices": devices, "newest": [newest[d] for d in devices]}
    )
    resolved = [dict(r._mapping) for r in result]
    await alert_events.changed(
        conn, [a["id"] for a in resolved], "resolved", "telemetry resumed", "system"
    )
    return resolved


__all__ = [
    "DeviceFacts",
    "DeviceOutput",
    "clock_of",
    "close_offline",
    "load_devices",
    "offline_alert",
    "offline_alerts",
    "offline_due",
    "outside",
    "process",
    "upsert_last_seen",
]
