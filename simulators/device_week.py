"""One device's simulated week: readings at its interval, excursions past its limits, silences."""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

from gm.algorithms import canonical_bytes, sm3_hmac_hex
from simulators.engineer_week import _dumps
from simulators.plans import Config, DevicePlan, Message, ReadingFact, Scenario


def _device_week(rng: random.Random, sc: Scenario, dev: DevicePlan, next_seq: Any) -> None:
    """Readings every ``interval_s`` (jitter of a few seconds) from the start to the engineers'
    closing time, minus outages and single lost readings; then one *marker* reading just
    after: a deliberate excursion of the device's first metric (a sensor self-test), so
    ``sitewatch score`` can see when the monitor has processed the device's whole stream."""
    cfg = sc.config
    tz = cfg.tz
    t0 = sc.start.timestamp() + rng.uniform(0, dev.interval_s)
    t_end = sc.closing_ts
    span_days = max(1.0, (t_end - t0) / 86400)
    events = _excursion_events(rng, cfg, dev, t0, t_end) if cfg.violations else []
    drift_to = rng.uniform(10, 22)
    level0 = rng.uniform(-6.5, -4.5)
    k = 0
    missed_last = False
    ts = t0
    while True:
        ts = float(int(t0 + k * dev.interval_s + rng.uniform(-5, 5)))
        k += 1
        if ts > t_end:
            break
        if any(a <= ts <= b for a, b in dev.outages):
            continue
        if dev.dead_from is not None and ts >= dev.dead_from:
            return
        if not missed_last and rng.random() < cfg.p_missed_reading:
            missed_last = True  # never two in a row: a gap of 3 intervals is not a silence
            continue
        missed_last = False
        frac = (ts - t0) / (span_days * 86400)
        local = dt.datetime.fromtimestamp(ts, tz)
        metrics = _metrics(
            rng, dev, ts, local.hour + local.minute / 60, frac, drift_to, level0, events
        )
        _reading(sc, dev, ts, metrics, next_seq)
    # the marker: the previous reading is in range (excursion events end hours before)
    metric = sorted(dev.thresholds)[0]
    limits = dev.thresholds[metric]
    local = dt.datetime.fromtimestamp(ts, tz)
    metrics = _metrics(rng, dev, ts, local.hour + local.minute / 60, 1.0, drift_to, level0, [])
    if "max" in limits:
        metrics[metric] = round(limits["max"] + max(abs(limits["max"]), 1.0) * 0.2, 2)
    else:
        metrics[metric] = round(limits["min"] - max(abs(limits["min"]), 1.0) * 0.2, 2)
    _reading(sc, dev, ts, metrics, next_seq, marker=True)


def _reading(
    sc: Scenario,
    dev: DevicePlan,
    ts: float,
    metrics: dict[str, float],
    next_seq: Any,
    marker: bool = False,
) -> None:
    msg_id = f"{dev.id}-{int(ts)}"
    sc.readings.append(ReadingFact(dev.id, msg_id, ts, metrics, marker))
    body: dict[str, Any] = {"msg_id": msg_id, "ts": int(ts), "metrics": metrics}
    if dev.kind == "tower_crane":
        body["lon"], body["lat"] = round(dev.position[0], 6), round(dev.position[1], 6)
    body["mac"] = sm3_hmac_hex(bytes.fromhex(dev.hmac_key), canonical_bytes(body))
    sc.messages.append(
        Message(ts, next_seq(), dev.id, f"sitewatch/devices/{dev.id}/telemetry", _dumps(body))
    )


def _excursion_events(
    rng: random.Random, cfg: Config, dev: DevicePlan, t0: float, t1: float
) -> list[tuple[str, float, float, float]]:
    """(metric, from, to, level) windows where a metric is pushed outside its limits."""
    out: list[tuple[str, float, float, float]] = []
    if rng.random() > cfg.p_excursion_event:
        return out
    n = rng.randint(1, 3)
    for _ in range(n):
        metric = rng.choice(sorted(dev.thresholds))
        limits = dev.thresholds[metric]
        a = rng.uniform(t0 + 3600, t1 - 6 * 3600)
        b = a + rng.uniform(1.0, 4.0) * 3600
        if "max" in limits and (metric != "water_level_m" or rng.random() < 0.5):
            level = limits["max"] + max(abs(limits["max"]), 1.0) * rng.uniform(0.04, 0.25)
        else:
            level = limits["min"] - max(abs(limits["min"]), 1.0) * rng.uniform(0.04, 0.2)
        out.append((metric, a, b, level))
    return out


def _metrics(
    rng: random.Random,
    dev: DevicePlan,
    ts: float,
    hour: float,
    frac: float,
    drift_to: float,
    level0: float,
    events: list[tuple[str, float, float, float]],
) -> dict[str, float]:
    work = 7.5 <= hour <= 18.5
    if dev.kind == "foundation_pit":
        base = {
            "displacement_mm": 4
            + (drift_to - 4) * frac
            + 0.8 * math.sin(hour / 24 * 2 * math.pi)
            + rng.gauss(0, 0.4),
            "water_level_m": level0 + 0.3 * math.sin(frac * 9) + rng.gauss(0, 0.05),
        }
    elif dev.kind == "tower_crane":
        base = {
            "load_t": rng.uniform(0.5, 7.2) if work and rng.random() < 0.6 else rng.uniform(0, 0.3),
            "wind_speed_ms": max(
                0.0, 4 + 3 * math.sin(hour / 24 * 2 * math.pi - 1) + rng.gauss(0, 1.2)
            ),
        }
        if work and rng.random() < 0.003:  # an overload lift: one reading
            base["load_t"] = 8.0 * rng.uniform(1.03, 1.18)
    else:
        rush = math.exp(-((hour - 8.5) ** 2) / 2) + math.exp(-((hour - 18) ** 2) / 2)
        base = {
            "pm10_ugm3": 45 + 40 * rush + (25 if work else 0) + rng.gauss(0, 8),
            "noise_db": (63 if work else 49) + rng.gauss(0, 2.5),
        }
    values: dict[str, float] = {}
    for metric, v in base.items():
        limits = dev.thresholds.get(metric, {})
        overload = metric == "load_t" and v > 8.0
        if not overload:  # the background signal stays inside its limits with a margin
            if "max" in limits:
                v = min(v, limits["max"] - 0.07 * max(abs(limits["max"]), 1.0))
            if "min" in limits:
                v = max(v, limits["min"] + 0.07 * max(abs(limits["min"]), 1.0))
        for m, a, b, level in events:
            if m == metric and a <= ts <= b:
                v = level + rng.gauss(0, abs(level) * 0.01)
        values[metric] = _avoid_limit(round(v, 2), limits)
    return values


def _avoid_limit(v: float, limits: dict[str, float]) -> float:
    """A reading exactly on a limit is inside; never send one (equality is not what we test)."""
    for bound in limits.values():
        if v == round(bound, 2):
            return round(v + 0.01, 2)
    return v
