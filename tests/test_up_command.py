"""`sitewatch up` as a user runs it: healthy with endpoints.json and admin.token, and SIGTERM
stops every child it started, by process id, within seconds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.stack
def test_up_writes_endpoints_and_sigterm_stops_every_child(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log_path = tmp_path / "up.log"
    exe = Path(sys.executable).with_name("sitewatch")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(exe), "up", "--data-dir", str(data)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        healthy = False
        while time.monotonic() < deadline and proc.poll() is None and not healthy:
            try:
                endpoints = json.loads((data / "endpoints.json").read_text())
                with urllib.request.urlopen(endpoints["http"] + "/healthz", timeout=3) as resp:
                    healthy = resp.status == 200
            except (OSError, ValueError, KeyError):
                time.sleep(0.5)
        assert healthy, log_path.read_text()[-3000:]
        assert {
            "http",
            "mqtt_host",
            "mqtt_port",
            "kafka",
            "database",
            "mqtt_username",
            "mqtt_password",
        } <= set(endpoints)
        assert (data / "admin.token").read_text().strip()
        pids = {int(p) for p in re.findall(r"started \S+ \(pid (\d+)\)", log_path.read_text())}
        assert len(pids) >= 6, log_path.read_text()[
            -2000:
        ]  # postgres, mosquitto, kafka, bridge, worker, api
        assert all(_alive(p) for p in pids)

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        took = time.monotonic() - started
        assert proc.returncode == 0, log_path.read_text()[-2000:]
        assert not [p for p in pids if _alive(p)], "children left running"
        assert took < 30, f"stopping took {took:.1f} s"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
