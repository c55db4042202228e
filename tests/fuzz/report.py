"""Writes the figures of `make fuzz` (artifacts/fuzz.json) into docs/reliability.md, replacing
the section between its markers."""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
from pathlib import Path

START, END = "<!-- fuzz:start -->", "<!-- fuzz:end -->"


def section(figures: dict[str, object]) -> str:
    statuses = ", ".join(f"{k}: {v}" for k, v in dict(figures["statuses"]).items())  # type: ignore[call-overload]
    return "\n".join(
        [
            START,
            f"Run of {dt.date.today().isoformat()} on {platform.node()} "
            f"({platform.machine()}, Python {platform.python_version()}), `make fuzz`:",
            "",
            "| figure | value |",
            "|---|---|",
            f"| hostile MQTT messages | {figures['mqtt_hostile']:,} |",
            f"| hostile ingest requests (OsmAnd, OwnTracks HTTP) | {figures['http_ingest_hostile']:,} |",
            f"| hostile API requests (paths and queries of every GET route) | {figures['http_api_hostile']:,} |",
            f"| valid fixes sent alongside, each persisted exactly once | {figures['valid_fixes']:,} |",
            f"| 5xx answers | {figures['server_errors']} |",
            f"| HTTP statuses | {statuses} |",
            f"| wall time | {figures['seconds']} s |",
            "",
            "Every MQTT message and ingest request got exactly one outcome in the ingest counters;",
            "every rejection is counted in the rejected log; no component restarted.",
            END,
        ]
    )


def main() -> None:
    figures = json.loads(Path(sys.argv[1]).read_text())
    doc = Path(sys.argv[2])
    text = doc.read_text()
    if START in text:
        head, rest = text.split(START, 1)
        text = head + section(figures) + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Fuzzing the running stack\n\n" + section(figures) + "\n"
    doc.write_text(text)
    print(section(figures))


if __name__ == "__main__":
    main()
