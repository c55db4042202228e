"""The collector settings of the long-running processes (config.gc_tuning), checked in a fresh
interpreter so the test run's own collector is left alone, and wired into each entry point."""

from __future__ import annotations

import ast
import gc
import subprocess
import sys
from pathlib import Path

from config import gc_tuning

ROOT = Path(__file__).resolve().parents[1]


def test_tune_freezes_the_start_up_objects_and_sets_the_thresholds() -> None:
    code = (
        "import gc; from config import gc_tuning; before = gc.get_freeze_count(); "
        "gc_tuning.tune(); print(before, gc.get_freeze_count(), *gc.get_threshold())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    before, frozen, *thresholds = (int(x) for x in out)
    assert before == 0 and frozen > 1000  # the modules imported so far
    assert tuple(thresholds) == gc_tuning.THRESHOLDS != gc.get_threshold()


def test_every_long_running_entry_point_tunes_the_collector() -> None:
    for path in ("streams/__main__.py", "live_api/__main__.py", "ingest/bridge.py"):
        tree = ast.parse((ROOT / path).read_text())
        main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
        calls = [ast.unparse(n.func) for n in ast.walk(main) if isinstance(n, ast.Call)]
        assert "gc_tuning.tune" in calls, path


def test_a_slow_collection_is_logged_with_its_generation_and_time() -> None:
    code = (
        "import gc, logging; from config import gc_tuning; logging.basicConfig(); "
        "gc_tuning.tune(); gc_tuning.tune(); gc_tuning.SLOW_COLLECTION_S = 0.0; "
        "print(gc.callbacks.count(gc_tuning._log_slow_collections)); gc.collect(2)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.split() == ["1"]  # tuned twice, registered once
    assert "a generation 2 collection stopped the process for" in done.stderr


def test_a_quick_collection_is_not_logged() -> None:
    code = "import gc, logging; from config import gc_tuning; logging.basicConfig(); "
    code += "gc_tuning.tune(); gc.collect(0)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert "collection stopped" not in done.stderr


SWEEP_PRELUDE = """
import gc, weakref
from config import gc_tuning
gc.disable()  # no collection but the sweeps'
now = [0.0]
sweeper = gc_tuning.Sweeper(full_every_s=10.0, clock=lambda: now[0])

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a

def frozen(obj):
    return not any(o is obj for o in gc.get_objects())  # the generations, not the frozen
"""


def _run(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SWEEP_PRELUDE + code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout.split()


def test_a_sweep_frees_young_garbage_cycles_and_freezes_what_survived() -> None:
    code = (
        "kept = cycle(); gone = weakref.ref(cycle()); "
        "print(gone() is not None, frozen(kept), sweeper.sweep(), gone() is None, frozen(kept))"
    )
    assert _run(code) == ["True", "False", "0", "True", "True"]


def test_a_cycle_dropped_after_its_freeze_waits_for_the_full_collection() -> None:
    code = (
        "kept = cycle(); ref = weakref.ref(kept); "
        "sweeper.sweep(); del kept; now[0] = 9.9; young = sweeper.sweep(); "
        "after_young = ref() is not None; now[0] = 10.0; full = sweeper.sweep(); "
        "print(young, after_young, full, ref() is None, gc.get_freeze_count() > 0)"
    )
    assert _run(code) == ["0", "True", "2", "True", "True"]


def test_the_stream_worker_sweeps_on_a_timer() -> None:
    source = (ROOT / "streams/worker.py").read_text()
    tree = ast.parse(source)
    swept = [
        f
        for f in ast.walk(tree)
        if isinstance(f, ast.AsyncFunctionDef)
        and any("app.timer" in ast.unparse(d) for d in f.decorator_list)
        and "sweeper.sweep()" in ast.unparse(f)
    ]
    assert len(swept) == 1
    assert "gc_tuning.SWEEP_EVERY_S" in ast.unparse(swept[0].decorator_list[0])
