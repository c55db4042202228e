"""The parts of `sitewatch bench` that need no stack: where a run lands in BENCHMARKS.md, what
a component's CPU includes, and how the signed share of the load is chosen."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from gm.algorithms import canonical_bytes, sign_sm2, verify_sm2
from measure.bench import slowest_seconds, write_markdown
from measure.bench_probes import MachineCpu, Signing, machine_cpu, proc_stats
from measure.bench_report import capacity_figures
from measure.mqtt_publishers import _read_packets, encode_all, encode_publish
from measure.pg_activity import MaintenanceSampler, busiest_statements

RUN = {"date": "D", "machine": "M", "workers": 1, "bench_seconds": 1.0, "e2e_fixes_per_s": 2.0}


def headings(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("## ")]


def test_a_new_run_goes_after_the_summary_and_before_older_runs(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(
        "# Benchmarks\n\nintro\n\n## Where SiteWatch stands\n\nsummary\n\n"
        "## `sitewatch bench` — old\n\nold run\n\n## Soak (`make soak`)\n\nsoak\n"
    )
    write_markdown(RUN, doc, "sitewatch bench --new")
    assert headings(doc) == [
        "## Where SiteWatch stands",
        "## `sitewatch bench --new` — D",
        "## `sitewatch bench` — old",
        "## Soak (`make soak`)",
    ]
    assert "| `e2e_fixes_per_s` | 2.0 |" in doc.read_text()


def test_steps_show_the_cpu_per_fix_of_each_component(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    step = {"offered_per_s": 1000, "acked": 10, "delivered": 10, "achieved_per_s": 990.0}
    with_cpu = step | {
        "cpu_ms_per_fix": 0.5,
        "cpu_ms_per_fix_by_component": {"worker": 0.3, "postgres": 0.2},
        "rest_of_machine_cpu_ms_per_fix": 0.12,
        "machine_busy_pct": 93.5,
    }
    write_markdown(RUN | {"e2e_steps": [with_cpu, step]}, doc, "sitewatch bench")
    rows = [line for line in doc.read_text().splitlines() if line.startswith("| 1000 |")]
    assert rows == [
        "| 1000 | 10 | 10 | 990.0 | 0.500 (worker 0.300, postgres 0.200) | 0.12 | 93.5% |",
        "| 1000 | 10 | 10 | 990.0 |  |  |  |",
    ]


def test_postgres_busiest_statements_get_their_own_table(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    busiest = [["INSERT INTO fixes (engineer_id) SELECT 1", 467, 6.43, 3002, 5125.2]]
    write_markdown({**RUN, "pg_busiest_statements": busiest}, doc, "sitewatch bench")
    text = doc.read_text()
    assert "| 467 | 6.43 | 3002 | 5125.2 | `INSERT INTO fixes (engineer_id) SELECT 1` |" in text
    assert "`pg_busiest_statements`" not in text  # not dumped into the figures table


def test_busiest_statements_are_the_difference_between_two_totals() -> None:
    before = {1: ("SELECT a", 10, 100.0, 1000), 2: ("SELECT b", 5, 50.0, 50)}
    after = {1: ("SELECT a", 30, 300.0, 3000), 2: ("SELECT b", 5, 50.0, 50), 3: ("new", 2, 9.0, 4)}
    assert busiest_statements(before, after) == [
        ["SELECT a", 20, 10.0, 200, 100.0],
        ["new", 2, 4.5, 9, 2.0],
    ]


def test_maintenance_is_matched_to_the_second_it_ran_in() -> None:
    sampler = MaintenanceSampler("postgresql://unused")
    sampler.samples = [
        (100.2, []),
        (108.1, ["autovacuum: VACUUM public.fixes"]),
        (108.6, ["autovacuum: VACUUM public.fixes", "checkpoint"]),
        (109.4, ["checkpoint"]),
    ]
    assert sampler.during(100.0, 8) == ["autovacuum: VACUUM public.fixes", "checkpoint"]
    assert sampler.during(100.0, 9) == ["checkpoint"]
    assert sampler.during(100.0, 0) == []
    assert sampler.during(100.0, 5) is None  # no sample in that second: unknown, not "none"


def test_machine_cpu_counts_all_but_idle_and_iowait() -> None:
    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat = "cpu  100 10 50 800 40 5 5 0 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
    assert machine_cpu(stat) == (170 / tick, 1010 / tick)


def test_machine_busy_share_over_a_window() -> None:
    machine = MachineCpu()
    machine.samples = [(0.0, 0.0, 0.0), (1.0, 1.5, 2.0), (2.0, 2.5, 4.0), (3.0, 4.5, 6.0)]
    assert machine.busy(1.0, 3.0) == (3.0, 0.75)  # 3 of 4 CPU seconds busy
    assert machine.busy(2.5, 2.9) == (0.0, 0.0)  # no two samples inside: unknown, not idle
    live = MachineCpu(interval_s=0.01).start()
    time.sleep(0.2)
    live.stop()
    busy, share = live.busy(0.0, time.time())
    assert len(live.samples) >= 5 and busy >= 0.0 and 0.0 <= share <= 1.0


def test_the_first_run_starts_the_file(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    write_markdown(RUN, doc, "sitewatch bench")
    assert doc.read_text().startswith("# Benchmarks")
    assert headings(doc) == ["## `sitewatch bench` — D"]


def test_cpu_of_a_component_includes_its_children() -> None:
    """A parent that only waits while its child burns CPU (the bridge and its SM2 pool)."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])",
        ]
    )
    try:
        best = 0.0
        deadline = time.monotonic() + 10
        while parent.poll() is None and time.monotonic() < deadline:
            best = max(best, proc_stats(parent.pid)["cpu_s"])
            time.sleep(0.05)
        assert best >= 0.4, f"the child's CPU was not counted: {best}"
    finally:
        parent.kill()
        parent.wait()


