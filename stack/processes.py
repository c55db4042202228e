"""Child processes started by SiteWatch and stopped by process id, never by name."""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("sitewatch.stack")

LOG_MAX_BYTES = int(os.environ.get("SITEWATCH_LOG_MAX_BYTES", str(20 * 1024 * 1024)))
LOG_KEEP = 5


# below Linux's ephemeral range (default 32768-60999): a port the kernel hands out to
# outgoing connections could be taken by one between choosing it and the service binding it
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def port_range() -> tuple[int, int]:
    try:
        low = int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return (20000, low - 1) if low > 21000 else (low // 2, low - 1)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host`, outside the ephemeral range, that nothing is bound to right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        port = random.randint(*port_range())
        with socket.socket(family) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(family) as sock:  # a crowded range: let the kernel choose
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_for_port(host: str, port: int, *, timeout_s: float, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and child.popen.poll() is not None:
            raise RuntimeError(
                f"{child.name} exited with code {child.popen.returncode} before listening on "
                f"{host}:{port}; see {child.log_path}:\n{log_tail(child.log_path)}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.popen.pid


@dataclass
class Supervisor:
    """Starts children with their output in log files and stops them in reverse order."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        preexec_fn: Callable[[], None] | None = None,
    ) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.chmod(0o700)
        log_path = self.log_dir / f"{name}.log"
        # readable by the owner only: a log may quote a rejected message or an error's values
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # a log file of an earlier version may be older and wider
        out = os.fdopen(fd, "ab")
        popen = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            preexec_fn=preexec_fn,
            start_new_session=True,
            umask=0o077,  # what the children write (Kafka's own log, data) is the owner's
        )
        out.close()
        child = Child(name, popen, log_path, stop_signal)
        self.children.append(child)
        log.info("started %s (pid %d), log %s", name, popen.pid, log_path)
        return child

    def rotate_logs(self, max_bytes: int = LOG_MAX_BYTES, keep: int = LOG_KEEP) -> list[Path]:
        """Rotate the children's log files larger than `max_bytes` (copy, then truncate: the
        children keep their descriptor, opened for appending, so they write on at offset 0);
        `name.log.1` is the newest of `keep` old files. Returns the files rotated."""
        rotated = []
        for path in sorted(self.log_dir.glob("*.log")):
            try:
                if path.stat().st_size <= max_bytes:
                    continue
                for k in range(keep - 1, 0, -1):
                    older = path.with_name(f"{path.name}.{k}")
                    if older.exists():
                        older.replace(path.with_name(f"{path.name}.{k + 1}"))
                shutil.copyfile(path, path.with_name(f"{path.name}.1"))
                os.truncate(path, 0)
                rotated.append(path)
            except OSError as exc:  # a full disk must not stop the supervision
                log.warning("could not rotate %s: %s", path, exc)
        return rotated

    def dead(self) -> list[Child]:
        return [c for c in self.children if c.popen.poll() is not None]

    def stop(self, child: Child, *, timeout_s: float = 15.0) -> None:
        if child.popen.poll() is None:
            try:
                child.popen.send_signal(child.stop_signal)
                child.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s (pid %d) ignored %s; killing it", child.name, child.pid, child.stop_signal
                )
                child.popen.kill()
                child.popen.wait(5)
            except ProcessLookupError:
                pass
        if child in self.children:
            self.children.remove(child)
        log.info("stopped %s (pid %d)", child.name, child.pid)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)


@dataclass
class Backoff:
    """When to start a dead child again: 1 s after its first death, then twice as long after
    each death that follows within `healthy_s` of a start, at most `max_s`."""

    first_s: float = 1.0
    max_s: float = 30.0
    healthy_s: float = 60.0
    failures: dict[str, int] = field(default_factory=dict)
    next_at: dict[str, float] = field(default_factory=dict)
    started_at: dict[str, float] = field(default_factory=dict)

    def running(self, name: str) -> None:
        started = self.started_at.get(name)
        if started is not None and time.monotonic() - started > self.healthy_s:
            self.failures.pop(name, None)
            self.started_at.pop(name, None)

    def failed(self, name: str) -> float:
        """A death or a failed start: the pause before the next try."""
        n = self.failures.get(name, 0)
        self.failures[name] = n + 1
        delay = min(self.max_s, self.first_s * 2**n)
        self.next_at[name] = time.monotonic() + delay
        return delay

    def due(self, name: str) -> bool | None:
        """None when no restart is pending, else whether its pause is over."""
        at = self.next_at.get(name)
        return None if at is None else time.monotonic() >= at

    def started(self, name: str) -> None:
        self.next_at.pop(name, None)
        self.started_at[name] = time.monotonic()
