"""Stop, kill and restart the parts of a running `Stack`, by process id: what the fault tests
and `make soak` use to inject faults. Services come back on the same port and data directory,
so clients only see a dropped connection.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from urllib.parse import urlparse

from stack import postgres
from stack.processes import Child
from stack.up import Stack

log = logging.getLogger("sitewatch.stack")


def child_named(stack: Stack, name: str) -> Child:
    for child in stack.supervisor.children:
        if child.name == name:
            return child
    raise KeyError(f"no running child {name!r} in this stack")


def kill9(stack: Stack, name: str) -> None:
    """SIGKILL a component (bridge, worker, api, worker2...) and forget it."""
    child = stack.components.pop(name)
    os.kill(child.pid, signal.SIGKILL)
    child.popen.wait(10)
    if child in stack.supervisor.children:
        stack.supervisor.children.remove(child)
    log.info("killed %s (pid %d) with SIGKILL", name, child.pid)


def kill9_service(stack: Stack, name: str) -> Child:
    """SIGKILL an embedded service (postgres, mosquitto, kafka) and leave it to `Stack.watch`,
    which starts it again; returns the dead child."""
    child = stack.services[name]
    os.kill(child.pid, signal.SIGKILL)
    child.popen.wait(10)
    log.info("killed %s (pid %d) with SIGKILL", name, child.pid)
    return child


def stop_component(stack: Stack, name: str) -> None:
    """Stop a component gracefully (SIGTERM, then SIGKILL after 15 s) and forget it."""
    child = stack.components.pop(name)
    stack.supervisor.stop(child)


def start_component(stack: Stack, name: str) -> Child:
    """Start a component again under its name (`worker2` is `worker` with suffix `2`)."""
    base = name.rstrip("0123456789")
    child = stack.components.get(name)
    if child is not None and child.popen.poll() is None:
        raise RuntimeError(f"{name} is still running (pid {child.pid})")
    if child is not None:
        stack.components.pop(name)
        if child in stack.supervisor.children:
            stack.supervisor.children.remove(child)
    return stack.start_component(base, suffix=name[len(base) :])


def restart_postgres(stack: Stack, *, down_s: float = 0.0) -> Child:
    """Fast shutdown (SIGINT: open transactions abort, connections drop), then the same
    cluster on the same port."""
    port = urlparse(stack.env["SITEWATCH_DATABASE_URL"]).port
    stack.supervisor.stop(child_named(stack, "postgres"), timeout_s=60)
    time.sleep(down_s)
    child = postgres.start_postgres(stack.supervisor, stack.options.data_dir, port).child
    stack.services["postgres"] = child
    return child


def restart_mosquitto(stack: Stack, *, down_s: float = 0.0) -> Child:
    """SIGTERM (Mosquitto writes its persistence file: sessions and queued messages), then
    the same configuration on the same port."""
    stack.supervisor.stop(child_named(stack, "mosquitto"), timeout_s=30)
    time.sleep(down_s)
    child = stack.service_starters["mosquitto"]()  # as `up` would start it again
    stack.services["mosquitto"] = child
    return child


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of a process from /proc/PID/status (VmRSS: resident set size; RssAnon:
    its private part), in KiB; 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pids(pid: int) -> list[int]:
    """A process and its descendants (PostgreSQL's backends are children of postgres)."""
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
    except OSError:
        children = []
    for c in children:
        out += tree_pids(int(c))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(check, *, timeout_s: float, what: str, interval_s: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)
