"""`python -m stack.broker_probe` runs against its own tansu and reports each round."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.stack


def test_broker_probe_reports_append_and_read_back_per_round() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "stack.broker_probe", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    line = re.search(
        r"5000 batches \(\s*25000 records\): append\s+[\d.]+ s .* read last 2500\s+[\d.]+ s", out
    )
    assert line, out