def test_signing_share_and_keys() -> None:
    engineers = [f"BE{i:05d}" for i in range(100)]
    assert Signing.for_share(engineers, 0.0) is None
    every = Signing.for_share(engineers, 1.0)
    quarter = Signing.for_share(engineers, 0.25)
    assert every is not None and quarter is not None
    assert every.engineers == frozenset(engineers)
    assert len(quarter.engineers) == 25 and quarter.signs_per_s > 0
    body = canonical_bytes({"msg_id": "m", "ts": 1.0})
    sig = sign_sm2(every.keys[0], body, public_key_hex=every.keys[1])
    assert verify_sm2(every.keys[1], body, sig)


def test_the_slowest_seconds_of_the_half_load_phase() -> None:
    arrivals = [100.1, 100.5, 101.2, 101.9, 103.0]
    latencies = [200.0, 250.0, 900.0, 100.0, 300.0]
    assert slowest_seconds(arrivals, latencies, start=100.0, n=2) == [(1, 900.0), (3, 300.0)]
    assert slowest_seconds([], [], start=0.0) == []


def _step(offered: int, achieved: float, cpu: float, loadgen: float) -> dict[str, object]:
    return {
        "offered_per_s": offered,
        "acked": 10,
        "delivered": 10,
        "achieved_per_s": achieved,
        "cpu_ms_per_fix": cpu,
        "cpu_ms_per_fix_by_component": {"worker": cpu},
        "loadgen_cpu_ms_per_fix": loadgen,
        "rest_of_machine_cpu_ms_per_fix": loadgen,
        "machine_busy_pct": 90.0,
    }


def test_sitewatch_cpu_per_fix_and_capacity_come_from_the_step_that_kept_up() -> None:
    steps = [
        _step(1000, 990.0, 0.8, 0.1),
        _step(2000, 1980.0, 0.4, 0.05),
        _step(3000, 2100.0, 0.3, 0.04),
    ]
    figures = capacity_figures(steps, kept_up=1980.04)  # the 3,000/s step did not keep up
    assert figures == {
        "sitewatch_cpu_ms_per_fix": 0.4,
        "capacity_fixes_per_s_per_core": 2500.0,  # 1000 / 0.4
        "sitewatch_cpu_measured_at_per_s": 2000,
        "loadgen_cpu_ms_per_fix": 0.05,
    }
    # nothing kept up: the first step; no step with CPU figures: nothing to say
    assert capacity_figures(steps, kept_up=0.0)["sitewatch_cpu_ms_per_fix"] == 0.8
    assert capacity_figures([], kept_up=0.0) == {}


def test_markdown_shows_sitewatch_cpu_capacity_and_the_load_generators(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    steps = [_step(2000, 1980.0, 0.25, 0.03)]
    run = RUN | {"signed_share": 1.0, "e2e_steps": steps} | capacity_figures(steps, 1980.0)
    write_markdown(run, doc, "sitewatch bench")
    text = doc.read_text()
    assert (
        "SiteWatch's CPU per fix (SM2-signed fixes, every component and service, at 2000 "
        "fixes/s offered): **0.250 ms**, a capacity of **4,000 fixes/s per core**; the load "
        "generators' own CPU: 0.030 ms per fix." in text
    )
    assert "| `sitewatch_cpu_ms_per_fix` | 0.25 |" in text
    assert "| `capacity_fixes_per_s_per_core` | 4000.0 |" in text
    assert "| 2000 | 10 | 10 | 1980.0 | 0.250 (worker 0.250) | 0.03 | 0.03 | 90.0% |" in text
    assert "| load generators, ms per fix |" in text
    unsigned = RUN | {"signed_share": 0.0, "e2e_steps": steps} | capacity_figures(steps, 1980.0)
    write_markdown(unsigned, doc, "sitewatch bench --signed-share 0")
    assert "SiteWatch's CPU per fix (unsigned fixes," in doc.read_text()


def test_pre_encoded_publish_packets_carry_the_packet_ids_the_publisher_counts_on() -> None:
    messages = [(f"t/{k}", b"x" * (k % 3)) for k in range(65537)]
    packets = encode_all(messages)
    assert packets[0] == encode_publish("t/0", b"", 1)
    assert packets[65534] == encode_publish("t/65534", messages[65534][1], 65535)
    assert packets[65535] == encode_publish("t/65535", messages[65535][1], 1)  # wraps, never 0
    parsed, used = _read_packets(bytearray(b"".join(packets[:3])))
    assert used == sum(map(len, packets[:3])) and [p[0] for p in parsed] == [0x32] * 3


def test_the_rules_bench_measures_batches_of_the_rules() -> None:
    from measure import rules_bench

    figures = rules_bench.run(engineers=20, batches=3, tune_gc=False)
    assert figures["rules_engineers"] == 20 and figures["rules_batches"] == 3
    assert 0 < figures["rules_cpu_us_per_fix"] < 100_000
