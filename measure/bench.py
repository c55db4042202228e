"""`sitewatch bench [--json]`: the performance benchmark (CONTRACT section 1).

Every figure is measured in the same run as its ceiling, on the embedded stack:

- `geofence_fixes_per_s`: classify against 10k project fences (pure, one core);
- `raw_mqtt_msgs_per_s`: Mosquitto QoS 1 publish -> subscribe, no SiteWatch code (ceiling of
  the bridge);
- `raw_copy_rows_per_s`: PostgreSQL COPY of fix-shaped rows (ceiling of the sinks);
- `faust_ceiling_per_s`: a bare Faust agent consuming from the same broker (ceiling of the
  worker);
- `sink_rows_per_s`: the worker's fix sink (INSERT ... ON CONFLICT DO NOTHING);
- `e2e_fixes_per_s`: fixes published over MQTT by several processes that reach the WebSocket
  (persisted first), at a rising offered load; `e2e_p50_ms`/`e2e_p99_ms` at half that load;
  `e2e_acked_total`/`e2e_persisted_total`: the run's acknowledged fixes and how many of them
  PostgreSQL holds at the end (a loss check).

Seeding (10k projects on real districts, 20k engineers) is done with SQL, not the API: the
benchmark measures the fix path, not registration.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import pg_activity
from measure.bench_ceilings import (
    faust_ceiling_per_s,
    geofence_figures,
    raw_copy_rows_per_s,
    raw_mqtt_msgs_per_s,
    sink_rows_per_s,
)
from measure.bench_probes import (
    MachineCpu,
    Signing,
    WsCounter,
    calibration_ms,
    component_pids,
    offer_load,
    proc_stats,
)
from measure.bench_report import capacity_figures, slowest_seconds, write_markdown
from measure.bench_seed import ENGINEER_PREFIX, register_keys, seed
from measure.writer_bench import MSG_PREFIX as WRITER_MSG_PREFIX
from measure.writer_bench import writer_figures

log = logging.getLogger("sitewatch.bench")

BENCH = "bench"  # this process, among the components sampled: a load generator


def _cpu_s(name: str, pid: int) -> float:
    """CPU seconds of a component and its children; of this process alone for BENCH (its
    children are the publishers, which report their own CPU)."""
    return time.process_time() if name == BENCH else proc_stats(pid)["cpu_s"]


def _sample_cpu(pids: dict[str, int], into: dict[str, float]) -> None:
    into.update({name: _cpu_s(name, pid) for name, pid in pids.items()})


WARM_UP_PER_S = 1000.0


def _wait_delivered(counter: WsCounter, n: int, *, timeout_s: float) -> None:
    """Until the live feed delivered `n` positions, or deliveries stopped for 5 s, or
    `timeout_s` passed."""
    deadline = time.time() + timeout_s
    last, since = counter.count, time.time()
    while counter.count < n and time.time() < deadline and time.time() - since < 5:
        time.sleep(0.5)
        if counter.count != last:
            last, since = counter.count, time.time()


def e2e(
    stack: Any,
    engineers: list[str],
    lon: float,
    lat: float,
    *,
    step_s: float,
    rates: list[float],
    processes: int,
    signing: Signing | None = None,
    half_load: float | None = None,
) -> dict[str, Any]:
    pids = component_pids(stack)
    counter = WsCounter(
        stack.endpoints["http"].replace("http://", "ws://") + f"/ws/live?token={stack.admin_token}"
    )
    counter.start()
    # Warm up: a fix of every engineer first, as in a running deployment, where the worker
    # knows its engineers (their facts, states and evidence heads in memory or in place) and
    # the JVM has compiled Kafka's hot paths. Until 2026-12-07 it was 1,500 fixes, and the
    # first step of the rising load met two thirds of the 20,000 engineers for the first
    # time: on a slow machine that step alone stopped the run.
    acked_total = offer_load(
        stack.endpoints,
        engineers,
        WARM_UP_PER_S,
        len(engineers) / WARM_UP_PER_S,
        1,
        lon,
        lat,
        signing,
    )[1]
    _wait_delivered(counter, acked_total, timeout_s=120)
    time.sleep(3)
    steps = []
    best = 0.0
    machine = MachineCpu().start()
    database = stack.endpoints["database"]
    statements_before = pg_activity.statement_totals(database)
    for rate in rates:
        before = counter.count
        types_before = counter.by_type.copy()
        cpu_before: dict[str, float] = {}
        # sampled when the publishers start, after signing (the idle stack burns some CPU
        # meanwhile, which is not the fixes' cost); the bench's own process (the WebSocket
        # client) too: a load generator
        pids_and_bench = pids | {BENCH: os.getpid()}
        components_cpu_at_start = functools.partial(_sample_cpu, pids_and_bench, cpu_before)

        sent, acked, start_at, publishers_cpu_s = offer_load(
            stack.endpoints,
            engineers,
            rate,
            step_s,
            processes,
            lon,
            lat,
            signing,
            at_start=components_cpu_at_start,
        )
        acked_total += acked
        # drain: wait until deliveries stop growing
        last, stable_since = counter.count, time.time()
        while time.time() - stable_since < 3 and time.time() - start_at < step_s + 120:
            time.sleep(0.5)
            if counter.count != last:
                last, stable_since = counter.count, time.time()
        delivered = counter.count - before
        live_types = counter.by_type - types_before
        elapsed = stable_since - start_at  # the publishers start together (after signing)
        achieved = delivered / max(elapsed, 1e-9)
        # CPU per delivered fix of each component in this step, from the publishers' start
        # (publishers not included)
        cpu_ms = {
            name: round((_cpu_s(name, pid) - cpu_before[name]) * 1000 / max(delivered, 1), 3)
            for name, pid in pids_and_bench.items()
        }
        # The load generators' own CPU: the publishers (from their start) and this process
        # (the WebSocket client, the samplers); not SiteWatch's.
        loadgen_ms = cpu_ms.pop(BENCH) + publishers_cpu_s * 1000 / max(delivered, 1)
        # The rest of the machine over the same window (from the publishers' start to the last
        # delivery): the publishers, the bench's WebSocket client, anything else running.
        busy_s, _ = machine.busy(start_at, time.time())
        rest_ms = max(0.0, busy_s * 1000 / max(delivered, 1) - sum(cpu_ms.values()))
        _, busy_share = machine.busy(start_at, stable_since)  # until the last delivery
        steps.append(
            {
                "offered_per_s": rate,
                "sent": sent,
                "acked": acked,
                "delivered": delivered,
                "achieved_per_s": round(achieved, 1),
                "cpu_ms_per_fix": round(sum(cpu_ms.values()), 3),
                "cpu_ms_per_fix_by_component": cpu_ms,
                "loadgen_cpu_ms_per_fix": round(loadgen_ms, 3),
                # busy CPU of the machine beyond SiteWatch's (the load generators included)
                "rest_of_machine_cpu_ms_per_fix": round(rest_ms, 3),
                # how busy both cores were while the fixes were offered and delivered
                "machine_busy_pct": round(busy_share * 100, 1),
                # WebSocket messages per delivered fix, by type (positions are 1)
                "live_messages_per_fix": {
                    t: round(n / max(delivered, 1), 3) for t, n in sorted(live_types.items())
                },
            }
        )
        log.info(
            "offered %.0f/s: delivered %d of %d in %.1f s -> %.0f/s; CPU ms per fix %.3f (%s); "
            "load generators %.3f, rest of the machine %.3f; machine busy %.0f%%",
            rate,
            delivered,
            acked,
            elapsed,
            achieved,
            sum(cpu_ms.values()),
            ", ".join(f"{k} {v:.3f}" for k, v in cpu_ms.items()),
            loadgen_ms,
            rest_ms,
            busy_share * 100,
        )
        keeping_up = delivered >= 0.99 * acked and elapsed <= step_s * 1.25
        best = max(best, achieved if keeping_up else min(achieved, best or achieved))
        if not keeping_up:
            break
    machine.stop()
    # where PostgreSQL's time went during the rising load (not the half load after it):
    # [statement, calls, mean ms, total ms, buffers per call]
    busiest = pg_activity.busiest_statements(
        statements_before, pg_activity.statement_totals(database), top=12
    )
    half = half_load or max(best / 2, 100.0)
    counter.latencies_ms.clear()
    counter.arrivals.clear()
    counter.record = True
    maintenance = pg_activity.MaintenanceSampler(database).start()
    try:
        acked, half_start = offer_load(
            stack.endpoints, engineers, half, step_s, processes, lon, lat, signing
        )[1:3]
        acked_total += acked
        time.sleep(5)
    finally:
        counter.record = False
        maintenance.stop()
    lat_ms = sorted(counter.latencies_ms)
    slowest = slowest_seconds(counter.arrivals, counter.latencies_ms, half_start)
    log.info(
        "half load %.0f/s from %s UTC: the slowest seconds (from its start: p99 ms, "
        "PostgreSQL's maintenance then) %s",
        half,
        time.strftime("%H:%M:%S", time.gmtime(half_start)),
        "; ".join(
            f"{t:.0f} s: {p:.0f} ({_activity(maintenance, half_start, t)})" for t, p in slowest
        ),
    )
    persisted = persisted_fixes(stack.endpoints["database"], acked_total)
    if persisted < acked_total:
        log.error("%d fixes acknowledged, %d persisted", acked_total, persisted)

    def pct(q: float) -> float | None:
        return round(lat_ms[min(len(lat_ms) - 1, int(q * len(lat_ms)))], 1) if lat_ms else None

    return {
        "e2e_fixes_per_s": round(best, 1),
        # the most delivered per second at any step, kept up or not (the overloaded pipeline's
        # throughput; `e2e_fixes_per_s` counts only steps that kept up with the offer)
        "e2e_peak_per_s": round(max((s["achieved_per_s"] for s in steps), default=0.0), 1),
        "e2e_p50_ms": pct(0.50),
        "e2e_p99_ms": pct(0.99),
        "e2e_half_load_per_s": round(half, 1),
        # every fix the broker acknowledged in the run, and how many of them PostgreSQL holds
        # at the end (equal unless one was lost: a shortfall on the WebSocket alone is not)
        "e2e_acked_total": acked_total,
        "e2e_persisted_total": persisted,
        **capacity_figures(steps, best),
        "e2e_steps": steps,
        "pg_busiest_statements": busiest,
    }


def persisted_fixes(database_url: str, expected: int, wait_s: float = 60.0) -> int:
    """The bench's fixes in PostgreSQL (the writer bench's are not the end-to-end run's),
    once the count reaches `expected` or stops growing."""
    import psycopg

    last, since = -1, time.time()
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM fixes WHERE engineer_id LIKE %s AND msg_id NOT LIKE %s",
                (f"{ENGINEER_PREFIX}%", f"{WRITER_MSG_PREFIX}%"),
            ).fetchone()
            n = int(row[0]) if row else 0
            if n >= expected or time.time() - since > wait_s:
                return n
            if n != last:
                last, since = n, time.time()
            time.sleep(1.0)


def run_bench(
    *,
    quick: bool = False,
    workers: int = 1,
    signed_share: float = 1.0,
    only_e2e: bool = False,
    rates: list[float] | None = None,
    half_load: float | None = None,
) -> dict[str, Any]:
    from devices.broker import BrokerAdmin
    from stack.up import Stack, StackOptions

    started = time.time()
    figures: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
        "workers": workers,
        # other work on the machine skews every figure: say how busy it was
        "loadavg_1m_at_start": os.getloadavg()[0],
        "calibration_ms_at_start": calibration_ms(),
    }
    if not only_e2e:
        log.info("geofence engine (pure, one core)...")
        figures.update(geofence_figures())
    data_dir = Path(tempfile.mkdtemp(prefix="sitewatch-bench-"))
    stack = Stack(StackOptions(data_dir, workers=workers))
    try:
        log.info("starting the embedded stack in %s", data_dir)
        stack.start()
        ep = stack.endpoints
        admin = BrokerAdmin(
            ep["mqtt_host"],
            int(ep["mqtt_port"]),
            "sitewatch-admin",
            stack.env["SITEWATCH_MQTT_ADMIN_PASSWORD"],
        )
        if not only_e2e:
            log.info("raw Mosquitto QoS 1 pub/sub...")
            figures["raw_mqtt_msgs_per_s"] = round(raw_mqtt_msgs_per_s(ep, admin), 1)
            log.info("raw PostgreSQL COPY...")
            figures["raw_copy_rows_per_s"] = round(raw_copy_rows_per_s(ep["database"]), 1)
            log.info("fix sink...")
            figures["sink_rows_per_s"] = round(sink_rows_per_s(ep["database"]), 1)
            log.info("bare Faust agent on the same broker...")
            figures["faust_ceiling_per_s"] = round(faust_ceiling_per_s(ep["kafka"], data_dir), 1)
            try:
                from measure.ingest_bench import bridge_msgs_per_s  # type: ignore[import-not-found]

                log.info("bridge (QoS 1 to Kafka)...")
                bridge = bridge_msgs_per_s()
                figures["bridge_msgs_per_s"] = round(
                    float(bridge["bridge_msgs_per_s"] if isinstance(bridge, dict) else bridge), 1
                )
            except ImportError:
                figures["bridge_msgs_per_s"] = None
        log.info("seeding 10,000 projects and 20,000 engineers...")
        n_projects, n_engineers = (1000, 2000) if quick else (10_000, 20_000)
        lon, lat, engineers = seed(ep["database"], n_projects, n_engineers)
        if not only_e2e:
            log.info("the worker's engineer writer alone...")
            figures.update(
                writer_figures(stack, engineers, lon, lat, fixes=10_000 if quick else 40_000)
            )
        signing = Signing.for_share(engineers, signed_share)
        if signing is not None:
            register_keys(ep["database"], signing)
            figures["sm2_signs_per_s_one_core"] = round(signing.signs_per_s, 1)
            from gm.algorithms import SM2_BACKEND, verify_rate

            # what one verification costs the bridge (CPU, one key as here: its tables built)
            figures["sm2_backend"] = SM2_BACKEND
            figures["sm2_verify_ms"] = round(1000 / verify_rate(3000), 3)
        figures["signed_share"] = (
            round(len(signing.engineers) / len(engineers), 3) if signing else 0.0
        )
        rates = rates or (
            [1000, 2000] if quick else [1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000]
        )
        log.info("end to end at rising load %s ...", rates)
        figures.update(
            e2e(
                stack,
                engineers,
                lon,
                lat,
                step_s=6 if quick else 15,
                rates=rates,
                processes=2,
                signing=signing,
                half_load=half_load,
            )
        )
        for name, child in stack.components.items():
            if child.popen.poll() is not None:
                # a component that died during the run makes every figure after it suspect
                figures[f"{name}_exit_code"] = child.popen.returncode
                log.error("%s exited with %s during the benchmark", name, child.popen.returncode)
            figures[f"{name}_cpu_s"], figures[f"{name}_peak_rss_mib"] = proc_stats(
                child.pid
            ).values()
        for child in stack.supervisor.children:
            if child.name in ("postgres", "mosquitto", "kafka"):
                figures[f"{child.name}_cpu_s"], figures[f"{child.name}_peak_rss_mib"] = proc_stats(
                    child.pid
                ).values()
    finally:
        stack.stop()
        if os.environ.get("SITEWATCH_BENCH_KEEP"):
            log.info("kept the run's data and logs in %s", data_dir)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    ceiling = figures.get("faust_ceiling_per_s") or 0
    figures["calibration_ms_at_end"] = calibration_ms()
    if only_e2e:
        return figures | {"bench_seconds": round(time.time() - started, 1)}
    figures["e2e_over_faust_ceiling"] = (
        round(figures["e2e_fixes_per_s"] / ceiling, 3) if ceiling else None
    )
    figures["bench_seconds"] = round(time.time() - started, 1)
    figures["loadavg_1m_at_end"] = os.getloadavg()[0]
    return figures


def _activity(sampler: pg_activity.MaintenanceSampler, start: float, second: int) -> str:
    found = sampler.during(start, second)
    return "unknown: not sampled" if found is None else ", ".join(found) or "none"


def exit_once(*_: Any) -> None:
    """The first SIGTERM unwinds (the stack is stopped in `run_bench`'s finally clause); a
    second one (`timeout` and a process group both sending it) must not interrupt that."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(143)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    bench = argparse.ArgumentParser(
        prog="sitewatch bench", description="run the performance benchmark"
    )
    bench.add_argument("--json", action="store_true", help="one JSON object on the last line")
    bench.add_argument("--quick", action="store_true", help="smaller seed and load (a smoke run)")
    bench.add_argument("--workers", type=int, default=1, help="stream worker processes")
    bench.add_argument(
        "--only-e2e", action="store_true", help="skip the ceilings and component figures"
    )
    bench.add_argument("--rates", help="offered fixes/s of the rising load, comma-separated")
    bench.add_argument(
        "--signed-share",
        type=float,
        default=1.0,
        help="share of engineers whose fixes are SM2-signed (1 = every fix; the rest are sent "
        "unsigned by the service identity)",
    )
    bench.add_argument(
        "--half-load",
        type=float,
        default=None,
        help="offered fixes/s of the latency phase (default: half the rate kept up); a fixed "
        "rate compares two versions at the same load",
    )
    bench.add_argument(
        "--write", default=None, help="also write the results into this Markdown file"
    )
    return bench.parse_args(argv)


