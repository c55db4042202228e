"""A private stack for fault tests, a steady load on it, and the exact reconciliation.

Every run uses the same ~100 registered engineers (registered once) with its own msg_ids and
its own local date, so runs on one stack never mix: a run's fixes and alerts are found by
msg_id prefix and by time range.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from config import topics
from measure import loadgen, reconciliation
from measure.loadgen import Load, LoadConfig, Plan
from measure.reconciliation import Reconciliation
from stack.up import Stack

RATE = 1200.0  # fixes/s offered by the publishers together
PUBLISHERS = 3
ENGINEERS = 100
PREFIX = "FLT"
RESULTS = Path(__file__).resolve().parents[2] / "artifacts" / "fault-results.jsonl"


@dataclass
class Outcome:
    name: str
    plan: Plan
    totals: dict[str, Any]
    rec: Reconciliation
    persisted_after_s: float  # from the start of the load until every acked fix was persisted
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def alerts(self) -> set[str]:
        return loadgen.normalise(self.rec.alerts, self.plan)

    def summary(self) -> dict[str, Any]:
        return {
            "test": self.name,
            "published": self.totals["published"],
            "acked": self.rec.acked,
            "offered_rate_per_s": round(self.totals["rate_per_s"]),
            "persisted_rows": self.rec.persisted_rows,
            "missing": len(self.rec.missing),
            "unexpected": len(self.rec.unexpected),
            "alerts": len(self.rec.alerts),
            "persisted_after_s": round(self.persisted_after_s, 1),
            "publisher_connects": self.totals["connects"],
            **self.notes,
        }


@dataclass
class FaultStack:
    stack: Stack
    runs: int = 0

    @property
    def endpoints(self) -> dict[str, Any]:
        return self.stack.endpoints

    @property
    def database(self) -> str:
        return str(self.stack.endpoints["database"])

    def plan(self, per_engineer: int = 150) -> Plan:
        """A fresh run: own msg_ids, own local date (one day later than the previous run)."""
        self.runs += 1
        return Plan(
            prefix=PREFIX,
            run=f"R{self.runs}{uuid.uuid4().hex[:4]}",
            base_ts=loadgen.default_base_ts(days_ago=60 - self.runs),
            engineers=ENGINEERS,
            per_engineer=per_engineer,
        )

    def load(self, plan: Plan, rate: float = RATE) -> Load:
        ep = self.endpoints
        cfg = LoadConfig(
            plan=plan,
            mqtt_host=str(ep["mqtt_host"]),
            mqtt_port=int(ep["mqtt_port"]),
            username=str(ep["mqtt_username"]),
            password=str(ep["mqtt_password"]),
            out_dir=str(self.stack.options.data_dir / "load" / plan.run),
            rate=rate,
            processes=PUBLISHERS,
        )
        return Load(cfg)

    def persisted(self, plan: Plan) -> int:
        return reconciliation.persisted_count(self.database, plan)

    def wait_processing(self, plan: Plan, *, at_least: int = 1, timeout_s: float = 60) -> int:
        """Wait until the worker persisted `at_least` fixes of the run and is still going."""
        deadline = time.monotonic() + timeout_s
        while (n := self.persisted(plan)) < at_least:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {n} fixes persisted after {timeout_s} s")
            time.sleep(0.1)
        return n

    def run(
        self,
        name: str,
        plan: Plan,
        during: Callable[[Load], dict[str, Any] | None] | None = None,
        *,
        drain_timeout_s: float = 240.0,
    ) -> Outcome:
        """Publish the plan at RATE, call `during(load)` (the fault) meanwhile, wait until the
        publishers got every PUBACK and the pipeline persisted them, then reconcile."""
        load = self.load(plan).start()
        t0 = time.monotonic()
        try:
            notes = (during(load) if during else None) or {}
            totals = load.wait(timeout_s=drain_timeout_s)
        finally:
            load.stop()
        acked = load.acked()
        n = reconciliation.wait_persisted(
            self.database, plan, len(acked), timeout_s=drain_timeout_s
        )
        persisted_after = time.monotonic() - t0
        notes["persisted_when_checked"] = n
        notes["exited"] = sorted(
            name for name, c in self.stack.components.items() if c.popen.poll() is not None
        )
        outcome = Outcome(
            name,
            plan,
            totals,
            reconciliation.reconcile(self.database, plan, acked),
            persisted_after,
            notes,
        )
        RESULTS.parent.mkdir(exist_ok=True)
        with RESULTS.open("a") as f:
            f.write(json.dumps({"at": time.strftime("%F %T"), **outcome.summary()}) + "\n")
        return outcome


def check(outcome: Outcome, baseline: set[str], fs: FaultStack | None = None) -> None:
    """The exact reconciliation every fault test ends with."""
    rec = outcome.rec
    s = outcome.summary()
    assert outcome.totals["published"] == rec.acked, f"unacknowledged messages remain: {s}"
    if rec.missing and fs is not None:
        s["where_in_kafka"] = asyncio.run(_locate(str(fs.endpoints["kafka"]), set(rec.missing)))
        s["committed"] = asyncio.run(_committed(str(fs.endpoints["kafka"])))
        s["workers_said"] = _worker_log_lines(fs.stack.options.data_dir / "logs")
    assert not rec.missing, f"acknowledged fixes not persisted (first 20): {rec.missing}; {s}"
    assert not rec.unexpected, f"persisted fixes nobody published: {rec.unexpected}; {s}"
    assert rec.persisted_rows == rec.persisted_distinct == rec.acked, s
    assert rec.alert_history_dupes == 0, f"alerts opened twice: {s}"
    assert not outcome.notes["exited"], f"components exited (no supervisor restarts them): {s}"
    assert outcome.alerts == baseline, (
        f"alerts differ from the fault-free run: missing {sorted(baseline - outcome.alerts)}, "
        f"extra {sorted(outcome.alerts - baseline)}"
    )


# what a worker logs about its partitions and its troubles (the test's data goes with it)
_WORTH_SEEING = ("WARNING", "ERROR", "assigned partitions", "Revoking", "reading again")


def _worker_log_lines(logs: Path, keep: int = 60) -> list[str]:
    """Diagnostics for a failed reconciliation: the workers' rebalances, warnings and errors."""
    lines = []
    for path in sorted(logs.glob("worker*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if any(w in line for w in _WORTH_SEEING):
                lines.append(f"{path.name}: {line[:300]}")
    return lines[-keep:]


async def _locate(bootstrap: str, msg_ids: set[str]) -> dict[str, list[tuple[int, int]]]:
    """Diagnostics for a failed reconciliation: where the missing msg_ids are in fixes.v1."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, list[tuple[int, int]]] = {m: [] for m in msg_ids}
    try:
        tps = [TopicPartition(topics.FIXES, p) for p in range(8)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=500)
            idle = 0 if batch else idle + 1
            for tp, msgs in batch.items():
                for m in msgs:
                    value = json.loads(m.value)  # a record or an envelope of records
                    for d in value if isinstance(value, list) else [value]:
                        if d.get("msg_id") in found:
                            found[d["msg_id"]].append((tp.partition, m.offset))
    finally:
        await consumer.stop()
    return found


async def _committed(bootstrap: str) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id="sitewatch-streams", enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topics.FIXES, p)) for p in range(8)}
    finally:
        await consumer.stop()
