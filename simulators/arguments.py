"""The arguments of the simulator commands, shared by `sitewatch` (simulators.cli) and each
command's own `python -m simulators.<command>`."""

from __future__ import annotations

import argparse
from pathlib import Path

COMMANDS = ("simulate", "replay", "score")
SCENARIO_NAMES = ("city", "clean", "day", "quarter", "smoke", "week")  # simulators.plans.SCENARIOS
FORMATS = ("gpx", "csv", "owntracks", "geojson")  # simulators.tracks.FORMATS


def simulate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", choices=SCENARIO_NAMES, help="scenario (see docs/simulators.md)")
    p.add_argument("--data-dir", type=Path, default=Path("./sitewatch-data"))
    p.add_argument("--engineers", type=int, default=None)
    p.add_argument("--devices", type=int, default=None)
    p.add_argument("--days", type=int, default=None)
    p.add_argument(
        "--speedup",
        type=float,
        default=0.0,
        help="simulated seconds per wall second (0: as fast as --rate allows)",
    )
    p.add_argument("--rate", type=float, default=2000.0, help="messages per second at most")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/RUN_ID)")
    p.add_argument("--run-id", default=None, help="id prefix of everything registered")
    p.add_argument(
        "--identity",
        choices=("per-identity", "service"),
        default="per-identity",
        help="publish with each engineer's/device's own MQTT password or the service identity",
    )
    p.add_argument(
        "--fix-interval",
        default=None,
        help="seconds between an engineer's fixes on duty, MIN,MAX (default 300,600)",
    )
    p.add_argument("--device-interval", type=int, default=None, help="device report_interval_s")
    p.add_argument(
        "--devices-per-site",
        type=int,
        default=None,
        help="at most this many devices per project (default 3; more sites are drawn if needed)",
    )
    p.add_argument(
        "--dead-devices",
        type=int,
        default=None,
        help="devices that stop for good on the last day (silence closed by project stream time)",
    )
    p.add_argument("--start", default=None, help="local midnight to start at (ISO date)")
    p.add_argument(
        "--dry-run", action="store_true", help="write the run directory, publish nothing"
    )


def replay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path)
    p.add_argument("--data-dir", type=Path, default=Path("./sitewatch-data"))
    p.add_argument("--engineer", default=None, help="engineer id (registered if unknown)")
    p.add_argument("--format", choices=FORMATS, default=None, help="default: from the extension")
    p.add_argument("--translate-to", default=None, help="PROJECT_ID or lon,lat (WGS-84)")
    p.add_argument("--crs", choices=("wgs84", "gcj02", "bd09"), default="wgs84")
    p.add_argument("--speedup", type=float, default=0.0, help="0: as fast as --rate allows")
    p.add_argument("--rate", type=float, default=500.0, help="messages per second at most")
    p.add_argument("--topic", choices=("checkin", "owntracks"), default=None)
    p.add_argument("--region", default=None, help="registered_region for a new engineer")
    p.add_argument("--keep-time", action="store_true", help="send the recorded timestamps")
    p.add_argument("--start", default=None, help="ISO-8601 time of the first point")
    p.add_argument("--acc", type=float, default=None, help="accuracy (m) for points without one")
    p.add_argument("--out", type=Path, default=None, help="write what was sent (JSON)")


def score_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path)
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data dir of the running monitor (default: the one recorded in run.json)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=300.0,
        help="seconds to wait for the monitor to catch up (every fix visible, alerts settled)",
    )
    p.add_argument("--settle", type=float, default=8.0, help="alerts unchanged for this long")
    p.add_argument("--json", action="store_true", help="print score.json instead of a table")
