"""Secrets, tokens, endpoints and logs of a running stack are readable by their owner only
(CONTRACT 6.1): another local user must not read the admin token, the service identity's
MQTT password in endpoints.json, the broker's password hashes or the logs."""

from __future__ import annotations

import stat
from pathlib import Path

from stack.up import Stack


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_owner_only_files(running_stack: Stack) -> None:
    data = Path(running_stack.options.data_dir)
    assert mode(data) & 0o044 == 0  # others may traverse, not list
    for name in (
        "admin.token",
        "endpoints.json",
        "secrets/personal-data.key",
        "mqtt/dynamic-security.json",
        "mqtt/admin.secret",
        "mqtt/bridge.secret",
    ):
        path = data / name
        assert path.exists(), name
        assert mode(path) & 0o077 == 0 or mode(path.parent) & 0o077 == 0, (name, oct(mode(path)))
    assert mode(data / "logs") & 0o077 == 0
    for log in (data / "logs").glob("*.log"):
        assert mode(log) & 0o077 == 0, (log.name, oct(mode(log)))
