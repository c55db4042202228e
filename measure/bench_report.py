"""What `sitewatch bench` derives from its steps and writes: SiteWatch's CPU per fix and the
capacity per core it implies, the half-load phase's slowest seconds, and the Markdown section
of docs/BENCHMARKS.md. Pure functions: tests/test_bench_report.py runs them without a stack."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def capacity_figures(steps: Sequence[dict[str, Any]], kept_up: float) -> dict[str, Any]:
    """SiteWatch's CPU per fix at the step that set `kept_up` (the highest rate kept up end to
    end; without one, the first step): every component and embedded service of the stack
    (Mosquitto, Kafka, PostgreSQL, the bridge, the worker, the API), the load generators
    excluded; the capacity it implies, in fixes per second per core (1000 / ms per fix); and
    the load generators' own CPU per fix at the same step."""
    with_cpu = [s for s in steps if s.get("cpu_ms_per_fix")]
    if not with_cpu:
        return {}
    # steps keep their rate rounded to 0.1
    at = next((s for s in with_cpu if abs(s["achieved_per_s"] - kept_up) <= 0.05), with_cpu[0])
    ms = float(at["cpu_ms_per_fix"])
    out: dict[str, Any] = {
        "sitewatch_cpu_ms_per_fix": round(ms, 3),
        "capacity_fixes_per_s_per_core": round(1000 / ms, 1),
        "sitewatch_cpu_measured_at_per_s": at["offered_per_s"],
    }
    if "loadgen_cpu_ms_per_fix" in at:
        out["loadgen_cpu_ms_per_fix"] = at["loadgen_cpu_ms_per_fix"]
    return out


def slowest_seconds(
    arrivals: list[float], latencies_ms: list[float], start: float, n: int = 3
) -> list[tuple[int, float]]:
    """The `n` seconds (counted from `start`) whose deliveries had the highest p99 latency:
    tells a steady latency from a stall (a checkpoint, a rebalance) in the run's log."""
    by_second: dict[int, list[float]] = {}
    for t, ms in zip(arrivals, latencies_ms, strict=True):
        by_second.setdefault(int(t - start), []).append(ms)
    p99 = {s: sorted(v)[min(len(v) - 1, int(0.99 * len(v)))] for s, v in by_second.items()}
    return sorted(p99.items(), key=lambda x: -x[1])[:n]


def _summary(figures: dict[str, Any]) -> list[str]:
    if "sitewatch_cpu_ms_per_fix" not in figures:
        return []
    share = figures.get("signed_share", 0.0)
    kind = "unsigned" if not share else ("SM2-signed" if share >= 1 else f"{share:.0%} signed")
    line = (
        f"SiteWatch's CPU per fix ({kind} fixes, every component and service, at "
        f"{figures['sitewatch_cpu_measured_at_per_s']:g} fixes/s offered): "
        f"**{figures['sitewatch_cpu_ms_per_fix']:.3f} ms**, a capacity of "
        f"**{figures['capacity_fixes_per_s_per_core']:,.0f} fixes/s per core**"
    )
    if "loadgen_cpu_ms_per_fix" in figures:
        line += (
            f"; the load generators' own CPU: {figures['loadgen_cpu_ms_per_fix']:.3f} ms per fix"
        )
    return [line + ".", ""]


def write_markdown(figures: dict[str, Any], path: Path, command: str) -> None:
    lines = [
        f"## `{command}` — {figures['date']}",
        "",
        f"Machine: {figures['machine']}. Stream workers: {figures['workers']}. Took {figures['bench_seconds']} s.",
        "",
        *_summary(figures),
        "| figure | value |",
        "|---|---|",
    ]
    lines += [
        f"| `{k}` | {_figure(k, v)} |"
        for k, v in figures.items()
        if k not in ("date", "machine", "e2e_steps", "workers", "pg_busiest_statements")
    ]
    steps = figures.get("e2e_steps", [])
    # the load generators' own CPU (measured since they cost little) when the run has it
    loadgen = any("loadgen_cpu_ms_per_fix" in s for s in steps)
    live = any("live_messages_per_fix" in s for s in steps)
    lines += [
        "",
        "Rising load (offered → delivered on the WebSocket):",
        "",
        "| offered/s | acked | delivered | achieved/s | CPU ms per fix (by component) "
        + ("| load generators, ms per fix " if loadgen else "")
        + "| rest of the machine, ms per fix | machine busy |"
        + (" live messages per fix |" if live else ""),
        "|---|---|---|---|---|"
        + ("---|" if loadgen else "")
        + "---|---|"
        + ("---|" if live else ""),
    ]
    lines += [
        f"| {s['offered_per_s']} | {s['acked']} | {s['delivered']} | {s['achieved_per_s']} | "
        + (
            f"{s['cpu_ms_per_fix']:.3f} ("
            + ", ".join(f"{k} {v:.3f}" for k, v in s["cpu_ms_per_fix_by_component"].items())
            + ")"
            if "cpu_ms_per_fix" in s
            else ""
        )
        + (f" | {s.get('loadgen_cpu_ms_per_fix', '')}" if loadgen else "")
        + f" | {s.get('rest_of_machine_cpu_ms_per_fix', '')} | "
        + (f"{s['machine_busy_pct']}%" if "machine_busy_pct" in s else "")
        + " |"
        + (
            " "
            + ", ".join(f"{k} {v}" for k, v in s.get("live_messages_per_fix", {}).items())
            + " |"
            if live
            else ""
        )
        for s in steps
    ]
    lines += _statements(figures.get("pg_busiest_statements") or [])
    section = "\n".join(lines) + "\n\n"
    old = (
        path.read_text()
        if path.exists()
        else "# Benchmarks\n\nWritten by `make bench` (`sitewatch bench --write docs/BENCHMARKS.md`); newest first.\n\n"
    )
    # newest run first, after the intro and the summary (the sections before the first run)
    at = old.find("\n## `sitewatch bench")
    if at < 0:
        at = old.find("\n## Soak")
    head, rest = (old, "") if at < 0 else (old[: at + 1], old[at + 1 :])
    path.write_text(head.rstrip() + "\n\n" + section + rest)


def _figure(name: str, value: Any) -> Any:
    """A figure as written: a float to 0.1, or to 0.001 when it is per fix or below one
    (0.123 ms of SM2 verification would read 0.1)."""
    if not isinstance(value, float):
        return value
    return round(value, 3 if name.endswith("_ms_per_fix") or abs(value) < 1 else 1)


def _statements(statements: list[list[Any]]) -> list[str]:
    """PostgreSQL's busiest statements of the rising load (pg_stat_statements): wall time, so
    a busy machine stretches every one of them; the buffers say how much work each call did."""
    if not statements:
        return []
    lines = [
        "",
        "PostgreSQL's busiest statements during the rising load (pg_stat_statements):",
        "",
        "| calls | mean ms | total ms | buffers per call | statement |",
        "|---|---|---|---|---|",
    ]
    for query, calls, mean, total, *rest in statements:
        buffers = rest[0] if rest else ""
        statement = str(query)[:100].replace("|", "\\|")  # SQL's || must not split the row
        lines.append(f"| {calls} | {mean} | {total} | {buffers} | `{statement}` |")
    return lines
