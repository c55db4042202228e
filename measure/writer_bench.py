"""The stream worker's engineer writer alone (streams.engineer_writer: rules, sinks, evidence,
states) on the stack's PostgreSQL, without MQTT, Kafka or the API: its CPU and PostgreSQL's
per fix, and the time per batch. Fewer moving parts than the end-to-end run, so a change to
the worker or its SQL shows above the noise of a shared machine.

`python -m measure.writer_bench [--fixes N] [--batch N]` starts a private stack, seeds the
bench's registry (measure.bench_seed), writes batches of fixes (phones every 10 s, a share
of them on a site) and prints one JSON object. `sitewatch bench` runs it among its ceilings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from measure.bench_probes import proc_stats

log = logging.getLogger("sitewatch.bench")

ENGINEERS = 5000  # each gets a fix every ENGINEERS / batch batches
MSG_PREFIX = "WB"  # its fixes' msg_ids: the end-to-end run does not count them


def batches(
    engineers: list[str], lon: float, lat: float, *, fixes: int, batch: int, start_ts: float
) -> list[list[Any]]:
    """Fixes of `engineers` in turn, 10 s apart per engineer, each near a place of its own (a
    third of them on the bench's hot site, the others spread over 10 km, where the seeded
    sites are), in batches of `batch` (as the worker's agent takes them from Kafka)."""
    from wire.records import Fix

    rng = random.Random(7)
    spread = [0.004 if i % 3 == 0 else 0.05 for i in range(len(engineers))]
    home = [(lon + rng.uniform(-d, d), lat + rng.uniform(-d, d)) for d in spread]
    out: list[Any] = []
    for k in range(fixes):
        i = k % len(engineers)
        ts = round(start_ts + (k // len(engineers)) * 10.0 + i * 1e-3, 6)
        x, y = home[i][0] + rng.uniform(-3e-4, 3e-4), home[i][1] + rng.uniform(-3e-4, 3e-4)
        body = {"ts": ts, "lon": x, "lat": y, "acc_m": 8.0}
        out.append(
            Fix(
                f"{MSG_PREFIX}{k:07d}",
                engineers[i],
                ts,
                x,
                y,
                8.0,
                "checkin",
                "app",
                canonical=orjson.dumps(body),
            )
        )
    return [out[i : i + batch] for i in range(0, len(out), batch)]


async def _run(database_url: str, work: list[list[Any]], warm: int, postgres_pid: int) -> dict:
    from config.settings import Settings
    from store.db import async_engine
    from streams.engineer_writer import EngineerWriter

    async def no_live(_: list[dict[str, Any]]) -> None:
        return None

    settings = Settings(database_url=database_url)
    engine = async_engine(settings, pre_ping=False, plans="generic")  # as the worker's
    writer = EngineerWriter(settings, engine, no_live)
    try:
        for b in work[:warm]:  # every engineer once: facts, states and heads in place
            await writer.write(b)
        pg0, cpu0, t0 = proc_stats(postgres_pid)["cpu_s"], time.process_time(), time.perf_counter()
        for b in work[warm:]:
            await writer.write(b)
        wall = time.perf_counter() - t0
        cpu, pg = time.process_time() - cpu0, proc_stats(postgres_pid)["cpu_s"] - pg0
    finally:
        await engine.dispose()
    n = sum(len(b) for b in work[warm:])
    return {
        "writer_fixes": n,
        "writer_batch": len(work[0]),
        "writer_cpu_ms_per_fix": round(cpu * 1000 / n, 4),
        "writer_postgres_cpu_ms_per_fix": round(pg * 1000 / n, 4),
        "writer_ms_per_batch": round(wall * 1000 / (len(work) - warm), 2),
        "writer_fixes_per_s": round(n / wall, 1),
    }


def writer_figures(
    stack: Any, engineers: list[str], lon: float, lat: float, *, fixes: int, batch: int = 250
) -> dict[str, Any]:
    """Run on a started, seeded stack (its postgres is measured with its backends)."""
    pg = next(c.pid for c in stack.supervisor.children if c.name == "postgres")
    who = engineers[:ENGINEERS]
    warm = -(-len(who) // batch)
    work = batches(
        who, lon, lat, fixes=fixes + warm * batch, batch=batch, start_ts=time.time() - 3000
    )
    return asyncio.run(_run(stack.endpoints["database"], work, warm, pg))


def main() -> None:
    from measure.bench_seed import seed
    from stack.up import Stack, StackOptions

    parser = argparse.ArgumentParser(prog="python -m measure.writer_bench", description=__doc__)
    parser.add_argument("--fixes", type=int, default=40_000, help="fixes measured")
    parser.add_argument("--batch", type=int, default=250, help="fixes per batch")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    data_dir = Path(tempfile.mkdtemp(prefix="sitewatch-writer-bench-"))
    stack = Stack(StackOptions(data_dir))
    try:
        stack.start()
        lon, lat, engineers = seed(stack.endpoints["database"], 10_000, 20_000)
        figures = writer_figures(stack, engineers, lon, lat, fixes=args.fixes, batch=args.batch)
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), **figures}))


if __name__ == "__main__":
    main()
