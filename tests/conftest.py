"""Session fixtures: one private stack (PostGIS, Mosquitto, Kafka, bridge, worker, API) on
free ports for the whole run, stopped by process id at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.up import Stack, StackOptions
from tests.stack_client import StackClient

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
# Test stacks keep every rejection as a row: many tests look for their own rejections in the
# log. The sampling itself is tested with its own limit (tests/api/test_rejected_log.py).
os.environ.setdefault("SITEWATCH_REJECTED_SAMPLE_PER_HOUR", "100000000")
# The bridge clears OwnTracks' retained copies every minute; tests wait for it, so sooner.
os.environ.setdefault("SITEWATCH_BRIDGE_RETAINED_SWEEP_S", "3")
os.environ.setdefault("SITEWATCH_WS_TOKEN_RECHECK_S", "2")
os.environ.setdefault("SITEWATCH_CHIEF_CHECK_INTERVAL_S", "2")  # chief_absent at once
os.environ.setdefault("SITEWATCH_NOTICE_CHECK_INTERVAL_S", "2")
os.environ.setdefault("SITEWATCH_CHIEF_QUIET_S", "10")  # once a month's fixes stop
os.environ.setdefault("SITEWATCH_TRAINING_CHECK_INTERVAL_S", "2")
os.environ.setdefault("SITEWATCH_ATTENDANCE_PUSH_INTERVAL_S", "2")  # live minutes at once
# every test talks to the stack from one address, the fuzzers thousands of times a second for
# one engineer: the per-address and per-identity limits are tested on an app of their own
os.environ.setdefault("SITEWATCH_INGEST_RATE_PER_IDENTITY", "1000000/second")
os.environ.setdefault("SITEWATCH_INGEST_RATE_PER_ADDRESS", "1000000/second")
os.environ.setdefault("SITEWATCH_LOGIN_ATTEMPTS_PER_ADDRESS", "1000000/minute")


@pytest.fixture(scope="session")
def running_stack() -> Iterator[Stack]:
    data_dir = Path(tempfile.mkdtemp(prefix="sitewatch-test-"))
    # phones over TLS on a second loopback address, as `sitewatch up --listen` (tests/security)
    stack = Stack(StackOptions(data_dir, listen="127.0.0.2"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        if os.environ.get("SITEWATCH_KEEP_TEST_DATA") != "1":
            shutil.rmtree(data_dir, ignore_errors=True)


def dead_children(stack: Stack) -> dict[str, int]:
    children = {**stack.services, **stack.components}
    return {name: code for name, c in children.items() if (code := c.popen.poll()) is not None}


@pytest.fixture(autouse=True)
def shared_stack_left_whole(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that leaves a process of the shared stack dead fails in its teardown and the
    process is started again, so the tests after it do not time out one by one."""
    yield
    if "running_stack" not in request.fixturenames:
        return
    stack: Stack = request.getfixturevalue("running_stack")
    dead = dead_children(stack)
    if not dead:
        return
    deadline = time.monotonic() + 120
    while dead_children(stack) and time.monotonic() < deadline:
        stack.supervise_once()
        time.sleep(0.5)
    left = dead_children(stack)
    pytest.fail(
        f"the test left the shared stack with {dead} exited (name: exit status); "
        + (f"still down: {sorted(left)}" if left else "started again for the tests after it")
    )


@pytest.fixture(scope="session")
def sw(running_stack: Stack) -> StackClient:
    return StackClient(running_stack.endpoints, running_stack.admin_token)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