def main(args: Any) -> int:
    # SIGTERM unwinds like Ctrl-C, so the embedded stack is stopped by the finally clause
    signal.signal(signal.SIGTERM, exit_once)
    share = getattr(args, "signed_share", 1.0)
    rates = [float(r) for r in args.rates.split(",")] if getattr(args, "rates", None) else None
    figures = run_bench(
        quick=args.quick,
        workers=args.workers,
        signed_share=share,
        only_e2e=getattr(args, "only_e2e", False),
        rates=rates,
        half_load=getattr(args, "half_load", None),
    )
    if args.write:
        write_markdown(
            figures,
            Path(args.write),
            "sitewatch bench"
            + (" --quick" if args.quick else "")
            + (f" --workers {args.workers}" if args.workers > 1 else "")
            + (f" --signed-share {share:g}" if share != 1.0 else "")
            + (" --only-e2e" if getattr(args, "only_e2e", False) else "")
            + (f" --rates {shlex.quote(args.rates)}" if getattr(args, "rates", None) else "")
            + (f" --half-load {args.half_load:g}" if getattr(args, "half_load", None) else ""),
        )
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    else:
        for k, v in figures.items():
            if k != "e2e_steps":
                print(f"{k:32} {v}")
    _ = statistics
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(main(parse_args()))
