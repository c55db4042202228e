"""One private stack for the fault tests (they kill its parts, so never the shared `sw` one),
its two sites and ~100 engineers registered once, and the fault-free baseline run."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from measure import loadgen
from stack.up import Stack, StackOptions
from tests.fault.harness import ENGINEERS, PREFIX, FaultStack, check


@pytest.fixture(scope="package")
def fault_stack() -> Iterator[FaultStack]:
    data_dir = Path(tempfile.mkdtemp(prefix="sitewatch-fault-"))
    stack = Stack(StackOptions(data_dir))
    fs = FaultStack(stack)
    try:
        stack.start()
        ep = stack.endpoints
        loadgen.register_projects(str(ep["http"]), stack.admin_token)
        # engineers are shared by every run; the plan only decides their ids and regions
        template = loadgen.Plan(prefix=PREFIX, run="-", base_ts=loadgen.default_base_ts(30))
        assert template.engineers == ENGINEERS
        loadgen.register_engineers(str(ep["http"]), stack.admin_token, template)
        yield fs
    finally:
        fs.stack.stop()  # a test may have replaced the stack (whole-stack kill, then up again)
        if os.environ.get("SITEWATCH_KEEP_TEST_DATA") != "1":
            shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="package")
def baseline(fault_stack: FaultStack) -> set[str]:
    """Alert ids (normalised) of a fault-free run of the same input on the same stack; it
    must also be exactly what the plan was designed to trigger."""
    plan = fault_stack.plan()
    outcome = fault_stack.run("baseline (no fault)", plan)
    expected = loadgen.normalise(loadgen.expected_alerts(plan), plan)
    check(outcome, expected)
    return outcome.alerts
