"""What the embedded services of `sitewatch up` share: the error that says what to install or
check, and the owner-only JSON files they write. The services: stack.postgres,
stack.mosquitto_broker, stack.kafka_broker."""

from __future__ import annotations

import json
from pathlib import Path


class ServiceError(RuntimeError):
    """An embedded service could not be started; the message says what to install or check."""


def write_json(path: Path, payload: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    tmp.chmod(0o600)  # it holds the service identity's MQTT password
    tmp.replace(path)
