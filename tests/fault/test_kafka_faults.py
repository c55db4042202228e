"""The embedded Kafka broker killed with SIGKILL under the steady load of the other fault
tests, with `Stack.watch` running as in `sitewatch up`: the broker comes back on its port and
data without a hand on it, and every acknowledged fix is persisted exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from measure import faults as restart
from measure.loadgen import Load
from stack.up import Stack, StackOptions
from tests.fault.harness import FaultStack, _locate, check
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


def test_whole_stack_kill9_then_up_again(fault_stack: FaultStack, baseline: set[str]) -> None:
    """Every process of the stack SIGKILLed at once (each child's process group: PostgreSQL's
    backends too), then a new `Stack` on the same data directory and ports, as `sitewatch up`
    run again would do."""
    fs = fault_stack
    plan = fs.plan()
    old = fs.stack
    opts = old.options
    ports = {
        "http_port": int(str(old.endpoints["http"]).rsplit(":", 1)[1]),
        "mqtt_port": int(old.endpoints["mqtt_port"]),
        "kafka_port": int(str(old.endpoints["kafka"]).rsplit(":", 1)[1]),
    }

    def fault(load: Load) -> dict[str, Any]:
        load.wait_published(3000)
        at = _growing(fs, plan)
        children = list(old.supervisor.children)
        for child in children:
            os.killpg(child.pid, signal.SIGKILL)
        for child in children:
            child.popen.wait(10)
        old.supervisor.children.clear()
        t = time.monotonic()
        new = Stack(StackOptions(opts.data_dir, workers=opts.workers, **ports))
        fs.stack = new
        new.start()
        return {"killed_at_persisted": at, "up_again_after_s": round(time.monotonic() - t, 1)}

    outcome = fs.run("every process kill -9, then up again", plan, fault, drain_timeout_s=60)
    rec = outcome.rec
    s = outcome.summary()
    assert outcome.totals["published"] == rec.acked, s
    assert not rec.unexpected, s
    assert rec.persisted_rows == rec.persisted_distinct, f"persisted twice: {s}"
    assert not outcome.notes["exited"], s
    if rec.missing:  # Mosquitto's journal (stack/mosquitto) republishes what it acknowledged
        where = asyncio.run(_locate(str(fs.endpoints["kafka"]), set(rec.missing)))
        pytest.fail(f"{len(rec.missing)} acknowledged fixes lost; in Kafka: {where}; {s}")
    check(outcome, baseline, fs)
