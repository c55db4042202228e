"""The worker's rules alone (rules.engineer_batch.process_engineer_batch: geofencing, tracks,
the registry's rules, stream time), pure, on one core: CPU microseconds per fix. No I/O, so
two versions of the code run alternately give a ratio that holds on a machine whose speed
moves by two to three times within minutes (docs/BENCHMARKS.md), where the end-to-end run
and the writer bench cannot show a change of a few per cent.

`python -m measure.rules_bench [--engineers N] [--batches N]`: each batch is one fix of
every engineer, 10 s after the last, all inside two overlapping projects (as in the
end-to-end bench), so each track's window grows to an hour of fixes (360) when
`--batches` is 360 or more. Prints one JSON object, with the garbage collector's time per fix
and its slowest collection per generation (the worker's thresholds, config.gc_tuning).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import time
from typing import Any
from zoneinfo import ZoneInfo

LON, LAT, HALF = 113.95, 22.54, 0.002  # the bench's hot site, two overlapping projects


def run(engineers: int, batches: int, warm: int = 3, tune_gc: bool = True) -> dict[str, Any]:
    """`tune_gc`: the worker's collector settings (config.gc_tuning), for the whole process."""
    import shapely

    from config.gc_tuning import tune
    from config.settings import Settings
    from geofence.fences import Fence, FenceIndex
    from geofence.regions import RegionIndex
    from rules.certificate import SINCE_REGISTRATION, Certificate, StatusEntry
    from rules.engineer_batch import EngineerFacts, process_engineer_batch
    from rules.fences import Fences
    from wire.records import Fix

    if tune_gc:
        tune()
    settings = Settings()
    index = FenceIndex.build(
        [
            Fence("P1", shapely.box(LON - HALF, LAT - HALF, LON + HALF, LAT + HALF), "440305"),
            Fence("P2", shapely.box(LON - 2 * HALF, LAT - HALF, LON, LAT + 2 * HALF), "440305"),
        ]
    )
    fences = Fences(1, index, RegionIndex.build([]), {f.id: f.region_code for f in index.fences})
    ids = [f"RB{i:05d}" for i in range(engineers)]
    certificate = Certificate.of(
        [StatusEntry(SINCE_REGISTRATION, "valid", 1), StatusEntry(dt.date(2026, 1, 5), "valid", 2)],
        valid_to=dt.date(2030, 1, 1),
        current_status="valid",
    )
    facts = {e: EngineerFacts("440300", (), certificate) for e in ids}
    start = dt.datetime(2026, 12, 7, 8, 0, tzinfo=ZoneInfo(settings.timezone)).timestamp()

    def batch(k: int) -> list[Any]:
        return [
            Fix(
                f"{e}-{k}",
                e,
                start + 10 * k + i * 0.01,
                LON - 1e-5 * (i % 7),  # inside both projects
                LAT,
                5.0,
                "position",
                "checkin",
            )
            for i, e in enumerate(ids)
        ]

    states: dict[str, Any] = {}
    cpu = 0.0
    pauses = _Pauses()
    for k in range(warm + batches):
        records = batch(k)  # made per batch, as the worker decodes them: young objects
        if k == warm:
            gc.callbacks.append(pauses.callback)
        started = time.process_time()
        out = process_engineer_batch(
            records, fences=fences, states=states, facts=facts, settings=settings
        )
        if k >= warm:
            cpu += time.process_time() - started
        states.update(out.states)
    if pauses.callback in gc.callbacks:
        gc.callbacks.remove(pauses.callback)
    fixes = batches * engineers
    return {
        "rules_engineers": engineers,
        "rules_batches": batches,
        "rules_cpu_us_per_fix": round(cpu / fixes * 1e6, 2),
        # the collector's wall time over the measured batches (making their records included)
        # and its longest stops, which would stop the worker's event loop
        "rules_gc_us_per_fix": round(sum(pauses.seconds.values()) / fixes * 1e6, 2),
        "rules_gc_slowest_ms": {f"gen{g}": round(s * 1000, 1) for g, s in pauses.slowest.items()},
    }


class _Pauses:
    """Every collection's wall time, per generation (a `gc.callbacks` entry)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.seconds: dict[int, float] = {}
        self.slowest: dict[int, float] = {}

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        took, gen = time.perf_counter() - self.started, int(info["generation"])
        self.seconds[gen] = self.seconds.get(gen, 0.0) + took
        self.slowest[gen] = max(self.slowest.get(gen, 0.0), took)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m measure.rules_bench", description=__doc__)
    parser.add_argument(
        "--engineers", type=int, default=250, help="engineers, a fix each per batch"
    )
    parser.add_argument("--batches", type=int, default=80, help="batches measured")
    args = parser.parse_args()
    figures = run(args.engineers, args.batches)
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), **figures}))


if __name__ == "__main__":
    main()
