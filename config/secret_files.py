"""Secrets kept in files: read, or made once, owner-only from the first byte."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def read_or_make_secret(path: Path, make: Callable[[], str]) -> str:
    """The stripped content of `path`; when it does not exist, `make()` written there first,
    mode 0600 (never readable by others, not even for a moment; O_EXCL: two starters racing
    cannot both write)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = str(make())
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(value)
    return value
