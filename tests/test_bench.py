"""Smoke tests of ``wes bench``: small runs that exercise every part (engine workers, open-loop starts,
the naive RQ baseline) and check the shape of the result, not the performance bars."""

from __future__ import annotations

import pytest

from wes_cli.bench.throughput import run_bench

REQUIRED = (
    "steps_per_s",
    "workflows_per_s",
    "start_p50_ms",
    "start_p99_ms",
    "e2e_p50_ms",
    "e2e_p99_ms",
    "persist_p50_ms",
    "persist_p99_ms",
    "step_overhead_p99_ms",
    "worker_cpu_us_per_step",
    "redis_cpu_us_per_step",
    "rq_job_per_step_steps_per_s",
    "ratio_vs_rq_job_per_step",
    "wall_s",
)


def check(result: dict, workflows: int) -> None:
    for key in REQUIRED:
        value = result[key]
        assert isinstance(value, int | float) and value > 0, (key, value)
    assert result["completed"] == workflows
    assert result["failed"] == 0
    assert result["server"] == "embedded"
    assert result["redis_version"]
    assert result["start_p50_ms"] <= result["start_p99_ms"]
    assert result["e2e_p50_ms"] <= result["e2e_p99_ms"]


@pytest.mark.timeout(90)
def test_bench_throughput_mode() -> None:
    result = run_bench(workflows=40, steps=3, workers=1, naive_workflows=5)
    check(result, 40)
    assert (result["workflows"], result["steps"], result["workers"], result["rate"]) == (40, 3, 1, None)


@pytest.mark.timeout(90)
def test_bench_open_loop_rate() -> None:
    result = run_bench(workflows=20, steps=3, workers=1, rate=50, naive_workflows=5)
    check(result, 20)
    assert result["rate"] == 50
    # 20 starts issued at 50/s span ~0.38 s: throughput is bounded by the arrival rate.
    assert result["workflows_per_s"] < 80
