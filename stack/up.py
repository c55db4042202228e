"""`sitewatch up`: the whole stack on one machine, in the foreground, stopped by Ctrl-C/SIGTERM.

Embedded services are started unless SITEWATCH_DATABASE_URL / SITEWATCH_KAFKA_URL /
SITEWATCH_MQTT_URL point at existing ones. Every child, the embedded services (PostgreSQL,
Mosquitto, Kafka) and the Python components (bridge, stream worker, API), is restarted with
backoff if it dies, a service on its port and data directory; every child is stopped by its
process id. A start on an existing data directory resumes where it was.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from config.secret_files import read_or_make_secret
from config.settings import Settings
from devices.broker import BrokerAdmin
from stack import kafka_broker, mosquitto_broker, postgres, services, tls, topic_setup
from stack.processes import Backoff, Child, Supervisor, free_port, wait_for_port

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
    listen: str | None = None  # HTTPS and MQTT over TLS on this address (docs/security.md)
    https_port: int | None = None
    mqtts_port: int | None = None
    tls_cert: str = ""  # the operator's certificate (chain) and key; else a private CA's
    tls_key: str = ""

    @classmethod
    def from_args(cls, args: Any) -> StackOptions:
        """From the parsed arguments of `sitewatch up` / `sitewatch demo` (commands.main)."""
        return cls(
            args.data_dir,
            args.http_port,
            args.mqtt_port,
            args.kafka_port,
            args.workers,
            listen=args.listen,
            https_port=args.https_port,
            mqtts_port=args.mqtts_port,
            tls_cert=args.tls_cert or "",
            tls_key=args.tls_key or "",
        )


@dataclass
class Stack:
    options: StackOptions
    supervisor: Supervisor = field(init=False)
    env: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, Any] = field(default_factory=dict)
    components: dict[str, Child] = field(default_factory=dict)
    # embedded services by name, and how to start each again (same port, same data)
    services: dict[str, Child] = field(default_factory=dict)
    service_starters: dict[str, Callable[[], Child]] = field(default_factory=dict)
    backoff: Backoff = field(default_factory=Backoff)
    _slots: dict[str, int] = field(default_factory=dict)
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
        sup = self.supervisor
        base = Settings()
        env: dict[str, str] = {"SITEWATCH_DATA_DIR": str(data)}
        env["SITEWATCH_PERSONAL_DATA_KEY"] = personal_data_key(base, data)
        listen = self.options.listen or base.listen
        tls_files = None
        if listen:
            tls_files = tls.ensure_certificates(
                data / "secrets",
                listen,
                self.options.tls_cert or base.tls_cert_file,
                self.options.tls_key or base.tls_key_file,
            )
            mqtts_port = self.options.mqtts_port or base.mqtts_port or free_port(listen)
            https_port = self.options.https_port or base.https_port or free_port(listen)
            env.update(
                SITEWATCH_LISTEN=listen,
                SITEWATCH_HTTPS_PORT=str(https_port),
                SITEWATCH_TLS_CERT_FILE=str(tls_files.cert),
                SITEWATCH_TLS_KEY_FILE=str(tls_files.key),
            )

        database_url = base.database_url
        if database_url:
            from store.migrate import upgrade

            upgrade(Settings(database_url=database_url).sync_database_url)
        else:
            pg = postgres.start_postgres(self.supervisor, data)
            self.add_service(
                "postgres", pg.child, lambda: postgres.start_postgres(sup, data, pg.port).child
            )
            database_url = postgres.migrated(pg)
        log.info("database %s", postgres.redacted(database_url))
        env["SITEWATCH_DATABASE_URL"] = database_url

        if base.mqtt_url:
            mqtt_url = base.mqtt_url
            admin_password = base.mqtt_admin_password.get_secret_value()
        else:
            bridge = base.mqtt_bridge_username
            mqtt_tls = (
                mosquitto_broker.TlsListener(listen, mqtts_port, tls_files) if tls_files else None
            )
            mq = mosquitto_broker.start_mosquitto(
                sup, data, self.options.mqtt_port, bridge_username=bridge, tls=mqtt_tls
            )
            self.add_service(
                "mosquitto",
                mq.child,
                lambda: (
                    mosquitto_broker.start_mosquitto(
                        sup, data, mq.port, bridge_username=bridge, tls=mqtt_tls
                    ).child
                ),
            )
            admin_password = mq.admin_password
            service_password = read_or_make_secret(
                data / "mqtt" / "service.secret", lambda: secrets.token_urlsafe(18)
            )
            mqtt_url = f"mqtt://sitewatch-service:{service_password}@127.0.0.1:{mq.port}"
        parsed = urlparse(mqtt_url)
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 1883
        admin = BrokerAdmin(host, port, base.mqtt_admin_username, admin_password)
        bridge_password = base.mqtt_bridge_password.get_secret_value() or read_or_make_secret(
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

        kafka_url = base.kafka_url
        if not kafka_url:
            kafka = kafka_broker.start_kafka(sup, data, self.options.kafka_port)
            self.add_service(
                "kafka", kafka.child, lambda: kafka_broker.start_kafka(sup, data, kafka.port).child
            )
            kafka_url = kafka.url
        topic_setup.ensure_topics_sync(kafka_url, base.kafka_partitions)
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
        public: dict[str, Any] = {}
        if listen and tls_files:
            wait_for_port(listen, https_port, timeout_s=30, child=self.components["api"])
            host_part = f"[{listen}]" if ":" in listen else listen
            public = {
                "https": f"https://{host_part}:{https_port}",
                "mqtts_host": listen,
                "mqtts_port": mqtts_port if not base.mqtt_url else None,
                "ca_file": str(tls_files.ca) if tls_files.ca else None,
            }
        self.endpoints = {
            "http": http,
            "map": http + "/map/",
            "console": http + "/console/",
            "mqtt_host": host,
            "mqtt_port": port,
            "mqtt_username": parsed.username,
            "mqtt_password": parsed.password,
            "kafka": kafka_url,
            "database": database_url,
            "data_dir": str(data),
            "pid": os.getpid(),
            **public,
        }
        services.write_json(data / "endpoints.json", self.endpoints)
        token_file = data / "admin.token"
        token_file.write_text(self.admin_token + "\n")
        token_file.chmod(0o600)

    def add_service(self, name: str, child: Child, starter: Callable[[], Child]) -> None:
        self.services[name] = child
        self.service_starters[name] = starter

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
        """Restart every child that dies, with backoff; return when `stop` is set."""
        while not stop[0]:
            time.sleep(0.5)
            self.supervisor.rotate_logs()
            self.supervise_once(stop)

    def supervise_once(self, stop: list[bool] | None = None) -> None:
        """One pass: note the children that died, start again those whose pause is over.
        Services first: the components need them."""
        groups: list[tuple[dict[str, Child], Callable[[str], Child]]] = [
            (self.services, lambda name: self.service_starters[name]()),
            (self.components, self._restart_component),
        ]
        for children, starter in groups:
            for name, child in list(children.items()):
                if stop is not None and stop[0]:
                    return
                if child.popen.poll() is None:
                    self.backoff.running(name)
                    continue
                if self.backoff.due(name) is None:
                    if child in self.supervisor.children:
                        # the new child takes its place: stop_all stops in reverse start order
                        self._slots[name] = self.supervisor.children.index(child)
                        self.supervisor.children.remove(child)
                    delay = self.backoff.failed(name)
                    self.note_restart(name)
                    log.error(
                        "%s (pid %d) exited with %s; restarting in %.0f s (log %s)",
                        name,
                        child.pid,
                        child.popen.returncode,
                        delay,
                        child.log_path,
                    )
                    continue
                if not self.backoff.due(name):
                    continue
                try:
                    children[name] = new = starter(name)
                    self.backoff.started(name)
                    if name in self._slots and self.supervisor.children[-1:] == [new]:
                        self.supervisor.children.pop()
                        self.supervisor.children.insert(self._slots.pop(name), new)
                    log.warning("%s restarted (pid %d)", name, children[name].pid)
                except Exception as exc:
                    for stray in [c for c in self.supervisor.children if c.name == name]:
                        self.supervisor.stop(stray)
                    delay = self.backoff.failed(name)
                    log.error(
                        "%s could not be restarted (%s); next try in %.0f s", name, exc, delay
                    )

    def _restart_component(self, name: str) -> Child:
        base = name.rstrip("0123456789")
        return self.start_component(base, suffix=name[len(base) :])

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


class KeyFileError(RuntimeError):
    """SITEWATCH_PERSONAL_DATA_KEY_FILE is missing, malformed or readable by others."""


def personal_data_key(base: Settings, data: Path) -> str:
    """The SM4 key of personal data: SITEWATCH_PERSONAL_DATA_KEY, else the file named by
    SITEWATCH_PERSONAL_DATA_KEY_FILE (made if missing; owner-only), else one kept in
    DATA_DIR/secrets (made on the first start)."""
    if base.personal_data_key.get_secret_value():
        return base.personal_data_key.get_secret_value()
    if not base.personal_data_key_file:
        return read_or_make_secret(
            data / "secrets" / "personal-data.key", lambda: secrets.token_hex(16)
        )
    path = Path(base.personal_data_key_file).expanduser().resolve()
    if not path.exists():
        log.info("making the personal-data key %s (keep a copy apart from backups)", path)
    key = read_or_make_secret(path, lambda: secrets.token_hex(16))
    if path.stat().st_mode & 0o077:
        raise KeyFileError(f"{path} is readable by others: chmod 600 {path}")
    if len(key) != 32 or any(c not in "0123456789abcdefABCDEF" for c in key):
        raise KeyFileError(f"{path} must hold 32 hexadecimal characters (a 128-bit SM4 key)")
    if path.is_relative_to(data.resolve()):
        log.warning("%s is inside the data directory: a copy of it carries the key", path)
    return key


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
                    # the whole URL (with its password) is in endpoints.json, owner-only
                    "database": postgres.redacted(str(stack.endpoints["database"])),
                }
            ),
            flush=True,
        )
        print(
            f"SiteWatch is up: map {stack.endpoints['map']}  (admin token in {options.data_dir / 'admin.token'})",
            flush=True,
        )
        ep = stack.endpoints
        if ep.get("https"):
            print(
                f"phones: {ep['https']}/osmand (Traccar Client), {ep['https']}/owntracks "
                f"(OwnTracks HTTP), mqtts://{ep['mqtts_host']}:{ep['mqtts_port']} (OwnTracks "
                f"MQTT); CA to install: {ep['ca_file'] or 'your certificate'} (docs/security.md)",
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
