"""Scoring: alerts matched to the ground truth by identity, attendance and fixes compared."""

from __future__ import annotations

import datetime as dt
from typing import Any

from simulators.score import score_alerts, score_attendance, score_fixes

UTC = dt.UTC
RUN = {
    "timezone": "Asia/Shanghai",
    "window": {"from": "2026-03-02T00:00:00+08:00", "to": "2026-03-05T02:00:00+08:00"},
}


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, UTC).isoformat()


T0 = dt.datetime(2026, 3, 2, 9, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
TRUTH: dict[str, Any] = {
    "checked_rules": [
        "cross_region_unfiled",
        "impossible_travel",
        "sensor_threshold",
        "device_offline",
        "missing_log",
    ],
    "alerts": {
        "cross_region_unfiled": [
            {"engineer_id": "E", "project_id": "P", "date": "2026-03-02", "ts": T0}
        ],
        "impossible_travel": [{"engineer_id": "E", "ts": T0 + 300}],
        "sensor_threshold": [{"device_id": "D", "ts": T0 + 600}],
        "device_offline": [{"device_id": "D", "from_ts": T0, "to_ts": T0 + 7200}],
        "missing_log": [{"engineer_id": "E", "project_id": "P", "date": "2026-03-02"}],
    },
}


def reported() -> list[dict[str, Any]]:
    return [
        {
            "id": "1",
            "type": "cross_region_unfiled",
            "engineer_id": "E",
            "project_id": "P",
            "ts": iso(T0 + 60),
        },
        {"id": "2", "type": "impossible_travel", "engineer_id": "E", "ts": iso(T0 + 300)},
        {"id": "3", "type": "sensor_threshold", "device_id": "D", "ts": iso(T0 + 600)},
        {"id": "4", "type": "device_offline", "device_id": "D", "ts": iso(T0 + 1800)},
        # the end of the day, with and without details.date
        {
            "id": "5",
            "type": "missing_log",
            "engineer_id": "E",
            "project_id": "P",
            "ts": "2026-03-03T00:00:00+08:00",
        },
    ]


def test_perfect_match() -> None:
    s = score_alerts(TRUTH, reported(), RUN)
    assert s.pop("_outside_window") == {}
    for kind, r in s.items():
        assert (r["precision"], r["recall"]) == (1.0, 1.0), kind


def test_false_positives_negatives_and_window() -> None:
    rep = reported()
    rep[1]["ts"] = iso(T0 + 301)  # a different pair
    rep.append({"id": "6", "type": "device_offline", "device_id": "D", "ts": iso(T0 + 3600)})
    rep.append({"id": "7", "type": "device_offline", "device_id": "D", "ts": iso(T0 + 86400 * 30)})
    rep.append(
        {
            "id": "8",
            "type": "missing_log",
            "engineer_id": "E",
            "project_id": "P",
            "ts": iso(T0),
            "details": {"date": "2026-03-03"},
        }
    )
    s = score_alerts(TRUTH, rep, RUN)
    assert s.pop("_outside_window") == {"device_offline": 1}
    it = s["impossible_travel"]
    assert (it["true_positives"], it["false_positives"], it["false_negatives"]) == (0, 1, 1)
    assert (it["precision"], it["recall"]) == (0.0, 0.0)
    off = s["device_offline"]  # two alerts for one silence: one is a duplicate
    assert (off["true_positives"], off["false_positives"], off["precision"]) == (1, 1, 0.5)
    ml = s["missing_log"]
    assert (ml["true_positives"], ml["false_positives"]) == (1, 1)


def test_nothing_expected_nothing_reported_is_perfect() -> None:
    s = score_alerts({"alerts": {}, "checked_rules": []}, [], RUN)
    s.pop("_outside_window")
    assert all(r["precision"] == 1.0 and r["recall"] == 1.0 for r in s.values())


def test_attendance_and_fixes() -> None:
    truth = {
        "attendance": [
            {
                "engineer_id": "E",
                "project_id": "P",
                "date": "2026-03-02",
                "minutes_on_site": 250.0,
                "first_in": iso(T0),
                "last_out": iso(T0 + 15000),
                "present": True,
            },
            {
                "engineer_id": "E",
                "project_id": "Q",
                "date": "2026-03-02",
                "minutes_on_site": 5.0,
                "first_in": iso(T0),
                "last_out": iso(T0 + 300),
                "present": False,
            },
        ],
        "fixes": {"total": 3, "ids": {"E": ["a", "b", "c"]}, "duplicates_sent": 1},
    }
    rows = [
        {
            "engineer_id": "E",
            "project_id": "P",
            "date": "2026-03-02",
            "minutes_on_site": 238.5,
            "first_in": iso(T0),
            "last_out": iso(T0 + 15000),
            "present": False,
        },
    ]
    a = score_attendance(truth, rows)
    assert (a["missing_rows"], a["extra_rows"], a["present_mismatches"]) == (1, 0, 1)
    assert a["minutes_error_max"] == 11.5
    f = score_fixes(truth, {"E": ["a", "b", "b", "x"]})
    assert (f["lost"], f["duplicated"], f["unexpected"]) == (1, 1, 1)
