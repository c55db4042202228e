"""Faults under a steady load of 1,200 fixes/s from three publisher processes (paho, QoS 1,
persistent sessions): each test ends with the exact reconciliation of `harness.check` - every
msg_id the broker acknowledged is persisted exactly once, nothing else is, and the alerts are
those of the fault-free baseline run of the same input."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest

from measure import faults as restart
from measure import loadgen
from measure.loadgen import Load
from tests.fault.harness import PREFIX, FaultStack, check
from tests.fault.wsclient import ResyncingClient

pytestmark = pytest.mark.stack


def _growing(fs: FaultStack, plan: loadgen.Plan) -> int:
    """Return once the worker is writing this run's fixes right now (mid-batch)."""
    fs.wait_processing(plan, at_least=300)
    before = fs.persisted(plan)
    deadline = time.monotonic() + 30
    while (now := fs.persisted(plan)) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    return now


def test_worker_kill9_mid_batch(fault_stack: FaultStack, baseline: set[str]) -> None:
    fs = fault_stack
    plan = fs.plan()

    def fault(load: Load) -> dict[str, Any]:
        load.wait_published(3000)
        at = _growing(fs, plan)
        restart.kill9(fs.stack, "worker")
        time.sleep(1.0)
        restart.start_component(fs.stack, "worker")
        return {"killed_at_persisted": at}

    outcome = fs.run("worker kill -9 mid-batch", plan, fault)
    check(outcome, baseline, fs)


def test_bridge_kill9(fault_stack: FaultStack, baseline: set[str]) -> None:
    fs = fault_stack
    plan = fs.plan()

    def fault(load: Load) -> dict[str, Any]:
        load.wait_published(4000)
        published = load.progress()["published"]
        restart.kill9(fs.stack, "bridge")
        time.sleep(2.0)  # the broker queues for the bridge's persistent session meanwhile
        restart.start_component(fs.stack, "bridge")
        return {"killed_at_published": published}

    outcome = fs.run("bridge kill -9", plan, fault)
    check(outcome, baseline, fs)
    log = fs.stack.components["bridge"].log_path.read_text()
    assert "session present: True" in log, "the restarted bridge did not resume its session"


def test_postgres_restart_while_sinks_write(fault_stack: FaultStack, baseline: set[str]) -> None:
    fs = fault_stack
    plan = fs.plan()
    pids = {name: c.pid for name, c in fs.stack.components.items()}

    def fault(load: Load) -> dict[str, Any]:
        load.wait_published(3000)
        at = _growing(fs, plan)
        t = time.monotonic()
        restart.restart_postgres(fs.stack, down_s=3.0)
        return {"restarted_at_persisted": at, "postgres_down_s": round(time.monotonic() - t, 1)}

    outcome = fs.run("PostgreSQL restart", plan, fault)
    check(outcome, baseline, fs)
    # retried with backoff inside the processes: nothing crashed or was restarted
    for name, pid in pids.items():
        child = fs.stack.components[name]
        assert child.pid == pid and child.popen.poll() is None, f"{name} died: {child.log_path}"


def test_second_worker_joins_and_leaves(fault_stack: FaultStack, baseline: set[str]) -> None:
    fs = fault_stack
    plan = fs.plan(per_engineer=300)
    run_dir = fs.stack.options.data_dir / "run"

    def fault(load: Load) -> dict[str, Any]:
        load.wait_published(2000)
        fs.wait_processing(plan, at_least=300)
        t = time.monotonic()
        second = restart.start_component(fs.stack, "worker2")
        restart.wait_until(
            lambda: (run_dir / f"worker-{second.pid}.ready").exists(),
            timeout_s=90,
            what="the second worker to get partitions",
        )
        joined_s = time.monotonic() - t
        # both workers now share the partitions: let the second one do some of the work
        at = fs.persisted(plan)
        restart.wait_until(
            lambda: fs.persisted(plan) > at + 2000, timeout_s=90, what="progress with 2 workers"
        )
        restart.stop_component(fs.stack, "worker2")
        return {"join_s": round(joined_s, 1), "two_workers_s": round(time.monotonic() - t, 1)}

    outcome = fs.run("second worker joins and leaves", plan, fault)
    check(outcome, baseline, fs)
    log = (fs.stack.options.data_dir / "logs" / "worker2.log").read_text()
    assigned = re.findall(r"\| fixes\.v1 +\| \{([^}]*)\}", log)
    assert any(a.strip() for a in assigned), "the second worker never owned a fixes.v1 partition"


def _wants(plan: loadgen.Plan) -> Any:
    def wants(alert: dict[str, Any]) -> bool:
        ts = dt.datetime.fromisoformat(str(alert["ts"])).timestamp()
        return (
            str(alert.get("engineer_id") or "").startswith(PREFIX + "-E")
            and alert.get("type") in loadgen.RULE_TYPES
            and plan.base_ts <= ts <= plan.end_ts
        )

    return wants


def test_api_restart_with_websocket_clients(fault_stack: FaultStack, baseline: set[str]) -> None:
    fs = fault_stack
    # twice the usual run (25 s of publishing): the clients must be back while fixes still
    # flow, even when a busy machine takes its time restarting the API
    plan = fs.plan(per_engineer=300)
    http, token = str(fs.endpoints["http"]), fs.stack.admin_token
    clients = [ResyncingClient(http, token, plan.base_ts, _wants(plan)).start() for _ in range(3)]
    try:
        for c in clients:
            c.wait_connected(1)

        def fault(load: Load) -> dict[str, Any]:
            load.wait_published(3000)
            fs.wait_processing(plan, at_least=300)
            restart.stop_component(fs.stack, "api")  # SIGTERM: the clients see the socket close
            time.sleep(1.0)
            restart.start_component(fs.stack, "api")
            for c in clients:
                c.wait_connected(2, timeout_s=90)
            return {}

        outcome = fs.run("API restart with 3 WebSocket clients", plan, fault)
        check(outcome, loadgen.normalise(loadgen.expected_alerts(plan), plan), fs)
        restart.wait_until(
            lambda: all(c.alerts == outcome.rec.alerts for c in clients),
            timeout_s=30,
            what="every client to know every alert of the run",
        )
    finally:
        for c in clients:
            c.stop()
    for c in clients:
        assert c.connects >= 2 and c.drops >= 1, (c.connects, c.drops, c.errors)
        # live again after the restart: positions arrived on the new connection
        assert c.positions_per_connection[-1] > 0, c.positions_per_connection


def test_mosquitto_restart(fault_stack: FaultStack, baseline: set[str]) -> None:
    fs = fault_stack
    plan = fs.plan()

    def fault(load: Load) -> dict[str, Any]:
        load.wait_published(4000)
        published = load.progress()["published"]
        restart.restart_mosquitto(fs.stack, down_s=1.0)
        return {"restarted_at_published": published}

    outcome = fs.run("Mosquitto restart", plan, fault)
    check(outcome, baseline, fs)
    # the publishers reconnected (3 first connections + at least 3 more)
    assert outcome.totals["connects"] >= 6, outcome.totals
    log = fs.stack.components["bridge"].log_path.read_text()
    assert "session present: True" in log
