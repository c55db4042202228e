"""A private Mosquitto: dynamic security, persistence, the journal plugin
(stack/mosquitto/sitewatch_journal.c) and, with `--listen`, MQTT over TLS."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stack.processes import Child, Supervisor, free_port, wait_for_port
from stack.services import ServiceError
from stack.tls import TlsFiles

log = logging.getLogger("sitewatch.stack")

DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
# stack/mosquitto/sitewatch_journal.c, built by `make` (mosquitto-journal): keeps what Mosquitto
# acknowledged until its next snapshot, and publishes it again after a crash.
JOURNAL_PLUGIN = Path(
    os.environ.get(
        "SITEWATCH_MQTT_JOURNAL_PLUGIN",
        Path(__file__).resolve().parents[1] / ".mosquitto" / "sitewatch_journal.so",
    )
)


@dataclass(frozen=True)
class TlsListener:
    host: str
    port: int
    files: TlsFiles


@dataclass
class Mosquitto:
    child: Child
    port: int
    admin_password: str


def start_mosquitto(
    sup: Supervisor,
    data_dir: Path,
    port: int | None = None,
    *,
    bridge_username: str = "sitewatch-bridge",
    tls: TlsListener | None = None,
) -> Mosquitto:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise ServiceError("mosquitto not found: apt-get install mosquitto mosquitto-clients")
    if not DYNSEC_PLUGIN.exists():
        raise ServiceError(f"{DYNSEC_PLUGIN} not found (Debian mosquitto ships it)")
    mqtt_dir = data_dir / "mqtt"
    mqtt_dir.mkdir(parents=True, exist_ok=True)
    mqtt_dir.chmod(0o700)  # password hashes, the admin secret, the persisted messages
    dynsec = mqtt_dir / "dynamic-security.json"
    secret_file = mqtt_dir / "admin.secret"
    if not dynsec.exists():
        admin_password = secrets.token_urlsafe(18)
        subprocess.run(
            ["mosquitto_ctrl", "dynsec", "init", str(dynsec), "sitewatch-admin", admin_password],
            check=True,
            capture_output=True,
        )
        secret_file.write_text(admin_password)
        secret_file.chmod(0o600)
    admin_password = secret_file.read_text().strip()
    port = port or free_port()
    conf = mqtt_dir / "mosquitto.conf"
    user_line = "user root\n" if os.geteuid() == 0 else ""
    if JOURNAL_PLUGIN.exists():
        journal = (
            f"plugin {JOURNAL_PLUGIN}\n"
            f"plugin_opt_journal_dir {mqtt_dir / 'journal'}\n"
            f"plugin_opt_snapshot_file {mqtt_dir / 'mosquitto.db'}\n"
            f"plugin_opt_skip_username {bridge_username}\n"
        )
    else:
        journal = ""
        log.warning(
            "%s is missing (make mosquitto-journal): a crash of Mosquitto loses what it "
            "acknowledged in the second before",
            JOURNAL_PLUGIN,
        )
    public = ""
    if tls is not None:  # MQTT over TLS on the public address; the same accounts and ACLs
        public = (
            f"listener {tls.port} {tls.host}\n"
            f"certfile {tls.files.cert}\nkeyfile {tls.files.key}\n"
            "tls_version tlsv1.2\n"
        )
    conf.write_text(
        f"{user_line}"
        "per_listener_settings false\n"
        f"listener {port} 127.0.0.1\n"
        f"{public}"
        "allow_anonymous false\n"
        f"plugin {DYNSEC_PLUGIN}\n"
        f"plugin_opt_config_file {dynsec}\n"
        f"{journal}"
        "persistence true\n"
        f"persistence_location {mqtt_dir}/\n"
        "autosave_interval 1\n"
        "max_queued_messages 0\n"
        "max_inflight_messages 0\n"
        # Ingest payloads are at most 64 KiB (wire.fields.MAX_PAYLOAD); bigger ones up to this
        # size still reach the bridge, so the sender's mistake is in the rejected log.
        "max_packet_size 2000000\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
        "log_dest stdout\n"
    )
    child = sup.start("mosquitto", [exe, "-c", str(conf)])
    wait_for_port("127.0.0.1", port, timeout_s=20, child=child)
    return Mosquitto(child, port, admin_password)
