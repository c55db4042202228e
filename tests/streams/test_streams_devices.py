"""Device rules on the real stack (CONTRACT section 4): `sensor_threshold` once per excursion,
`device_offline` once per silence, on the stream clock for replayed telemetry (event times of
2026-03-02, detected by `offline_clock=auto`) and on the wall clock for live telemetry."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from tests.stack_client import StackClient, wait_until
from tests.streams.scenario import (
    alerts,
    iso_utc,
    local,
    make_project,
    publish,
    tag,
    telemetry,
    wait_rows,
)


def make_device(sw: StackClient, device_id: str, project_id: str, interval_s: float) -> None:
    with sw.api() as api:
        r = api.post(
            "/api/devices",
            json={
                "id": device_id,
                "project_id": project_id,
                "kind": "inclinometer",
                "report_interval_s": interval_s,
                "thresholds": {"tilt": {"max": 5.0}},
            },
        )
        assert r.status_code == 201, r.text


def wait_telemetry(sw: StackClient, device_id: str, n: int) -> None:
    wait_rows(sw, "SELECT msg_id FROM telemetry WHERE device_id = %s", device_id, n=n)


def by_id(sw: StackClient, device_id: str) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in alerts(sw, device_id=device_id)}


def test_threshold_once_per_excursion_and_a_replayed_gap_is_one_silence(sw: StackClient) -> None:
    t = tag()
    p = f"DV-P-{t}"
    make_project(sw, p)
    d = f"DV-D-{t}"
    make_device(sw, d, p, 60)  # silent after 3 x 60 s
    tilts = [(10, 0, 3.0), (10, 1, 6.0), (10, 2, 7.0), (10, 9, 4.0), (10, 10, 8.0), (10, 11, 5.0)]
    publish(sw, [telemetry(d, f"{t}-{h}{m:02}", local(h, m), tilt=v) for h, m, v in tilts])
    wait_telemetry(sw, d, 6)
    # 6.0 opens an excursion (7.0 continues it), 4.0 closes it, 8.0 opens another; 5.0 is the
    # limit itself, in range. 10:02 -> 10:09 is 420 s > 180 s: a silence, already over.
    since = iso_utc(local(10, 2))
    expected = {
        f"sensor_threshold:{d}:tilt:{t}-1001",
        f"sensor_threshold:{d}:tilt:{t}-1010",
        f"device_offline:{d}:{since}",
    }
    found = wait_until(lambda: (a := by_id(sw, d)) and set(a) == expected and a, what="alerts")
    offline = found[f"device_offline:{d}:{since}"]
    assert offline["status"] == "resolved"
    assert [h["status"] for h in offline["history"]] == ["open", "resolved"]
    assert offline["details"]["clock"] == "stream"
    assert offline["ts"] == "2026-03-02T02:05:00Z"  # silent from 10:02 + 180 s, local
    assert offline["region_code"] == "440305" and offline["project_id"] == p
    first = found[f"sensor_threshold:{d}:tilt:{t}-1001"]
    assert first["details"]["value"] == 6.0 and first["details"]["max"] == 5.0
    assert first["ts"] == "2026-03-02T02:01:00Z"
    # the device is alone on its project: its stream time is its own, it is not silent now
    time.sleep(6)  # one more offline check
    assert set(by_id(sw, d)) == expected


def test_replayed_device_silent_against_its_project_stream_time(sw: StackClient) -> None:
    t = tag()
    p = f"DS-P-{t}"
    make_project(sw, p)
    slow, fast = f"DS-SLOW-{t}", f"DS-FAST-{t}"
    make_device(sw, slow, p, 60)
    make_device(sw, fast, p, 60)
    messages = []
    for m in range(0, 21):  # fast reports every minute 10:00..10:20, slow stops after 10:02
        if m <= 2:
            messages.append(telemetry(slow, f"{t}-s{m}", local(10, m), tilt=1.0))
        messages.append(telemetry(fast, f"{t}-f{m}", local(10, m), tilt=1.0))
    publish(sw, messages)
    wait_telemetry(sw, slow, 3)
    wait_telemetry(sw, fast, 21)
    since = iso_utc(local(10, 2))
    found = wait_until(
        lambda: (a := by_id(sw, slow)) and a, timeout_s=30, what="offline alert of slow"
    )
    assert set(found) == {f"device_offline:{slow}:{since}"}
    a = found[f"device_offline:{slow}:{since}"]
    assert a["status"] == "open" and a["details"]["clock"] == "stream"
    assert by_id(sw, fast) == {}
    # the slow device reports again (event time 10:25): that silence is over
    publish(sw, [telemetry(slow, f"{t}-s25", local(10, 25), tilt=1.0)])
    wait_until(
        lambda: by_id(sw, slow)[f"device_offline:{slow}:{since}"]["status"] == "resolved",
        what="silence resolved",
    )


def test_live_device_offline_on_the_wall_clock_then_resolved(sw: StackClient) -> None:
    t = tag()
    p = f"DW-P-{t}"
    make_project(sw, p)
    d = f"DW-D-{t}"
    make_device(sw, d, p, 3)  # silent after 9 s of wall-clock time
    publish(sw, [telemetry(d, f"{t}-1", time.time() - 1, tilt=1.0)])
    wait_telemetry(sw, d, 1)
    received = sw.sql("SELECT last_received_at FROM device_last_seen WHERE device_id = %s", d)[0][0]
    alert_id = f"device_offline:{d}:{received.astimezone(dt.UTC).isoformat()}"
    found = wait_until(
        lambda: (a := by_id(sw, d)) and alert_id in a and a, timeout_s=40, what=alert_id
    )
    assert found[alert_id]["status"] == "open"
    assert found[alert_id]["details"]["clock"] == "wall"
    publish(sw, [telemetry(d, f"{t}-2", time.time() - 1, tilt=1.0)])
    wait_until(
        lambda: by_id(sw, d)[alert_id]["status"] == "resolved", timeout_s=30, what="resolved"
    )
    a = by_id(sw, d)[alert_id]
    assert [h["status"] for h in a["history"]] == ["open", "resolved"]
    assert a["details"]["resolved_by"] == "telemetry"
