"""The embedded Kafka broker killed with SIGKILL under the steady load of the other fault
tests, with `Stack.watch` running as in `sitewatch up`: the broker comes back on its port and
data without a hand on it, and every acknowledged fix is persisted exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from stack import restart
from stack.loadgen import Load
from stack.up import Stack
from tests.fault.harness import FaultStack, check
from tests.fault.test_faults import _growing

pytestmark = pytest.mark.stack


@contextmanager
def supervised(stack: Stack) -> Iterator[None]:
    """`sitewatch up`'s supervision loop in a thread while the block runs."""
    stop = [False]
    thread = threading.Thread(target=stack.watch, args=(stop,), name="watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop[0] = True
        thread.join(120)


def test_kafka_kill9_under_load(fault_stack: FaultStack, baseline: set[str]) -> None:
    fs = fault_stack
    plan = fs.plan()
    stack = fs.stack
    pids = {name: c.pid for name, c in stack.components.items()}

    def fault(load: Load) -> dict[str, Any]:
        load.wait_published(3000)
        at = _growing(fs, plan)
        t = time.monotonic()
        dead = restart.kill9_service(stack, "kafka")
        back = restart.wait_until(
            lambda: (c := stack.services["kafka"]) is not dead and c.popen.poll() is None and c,
            timeout_s=120,
            what="the supervisor to start Kafka again",
        )
        return {
            "killed_at_persisted": at,
            "kafka_back_after_s": round(time.monotonic() - t, 1),
            "kafka_pid": back.pid,
        }

    with supervised(stack):
        outcome = fs.run("Kafka broker kill -9", plan, fault)
        restarted = sorted(n for n, c in stack.components.items() if c.pid != pids.get(n))
        outcome.notes["components_restarted"] = restarted
    check(outcome, baseline, fs)
    assert stack.services["kafka"].popen.poll() is None
