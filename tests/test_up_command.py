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


def _start_up(data: Path, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:  # type: ignore[type-arg]
    exe = Path(sys.executable).with_name("sitewatch")
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [str(exe), "up", "--data-dir", str(data)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )


def _wait_healthy(
    data: Path, proc: subprocess.Popen, log_path: Path, timeout_s: float = 180
) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            endpoints = json.loads((data / "endpoints.json").read_text())
            with urllib.request.urlopen(endpoints["http"] + "/healthz", timeout=3) as resp:
                if resp.status == 200:
                    return dict(endpoints)
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise AssertionError(log_path.read_text()[-3000:])


def _wait_log(log_path: Path, pattern: str, timeout_s: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = re.search(pattern, log_path.read_text())
        if m:
            return m
        time.sleep(0.3)
    raise AssertionError(f"no {pattern!r} in the log: {log_path.read_text()[-3000:]}")


@pytest.mark.stack
def test_up_restarts_services_killed_with_sigkill(tmp_path: Path) -> None:
    """A broker or Mosquitto that dies is started again by `up` (same port, same data)."""
    data, log_path = tmp_path / "data", tmp_path / "up.log"
    proc = _start_up(data, log_path)
    try:
        _wait_healthy(data, proc, log_path)
        for name in ("kafka", "mosquitto"):
            pid = int(_wait_log(log_path, rf"started {name} \(pid (\d+)\)", 5).group(1))
            os.kill(pid, signal.SIGKILL)
            _wait_log(log_path, rf"{name} \(pid {pid}\) exited with -9; restarting", 30)
            new = int(_wait_log(log_path, rf"{name} restarted \(pid (\d+)\)", 120).group(1))
            assert _alive(new) and new != pid
        endpoints = _wait_healthy(data, proc, log_path)
        # the same Kafka port, and the log kept: the topics are still there
        from aiokafka.admin import AIOKafkaAdminClient

        async def topics() -> list[str]:
            admin = AIOKafkaAdminClient(bootstrap_servers=endpoints["kafka"])
            await admin.start()
            try:
                return list(await admin.list_topics())
            finally:
                await admin.close()

        import asyncio

        assert "fixes.v1" in asyncio.run(topics())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log_path.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.stack
def test_up_uses_a_kafka_started_separately(tmp_path: Path) -> None:
    """SITEWATCH_KAFKA_URL: `up` starts no broker of its own, creates its topics with their
    retention on the given one and its stream worker joins a group there."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from stack import kafka_broker
    from stack.processes import Supervisor

    sup = Supervisor(tmp_path / "external" / "logs")
    kafka = kafka_broker.start_kafka(sup, tmp_path / "external")
    data, log_path = tmp_path / "data", tmp_path / "up.log"
    proc = _start_up(data, log_path, {"SITEWATCH_KAFKA_URL": kafka.url})
    try:
        endpoints = _wait_healthy(data, proc, log_path)
        assert endpoints["kafka"] == kafka.url
        assert not re.search(r"started kafka \(pid", log_path.read_text())

        async def inspect() -> tuple[list[str], dict[str, str]]:
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka.url)
            await admin.start()
            try:
                groups = [g[0] for g in await admin.list_consumer_groups()]
                (resp,) = await admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, "fixes.v1")]
                )
                configs = {c[0]: c[1] for c in resp.resources[0][4]}
                return groups, configs
            finally:
                await admin.close()

        groups, configs = asyncio.run(inspect())
        assert "sitewatch-streams" in groups
        assert configs["retention.bytes"] == str(512 * 1024 * 1024)
        assert configs["cleanup.policy"] == "delete"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert kafka.child.popen.poll() is None, "up stopped a broker it did not start"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        sup.stop_all()
