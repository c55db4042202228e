"""Judging uploads where a hostile one costs only itself: each file is judged in a fresh
process (attachments.judge) limited to 1.5 GiB of memory, 20 s of CPU and `WALL_S` of wall
time, at most `AT_ONCE` at a time. A PDF whose object streams inflate to gigabytes, or a JPEG
with a hundred thousand progressive scans, ends as a `BadFile`, never as the API's memory or
a worker thread held for minutes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from attachments.checks import BadFile, Checked

MEMORY_MIB = 1536
CPU_S = 20
WALL_S = 30.0
AT_ONCE = 2
_slots = threading.BoundedSemaphore(AT_ONCE)


def judge(
    data: bytes,
    timezone: str,
    *,
    memory_mib: int = MEMORY_MIB,
    cpu_s: int = CPU_S,
    wall_s: float = WALL_S,
) -> Checked:
    """`attachments.checks.check_file` in a limited child process; blocking (run it in a
    thread); raises `BadFile`."""
    command = [sys.executable, "-m", "attachments.judge", timezone, str(memory_mib), str(cpu_s)]
    with _slots:
        try:
            done = subprocess.run(
                command, input=data, capture_output=True, timeout=wall_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise BadFile(f"not judged within {wall_s:g} s") from None
    try:
        verdict = json.loads(done.stdout)
    except ValueError:
        raise BadFile(
            f"its check ended without a verdict (exit {done.returncode}: over its memory or "
            "CPU limit)"
        ) from None
    if "bad" in verdict:
        raise BadFile(str(verdict["bad"]))
    position = verdict.get("position")
    return Checked(
        str(verdict["type"]),
        verdict.get("taken_at"),
        (float(position[0]), float(position[1])) if position else None,
    )
