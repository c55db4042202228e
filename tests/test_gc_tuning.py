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
