"""The control run: the same load with no fault reconciles exactly."""

from __future__ import annotations

import pytest

from measure import loadgen
from tests.fault.harness import PREFIX, FaultStack

pytestmark = pytest.mark.stack


def test_fault_free_run_matches_the_plan(fault_stack: FaultStack, baseline: set[str]) -> None:
    plan = loadgen.Plan(prefix=PREFIX, run="RUN", base_ts=loadgen.default_base_ts())
    assert baseline == loadgen.normalise(loadgen.expected_alerts(plan), plan)
    assert len(baseline) == 60  # 20 cross-region, 40 impossible-travel
