"""`sitewatch up`: the whole stack on one machine, in the foreground, stopped by Ctrl-C/SIGTERM.

Embedded services are started unless SITEWATCH_DATABASE_URL / SITEWATCH_KAFKA_URL /
SITEWATCH_MQTT_URL point at existing ones. Python components (bridge, stream worker, API) run
as child processes and are restarted if they die; every child is stopped by its process id.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from devices.broker import BrokerAdmin
from stack import services, topics
from stack.processes import Child, Supervisor, free_port, wait_for_port
from stack.settings import Settings

log = logging.getLogger("sitewatch.stack")

COMPONENTS = {
    "bridge": ["-m", "ingest.bridge"],
    "worker": ["-m", "streams", "worker", "-l", "info"],
    "api": ["-m", "live_api"],
}


@dataclass
class StackOptions:
    data_dir: Path
    http_port: int | None = None
    mqtt_port: int | None = None
    kafka_port: int | None = None
    workers: int = 1


@dataclass
class Stack:
    options: StackOptions
    supervisor: Supervisor = field(init=False)
    env: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, Any] = field(default_factory=dict)
    components: dict[str, Child] = field(default_factory=dict)
    admin_token: str = ""

    def __post_init__(self) -> None:
        self.options.data_dir = self.options.data_dir.resolve()
        self.supervisor = Supervisor(self.options.data_dir / "logs")

    # -- start -------------------------------------------------------------------------

    def start(self) -> None:
        data = self.options.data_dir
        data.mkdir(parents=True, exist_ok=True)
        # others may pass through (the `postgres` user must reach its cluster when we are
        # root) but not list or read: tokens, secrets, logs and data are the owner's
        data.chmod(0o711)
        base = Settings()
        env: dict[str, str] = {"SITEWATCH_DATA_DIR": str(data)}
        env["SITEWATCH_PERSONAL_DATA_KEY"] = (
            base.personal_data_key.get_secret_value()
            or _secret_file(data / "secrets" / "personal-data.key", lambda: secrets.token_hex(16))
        )

        database_url = base.database_url
        if database_url:
            from store.migrate import upgrade

            upgrade(Settings(database_url=database_url).sync_database_url)
        else:
            database_url = services.migrated(services.start_postgres(self.supervisor, data))
        log.info("database %s", services.redacted(database_url))
        env["SITEWATCH_DATABASE_URL"] = database_url

        if base.mqtt_url:
            mqtt_url = base.mqtt_url
            admin_password = base.mqtt_admin_password.get_secret_value()
        else:
            mq = services.start_mosquitto(self.supervisor, data, self.options.mqtt_port)
            admin_password = mq.admin_password
            service_password = _secret_file(
                data / "mqtt" / "service.secret", lambda: secrets.token_urlsafe(18)
            )
            mqtt_url = f"mqtt://sitewatch-service:{service_password}@127.0.0.1:{mq.port}"
        parsed = urlparse(mqtt_url)
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 1883
        admin = BrokerAdmin(host, port, base.mqtt_admin_username, admin_password)
        bridge_password = base.mqtt_bridge_password.get_secret_value() or _secret_file(
            data / "mqtt" / "bridge.secret", lambda: secrets.token_urlsafe(18)
        )
        admin.ensure_bridge(base.mqtt_bridge_username, bridge_password)
        if parsed.username and parsed.password:
            admin.ensure_service(parsed.username, parsed.password)
        env.update(
            SITEWATCH_MQTT_URL=mqtt_url,
            SITEWATCH_MQTT_ADMIN_PASSWORD=admin_password,
            SITEWATCH_MQTT_BRIDGE_PASSWORD=bridge_password,
        )

        kafka_url = (
            base.kafka_url or services.start_tansu(self.supervisor, self.options.kafka_port).url
        )
        topics.ensure_topics_sync(kafka_url, base.kafka_partitions)
        env["SITEWATCH_KAFKA_URL"] = kafka_url

        http_port = self.options.http_port or base.http_port or free_port()
        env["SITEWATCH_HTTP_PORT"] = str(http_port)
        self.env = env
        self.admin_token = self._admin_token(Settings(database_url=database_url))

        run_dir = data / "run"
        for pattern in ("*.ready", "supervision.json", "bridge.json"):  # of an earlier run
            for stale in run_dir.glob(pattern) if run_dir.exists() else []:
                stale.unlink()
        for name in COMPONENTS:
            self.start_component(name)
        for i in range(1, self.options.workers):
            self.start_component("worker", suffix=str(i + 1))
        http = f"http://127.0.0.1:{http_port}"
        wait_for_port("127.0.0.1", http_port, timeout_s=60, child=self.components["api"])
        _wait_healthy(http + "/healthz", timeout_s=90, stack=self)
        _wait_workers_ready(run_dir, timeout_s=120, stack=self)
        self.endpoints = {
            "http": http,
            "map": http + "/map/",
            "mqtt_host": host,
            "mqtt_port": port,
            "mqtt_username": parsed.username,
            "mqtt_password": parsed.password,
            "kafka": kafka_url,
            "database": database_url,
            "data_dir": str(data),
            "pid": os.getpid(),
        }
        services.write_json(data / "endpoints.json", self.endpoints)
        token_file = data / "admin.token"
        token_file.write_text(self.admin_token + "\n")
        token_file.chmod(0o600)

    def start_component(self, name: str, suffix: str = "") -> Child:
        child = self.supervisor.start(
            name + suffix, [sys.executable, *COMPONENTS[name]], env=self.env
        )
        self.components[name + suffix] = child
        return child

    def _admin_token(self, settings: Settings) -> str:
        import psycopg

        from live_api.auth import hash_token, new_token

        token_file = self.options.data_dir / "admin.token"
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            if token_file.exists():
                token = token_file.read_text().strip()
                if conn.execute(
                    "SELECT 1 FROM tokens WHERE token_hash = %s", (hash_token(token),)
                ).fetchone():
                    return token
            token = new_token()
            conn.execute(
                "INSERT INTO tokens (token_hash, role, device_ids) VALUES (%s, 'admin', '{}')",
                (hash_token(token),),
            )
            return token

    # -- run and stop ------------------------------------------------------------------

    def watch(self, stop: list[bool]) -> None:
        """Restart Python components that die (with a pause); return when `stop` is set."""
        while not stop[0]:
            time.sleep(0.5)
            self.supervisor.rotate_logs()
            for name, child in list(self.components.items()):
                if child.popen.poll() is not None and not stop[0]:
                    log.error(
                        "%s exited with %s; restarting in 2 s (log %s)",
                        name,
                        child.popen.returncode,
                        child.log_path,
                    )
                    self.supervisor.children.remove(child)
                    self.note_restart(name)
                    time.sleep(2)
                    base = name.rstrip("0123456789")
                    self.start_component(base, suffix=name[len(base) :])

    def note_restart(self, name: str) -> None:
        """`DATA_DIR/run/supervision.json`: restart times per component, for `/healthz`
        (live_api.health reports a component restarting in a loop)."""
        path = self.options.data_dir / "run" / "supervision.json"
        try:
            state = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            state = {}
        now = time.time()
        entry = state.setdefault(name, {"restarts": []})
        entry["restarts"] = [t for t in entry["restarts"] if now - t < 3600] + [now]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(path)

    def stop(self) -> None:
        self.supervisor.stop_all()


def _secret_file(path: Path, make: Any) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = str(make())
    path.write_text(value)
    path.chmod(0o600)
    return value


def _wait_healthy(url: str, *, timeout_s: float, stack: Stack) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        for name, child in stack.components.items():
            if child.popen.poll() is not None:
                raise RuntimeError(f"{name} exited during start-up; see {child.log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:  # not up yet
            last = str(exc)
        time.sleep(0.3)
    raise TimeoutError(f"{url} not healthy after {timeout_s:.0f} s ({last})")


def _wait_workers_ready(run_dir: Path, *, timeout_s: float, stack: Stack) -> None:
    started = time.monotonic()
    while not (run_dir.exists() and any(run_dir.glob("worker-*.ready"))):
        for name, child in stack.components.items():
            if child.popen.poll() is not None:
                raise RuntimeError(f"{name} exited during start-up; see {child.log_path}")
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(
                f"the stream worker got no partitions within {timeout_s:.0f} s; see logs/worker.log"
            )
        time.sleep(0.2)
    log.info("stream worker ready after %.1f s", time.monotonic() - started)


def run_up(options: StackOptions, *, after_start: Any = None) -> int:
    stack = Stack(options)
    stop = [False]

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
        print(
            json.dumps(
                {
                    "status": "up",
                    **{k: v for k, v in stack.endpoints.items() if k != "mqtt_password"},
                }
            ),
            flush=True,
        )
        print(
            f"SiteWatch is up: map {stack.endpoints['map']}  (admin token in {options.data_dir / 'admin.token'})",
            flush=True,
        )
        if after_start is not None:
            after_start(stack)
        stack.watch(stop)
        return 0
    except Exception as exc:
        if stop[0]:
            return 0
        log.error("sitewatch up failed: %s", exc)
        return 1
    finally:
        stack.stop()
        log.info("every child stopped")
