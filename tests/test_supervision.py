"""`Stack.watch`'s supervision of services and components, on `sleep` processes: a child that
dies is started again after a pause that doubles while it keeps dying, and keeps its place
in the stop order."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from stack.processes import Backoff, Child
from stack.up import Stack, StackOptions


def test_backoff_doubles_then_resets_after_a_healthy_run() -> None:
    b = Backoff(first_s=1.0, max_s=4.0, healthy_s=0.05)
    assert b.due("x") is None
    assert [b.failed("x") for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    assert b.due("x") is False
    b.started("x")
    assert b.due("x") is None
    time.sleep(0.1)
    b.running("x")
    assert b.failed("x") == 1.0


def test_a_dead_service_is_started_again_in_its_place(tmp_path: Path) -> None:
    stack = Stack(StackOptions(tmp_path))
    stack.backoff = Backoff(first_s=0.2, max_s=1.0)
    sup = stack.supervisor
    starts: list[Child] = []

    def start_svc() -> Child:
        starts.append(sup.start("svc", ["sleep", "60"]))
        return starts[-1]

    try:
        stack.add_service("svc", start_svc(), start_svc)
        sup.start("other", ["sleep", "60"])
        os.kill(starts[0].pid, signal.SIGKILL)
        starts[0].popen.wait(5)
        deadline = time.monotonic() + 10
        while len(starts) < 2 and time.monotonic() < deadline:
            stack.supervise_once()
            time.sleep(0.05)
        assert len(starts) == 2 and stack.services["svc"] is starts[1]
        assert starts[1].popen.poll() is None
        assert [c.name for c in sup.children] == ["svc", "other"]  # stop order kept

        # a start that fails is tried again later, with a longer pause
        def broken() -> Child:
            raise RuntimeError("port taken")

        stack.service_starters["svc"] = broken
        os.kill(starts[1].pid, signal.SIGKILL)
        starts[1].popen.wait(5)
        for _ in range(20):
            stack.supervise_once()
            time.sleep(0.05)
        assert stack.backoff.failures["svc"] >= 2
        assert [c.name for c in sup.children] == ["other"]
    finally:
        sup.stop_all()
