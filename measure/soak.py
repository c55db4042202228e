"""`make soak`: the whole stack under a steady load for ten minutes, proving memory and lag stay
bounded, then the same exact reconciliation as the fault tests.

    python -m measure.soak [--minutes 10] [--rate 1000] [--interval 5] [--write-docs]

Starts a private stack (like the fault tests), registers two sites and the engineers of a
`measure.loadgen.Plan`, and runs several publisher processes (paho, QoS 1, the service identity)
at `--rate` fixes/s. Every `--interval` seconds it samples, per component, the resident set
size (VmRSS from /proc/PID/status; for PostgreSQL the private memory, RssAnon, of the
postmaster and every backend) and CPU, and the lag: fixes the broker acknowledged minus fixes
inserted in PostGIS (PostgreSQL's statistics: an exact count every 5 s would scan millions of
rows and itself slow the pipeline). After the publishers stop it waits for the pipeline to drain and
reconciles exactly (every acknowledged msg_id persisted once, the alerts the plan triggers).

Verdict (exit status 1 if any fails):
- lag is bounded: the lag of the last third of the run is not above the first third's
  maximum plus one interval of load, and everything is persisted within `--drain-s`;
- memory is bounded: per component, the RSS growth over the last third of the run is under
  `--max-growth-mib` (default 64 MiB) - a leak proportional to traffic would show there
  (the Kafka broker included: its log is on disk, its heap fixed);
- the reconciliation is exact.

Writes `artifacts/soak/soak.json` (every sample), `docs/soak.svg` (the curves) and, with
`--write-docs`, the section between the soak markers of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from measure import faults as restart
from measure import loadgen, pg_activity, reconciliation
from stack.up import Stack, StackOptions

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
COMPONENTS = ("postgres", "mosquitto", "kafka", "bridge", "worker", "api")

log = logging.getLogger("sitewatch.soak")


@dataclass
class Sample:
    t: float  # seconds since the load started
    acked: int
    published: int
    persisted: int
    rss_mib: dict[str, float]
    cpu: dict[str, float]  # cores used over the last interval
    load1: float = 0.0  # the machine's 1-minute load average (other test stacks share it)
    # PostgreSQL's maintenance running at the sample ("autovacuum: VACUUM public.fixes", ...):
    # what a rise of the lag coincides with
    maintenance: list[str] = field(default_factory=list)
    # every minute, the statements that took PostgreSQL the most time since the last minute:
    # [statement, calls, mean ms, total ms, buffers per call]
    statements: list[list[object]] = field(default_factory=list)

    @property
    def lag(self) -> int:
        return self.acked - self.persisted


@dataclass
class SoakResult:
    minutes: float
    rate: float
    engineers: int
    samples: list[Sample] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    drained_after_s: float = 0.0
    drain_s: float = 300.0
    verdicts: dict[str, tuple[bool, str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    measured_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M"))

    @property
    def ok(self) -> bool:
        return all(ok for ok, _ in self.verdicts.values())


def memory_mib(name: str, pid: int) -> float:
    if name == "postgres":  # shared buffers are in every backend's RSS: count private memory
        kib = sum(restart.rss_kib(p, "RssAnon") for p in restart.tree_pids(pid))
        return kib / 1024
    return restart.rss_kib(pid) / 1024


def cpu_seconds(name: str, pid: int) -> float:
    pids = restart.tree_pids(pid) if name == "postgres" else [pid]
    return sum(restart.cpu_seconds(p) for p in pids)


def run_soak(
    *,
    minutes: float,
    rate: float,
    interval_s: float,
    engineers: int,
    step_s: float,
    processes: int,
    drain_s: float,
    max_growth_mib: float,
    data_dir: Path,
) -> SoakResult:
    stack = Stack(StackOptions(data_dir))
    stack.start()
    try:
        ep = stack.endpoints
        db = str(ep["database"])
        duration = minutes * 60
        per_engineer = int(rate * duration / engineers * 1.2) + 10
        plan = loadgen.Plan(
            prefix="SOAK",
            run=f"S{uuid.uuid4().hex[:6]}",
            # in the past, far enough for the whole plan (the gate rejects future fixes)
            base_ts=loadgen.default_base_ts(
                days_ago=int(per_engineer * step_s // 86400) + 2, hour=0
            ),
            engineers=engineers,
            per_engineer=per_engineer,
            step_s=step_s,
            jump_seq=100,
        )
        loadgen.register_projects(str(ep["http"]), stack.admin_token)
        loadgen.register_engineers(str(ep["http"]), stack.admin_token, plan)
        cfg = loadgen.LoadConfig(
            plan=plan,
            mqtt_host=str(ep["mqtt_host"]),
            mqtt_port=int(ep["mqtt_port"]),
            username=str(ep["mqtt_username"]),
            password=str(ep["mqtt_password"]),
            out_dir=str(data_dir / "load"),
            rate=rate,
            processes=processes,
            duration_s=duration,
            drain_timeout_s=drain_s,
        )
        result = SoakResult(minutes, rate, engineers, drain_s=drain_s)
        pids = {c.name: c.pid for c in stack.supervisor.children if c.name in COMPONENTS}
        load = loadgen.Load(cfg).start()
        t0 = time.monotonic()
        stop = threading.Event()
        died: list[str] = []

        def sample_every_interval() -> None:
            last_cpu = {n: cpu_seconds(n, p) for n, p in pids.items()}
            last_t = t0
            last_statements = pg_activity.statement_totals(db)
            statements_every = max(1, round(60 / interval_s))
            next_at = t0 + interval_s
            while not stop.wait(max(0.0, next_at - time.monotonic())):
                next_at += interval_s
                now = time.monotonic()
                cpu_now = {n: cpu_seconds(n, p) for n, p in pids.items()}
                progress = load.progress()
                sample = Sample(
                    t=round(now - t0, 1),
                    acked=int(progress["acked"]),
                    published=int(progress["published"]),
                    persisted=reconciliation.inserted_fixes(db),
                    rss_mib={n: round(memory_mib(n, p), 1) for n, p in pids.items()},
                    cpu={n: round((cpu_now[n] - last_cpu[n]) / (now - last_t), 2) for n in pids},
                    load1=round(os.getloadavg()[0], 2),
                    maintenance=pg_activity.maintenance(db),
                )
                last_cpu, last_t = cpu_now, now
                if len(result.samples) % statements_every == statements_every - 1:
                    totals = pg_activity.statement_totals(db)
                    sample.statements = pg_activity.busiest_statements(last_statements, totals)
                    last_statements = totals
                result.samples.append(sample)
                log.info(
                    "t=%5.0fs acked %7d persisted %7d lag %6d  rss %s",
                    sample.t,
                    sample.acked,
                    sample.persisted,
                    sample.lag,
                    " ".join(f"{n}={v:.0f}" for n, v in sample.rss_mib.items()),
                )
                died.extend(n for n, c in stack.components.items() if c.popen.poll() is not None)

        sampler = threading.Thread(target=sample_every_interval, daemon=True)
        sampler.start()
        try:
            result.totals = load.wait(timeout_s=duration + drain_s + 60)
            acked = load.acked()
            # the backlog is drained before reconciling (sampling goes on meanwhile): the lag
            # verdict judges the backlog, the reconciliation what finally arrived
            persisted = reconciliation.wait_persisted(
                db, plan, len(acked), timeout_s=drain_s, stall_s=120.0
            )
        finally:
            stop.set()
            sampler.join(30)
            load.stop()
        if died:
            raise RuntimeError(f"components died during the soak: {sorted(set(died))}")
        result.drained_after_s = round(time.monotonic() - t0 - duration, 1)
        rec = reconciliation.reconcile(db, plan, acked)
        # what each engineer sent: the publishers stop at the deadline, not at a day boundary
        expected = loadgen.expected_alerts(plan, loadgen.sent_per_engineer(plan, acked))
        result.totals.update(
            persisted=persisted,
            persisted_distinct=rec.persisted_distinct,
            missing=len(rec.missing),
            unexpected=len(rec.unexpected),
            alerts=len(rec.alerts),
            alerts_expected=len(expected),
        )
        judge(result, rec, expected, interval_s=interval_s, max_growth_mib=max_growth_mib)
        return result
    finally:
        stack.stop()


def judge(
    result: SoakResult,
    rec: reconciliation.Reconciliation,
    expected: set[str],
    *,
    interval_s: float,
    max_growth_mib: float,
) -> None:
    samples = [s for s in result.samples if s.t <= result.minutes * 60]
    n = len(samples)
    first, last = samples[: max(1, n // 3)], samples[-max(1, n // 3) :]
    bound = max(s.lag for s in first) + result.rate * interval_s
    worst = max(s.lag for s in last)
    result.verdicts["lag bounded"] = (
        worst <= bound,
        f"max lag {worst} in the last third vs {max(s.lag for s in first)} in the first "
        f"(allowed {bound:.0f})",
    )
    result.verdicts["drained"] = (
        rec.persisted_distinct == rec.acked and result.drained_after_s <= result.drain_s,
        f"{rec.persisted_distinct}/{rec.acked} persisted {result.drained_after_s} s after "
        f"publishing stopped (allowed {result.drain_s:.0f} s)",
    )
    busiest = sorted(samples, key=lambda s: s.lag)[-5:]
    result.notes["maintenance at the five largest lags"] = "; ".join(
        f"t={s.t:.0f} s lag {s.lag}: {', '.join(s.maintenance) or 'none'}" for s in busiest
    )
    half = samples[-max(3, n // 3) :]  # the last third: warm-up growth is over by then
    for name in COMPONENTS:
        values = [s.rss_mib.get(name, 0.0) for s in half]
        if not values:
            continue
        growth = max(values[-3:]) - min(values[:3])
        figures = f"{min(values[:3]):.0f} -> {max(values[-3:]):.0f} MiB over the last third"
        result.verdicts[f"{name} memory bounded"] = (growth < max_growth_mib, figures)
    alerts_ok = rec.alerts == expected and rec.alert_history_dupes == 0
    if rec.alerts != expected:  # name them: the next run's reader needs the ids, not counts
        result.notes["alerts not expected"] = ", ".join(sorted(rec.alerts - expected)[:20])
        result.notes["alerts missing"] = ", ".join(sorted(expected - rec.alerts)[:20])
    if rec.persisted_distinct < rec.acked and not rec.unexpected and rec.alert_history_dupes == 0:
        result.notes["exact reconciliation"] = (
            f"not judged: {rec.acked - rec.persisted_distinct} acknowledged fixes still queued "
            f"in Kafka when the drain ended ({rec.persisted_rows} rows, "
            f"{rec.persisted_distinct} distinct, none unexpected, no alert opened twice)"
        )
        return
    result.verdicts["exact reconciliation"] = (
        rec.exact and alerts_ok,
        f"{rec.acked} acknowledged, {rec.persisted_rows} rows ({rec.persisted_distinct} distinct),"
        f" {len(rec.missing)} missing, {len(rec.unexpected)} unexpected; alerts {len(rec.alerts)}"
        f" vs {len(expected)} expected",
    )


# --- output ---------------------------------------------------------------------------------

COLOURS = {
    "postgres": "#1f77b4",
    "mosquitto": "#ff7f0e",
    "kafka": "#2ca02c",
    "bridge": "#d62728",
    "worker": "#9467bd",
    "api": "#8c564b",
    "lag": "#333333",
}


def svg(result: SoakResult) -> str:
    """Small panels against time: RSS of the Python components and PostgreSQL, the Kafka
    broker's RSS (a JVM: on another scale), lag;
    a dashed line where the publishers stop."""
    width, height, pad = 720, 200, 44
    samples = result.samples
    t_max = max((s.t for s in samples), default=1.0) or 1.0
    x_stop = pad + (min(result.minutes * 60, t_max) / t_max) * (width - pad - 10)

    def panel(y0: int, title: str, series: dict[str, list[float]], unit: str) -> list[str]:
        top = max((max(v) for v in series.values() if v), default=1.0) or 1.0
        top *= 1.1
        out = [
            f'<text x="{pad}" y="{y0 + 14}" font-size="13">{title}</text>',
            f'<line x1="{pad}" y1="{y0 + height - pad}" x2="{width - 10}" '
            f'y2="{y0 + height - pad}" stroke="#999"/>',
            f'<line x1="{pad}" y1="{y0 + 20}" x2="{pad}" y2="{y0 + height - pad}" stroke="#999"/>',
            f'<text x="4" y="{y0 + 28}" font-size="10">{top:.0f} {unit}</text>',
            f'<text x="4" y="{y0 + height - pad}" font-size="10">0</text>',
            f'<text x="{width - 60}" y="{y0 + height - pad + 14}" font-size="10">'
            f"{t_max:.0f} s</text>",
            f'<line x1="{x_stop:.1f}" y1="{y0 + 20}" x2="{x_stop:.1f}" y2="{y0 + height - pad}" '
            'stroke="#999" stroke-dasharray="4 3"/>',
            f'<text x="{x_stop + 4:.1f}" y="{y0 + 30}" font-size="10" fill="#666">'
            "publishers stop</text>",
        ]
        legend_x = pad + 10
        for name, values in series.items():
            pts = " ".join(
                f"{pad + (s.t / t_max) * (width - pad - 10):.1f},"
                f"{y0 + height - pad - (v / top) * (height - pad - 20):.1f}"
                for s, v in zip(samples, values, strict=True)
            )
            colour = COLOURS.get(name, "#000")
            out.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>'
            )
            out.append(
                f'<text x="{legend_x}" y="{y0 + height - 8}" font-size="11" fill="{colour}">'
                f"{name}</text>"
            )
            legend_x += 80
        return out

    mem = {n: [s.rss_mib.get(n, 0.0) for s in samples] for n in COMPONENTS if n != "kafka"}
    kafka = {"kafka": [s.rss_mib.get("kafka", 0.0) for s in samples]}
    lag = {"lag": [float(s.lag) for s in samples]}
    body = panel(0, "resident memory per component (MiB)", mem, "MiB")
    body += panel(height, "Kafka broker (JVM, heap 256 MiB) resident memory", kafka, "MiB")
    body += panel(2 * height, "lag: fixes acknowledged by the broker, not yet in PostGIS", lag, "")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{3 * height}" '
        f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n'
        + "\n".join(body)
        + "\n</svg>\n"
    )


def markdown(result: SoakResult) -> str:
    s = result.samples
    totals = result.totals
    lines = [
        BEGIN,
        "## Soak (`make soak`)",
        "",
        f"Measured {result.measured_at} on this 2-core machine (1-minute load "
        f"average {min((x.load1 for x in s), default=0):.1f}-{max((x.load1 for x in s), default=0):.1f}"
        f" while it ran): {result.minutes:g} minutes, {result.engineers} engineers, "
        f"offered {result.rate:g} fixes/s from several paho publisher processes (QoS 1); "
        f"sampled every {s[1].t - s[0].t if len(s) > 1 else 0:.0f} s. Curves: "
        "[soak.svg](soak.svg).",
        "",
        f"- published {totals.get('published')} fixes "
        f"({totals.get('rate_per_s', 0):.0f}/s achieved), all acknowledged: "
        f"{totals.get('acked')}; persisted exactly once: {totals.get('persisted_distinct')} "
        f"({totals.get('missing')} missing, {totals.get('unexpected')} unexpected); alerts "
        f"{totals.get('alerts')} = {totals.get('alerts_expected')} expected",
        f"- everything persisted {result.drained_after_s} s after the publishers stopped",
        "- what limits the lag and what the memory figures mean: "
        "[reliability.md](reliability.md#soak-findings)",
        "",
        "| verdict | ok | figures |",
        "|---|---|---|",
    ]
    lines += [
        f"| {k} | {'yes' if ok else '**no**'} | {why} |" for k, (ok, why) in result.verdicts.items()
    ]
    lines += [f"| {k} | not judged | {why} |" for k, why in result.notes.items()]
    lines += pg_activity.statements_table([x.statements for x in s], [x.t for x in s])
    lines += [
        "",
        "| t (s) | acked | persisted | lag | "
        + " | ".join(f"{n} MiB" for n in COMPONENTS)
        + " | worker CPU | bridge CPU | load avg |",
        "|" + "---|" * (4 + len(COMPONENTS) + 3),
    ]
    step = max(1, len(s) // 20)
    for x in s[::step] + ([s[-1]] if s and (len(s) - 1) % step else []):
        lines.append(
            f"| {x.t:.0f} | {x.acked} | {x.persisted} | {x.lag} | "
            + " | ".join(f"{x.rss_mib.get(n, 0):.0f}" for n in COMPONENTS)
            + f" | {x.cpu.get('worker', 0):.2f} | {x.cpu.get('bridge', 0):.2f} | {x.load1:.1f} |"
        )
    lines.append(END)
    return "\n".join(lines) + "\n"


def load_result(path: Path) -> SoakResult:
    """A SoakResult back from the soak.json `main` wrote."""
    d = json.loads(path.read_text())
    samples = [Sample(**{k: v for k, v in x.items() if k != "lag"}) for x in d["samples"]]
    result = SoakResult(d["minutes"], d["rate"], d["engineers"], samples=samples)
    result.totals = d["totals"]
    result.drained_after_s = d["drained_after_s"]
    result.drain_s = d.get("drain_s", result.drain_s)
    result.verdicts = {k: (bool(v[0]), str(v[1])) for k, v in d["verdicts"].items()}
    result.notes = d.get("notes", {})
    result.measured_at = d.get("measured_at", "")
    return result


def write_docs(result: SoakResult, docs: Path) -> None:
    """Replace (or append) the soak section of BENCHMARKS.md; other sections stay as they are."""
    (docs / "soak.svg").write_text(svg(result))
    bench = docs / "BENCHMARKS.md"
    text = bench.read_text() if bench.exists() else "# Benchmarks\n"
    section = markdown(result)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    bench.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m measure.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="offered fixes/s")
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--engineers", type=int, default=100)
    ap.add_argument(
        "--step-s", type=float, default=60.0, help="event time between two fixes of an engineer"
    )
    ap.add_argument("--publishers", type=int, default=3)
    ap.add_argument(
        "--drain-s", type=float, default=900.0, help="longest wait for the backlog after publishing"
    )
    ap.add_argument("--max-growth-mib", type=float, default=64.0)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--write-docs", action="store_true", help="update docs/BENCHMARKS.md")
    ap.add_argument(
        "--render", type=Path, default=None, help="only re-render docs from a soak.json"
    )
    args = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the embedded stack is stopped (run_soak's finally)
    from measure.bench import exit_once

    signal.signal(signal.SIGTERM, exit_once)
    if args.render is not None:
        write_docs(load_result(args.render), ROOT / "docs")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="sitewatch-soak-"))
    try:
        result = run_soak(
            minutes=args.minutes,
            rate=args.rate,
            interval_s=args.interval,
            engineers=args.engineers,
            step_s=args.step_s,
            processes=args.publishers,
            drain_s=args.drain_s,
            max_growth_mib=args.max_growth_mib,
            data_dir=data_dir,
        )
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    out = ROOT / "artifacts" / "soak"
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        **{k: v for k, v in asdict(result).items() if k != "samples"},
        "samples": [asdict(s) | {"lag": s.lag} for s in result.samples],
        "ok": result.ok,
    }
    (out / "soak.json").write_text(json.dumps(payload, indent=1))
    (out / "soak.svg").write_text(svg(result))
    if args.write_docs:
        write_docs(result, ROOT / "docs")
    for name, (ok, why) in result.verdicts.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {why}")
    for name, why in result.notes.items():
        print(f"note {name}: {why}")
    print(json.dumps({"ok": result.ok, **result.totals}))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
