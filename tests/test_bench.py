"""Smoke tests of ``wes bench``: small runs that exercise every part (engine workers, open-loop starts,
the naive RQ baseline, steps that wait, HTTP steps on the simulated services with the sampled CPU split,
head-of-line blocking) and check the shape of the result and that stdout holds the JSON alone, not the
performance bars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ConfigurationError
from engine.settings import EngineSettings
from wes_cli.bench.harness import WORKER_OPTIONS, worker_settings
from wes_cli.bench.profile import parse_raw, py_spy_binary, split_per_step
from wes_cli.bench.throughput import run_bench

REPO = Path(__file__).resolve().parent.parent

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


# ------------------------------------------------------------------ the new modes, through the CLI
def wes_bench(tmp_path: Path, *args: str, timeout: float = 60) -> tuple[dict[str, Any], str]:
    """``wes bench ARGS --json`` as a user runs it (its own embedded Redis); the result, which must be the
    only thing on stdout, and stderr."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("WES_")}
    env["WES_HOME"] = str(tmp_path / "home")
    proc = subprocess.run([sys.executable, "-m", "wes_cli", "bench", *args, "--json"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)  # one JSON document and nothing else
    assert isinstance(result, dict)
    assert "wes bench: " in proc.stderr  # progress goes to stderr
    return result, proc.stderr


def check_latency_figures(result: dict[str, Any], workflows: int) -> None:
    for key in ("steps_per_s", "e2e_p50_ms", "e2e_p99_ms", "worker_rss_mb", "worker_cpu_us_per_step"):
        value = result[key]
        assert isinstance(value, int | float) and value > 0, (key, value)
    assert result["completed"] == workflows and result["failed"] == 0, result.get("first_failure")
    assert result["e2e_p50_ms"] <= result["e2e_p99_ms"]
    assert result["server"] == "embedded"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "handler",
    [
        "sync",
        pytest.param(
            "async",
            marks=pytest.mark.skipif(
                "max_in_flight" not in EngineSettings.model_fields,
                reason="only the asyncio worker (the one with settings.max_in_flight) runs async def handlers",
            ),
        ),
    ],
)
def test_step_latency_mode(tmp_path: Path, handler: str) -> None:
    result, _ = wes_bench(tmp_path, "--step-latency", "40ms", "--handler", handler, "--workflows", "4",
                          "--steps", "2", "--workers", "1")  # fmt: skip
    check_latency_figures(result, 4)
    assert (result["step_latency_ms"], result["handler"], result["naive_workflows"]) == (40.0, handler, 0)
    assert result["e2e_p50_ms"] >= 2 * 40.0  # every step waited
    assert "rq_job_per_step_steps_per_s" not in result  # the naive baseline is opt-in with a latency
    assert set(result["worker_options"]) <= {"max_in_flight", "step_threads"}


@pytest.mark.timeout(60)
def test_http_mode(tmp_path: Path) -> None:
    result, stderr = wes_bench(tmp_path, "--http", "--service-latency", "20ms", "--workflows", "4", "--steps", "2",
                               "--workers", "1")  # fmt: skip
    check_latency_figures(result, 4)
    assert result["services"] == ["inventory", "location"]
    assert result["service_latency_ms"] == 20.0
    assert result["service_capacity"] == 64 and "wait for a slot" in result["bulkhead"]
    assert result["e2e_p50_ms"] >= 2 * 20.0
    assert result["services_cpu_us_per_step"] > 0
    split, how = result["worker_cpu_us_per_step_split"], result["cpu_split"]
    assert "py-spy" in how["method"]
    if py_spy_binary() is None or os.geteuid() != 0:
        assert split is not None or how["problem"], how  # without ptrace rights it says why
        return
    assert how["problem"] is None and sum(how["samples"].values()) > 0, (how, stderr[-2000:])
    assert set(split) == {"http_client", "breaker_lb", "engine"}
    assert sum(split.values()) == pytest.approx(result["worker_cpu_us_per_step"], rel=0.01)


@pytest.mark.timeout(60)
def test_hol_mode(tmp_path: Path) -> None:
    result, _ = wes_bench(tmp_path, "hol", "--slow-sagas", "2", "--fast-sagas", "4", "--steps", "2",
                          "--service-latency", "300ms", "--workers", "1")  # fmt: skip
    for key in ("unaffected_p95_ms", "affected_p95_ms", "worker_rss_mb", "worker_cpu_us_per_step"):
        assert isinstance(result[key], int | float) and result[key] > 0, (key, result[key])
    assert result["unaffected"]["started"] == result["unaffected"]["completed"] == 4
    assert result["affected"]["started"] == result["affected"]["completed"] == 2
    assert result["affected_p95_ms"] >= 300.0  # the payment call waited
    assert (result["slow_sagas"], result["fast_sagas"], result["fast_steps"]) == (2, 4, 2)
    assert result["service"] == "payment" and result["service_capacity"] >= 1


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("--handler", "async"), "--handler applies only to --step-latency"),
        (("--service-latency", "50ms"), "--service-latency applies only to --http and hol"),
        (("--http", "--step-latency", "5ms"), "--step-latency applies only to"),
        (("--step-latency", "fast"), "bad duration"),
        (("api", "--max-in-flight", "4"), "--max-in-flight/--threads applies only to"),
    ],
)
def test_refused_combinations(tmp_path: Path, args: tuple[str, ...], complaint: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("WES_")}
    env["WES_HOME"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "wes_cli", "bench", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert proc.returncode == 2 and complaint in proc.stderr, proc.stderr
    assert proc.stdout == ""


# ------------------------------------------------------------------ pure parts
@pytest.mark.unit
def test_worker_options_refused_when_the_engine_lacks_them() -> None:
    with pytest.raises(ConfigurationError, match="no bogus_option setting"):
        worker_settings({"bogus_option": 4})
    assert worker_settings({"max_in_flight": None, "step_threads": None}) == {}
    present = {name: 3 for name in WORKER_OPTIONS if name in EngineSettings.model_fields}
    assert worker_settings(present) == present


@pytest.mark.unit
def test_cpu_samples_go_to_the_innermost_http_or_breaker_frame() -> None:
    site = "/venv/lib/python3.11/site-packages"
    raw = "\n".join(
        [
            # an HTTP request made by the service port: HTTP client
            f"run (/r/engine/saga/service.py:1);call (/r/engine/integration/http_service.py:9);"
            f"send (/r/x/{site}/httpcore/_async/http11.py:5);recv (/usr/lib/python3.11/ssl.py:3) 7",
            # the breaker's round trip to Redis from the registry: breaker/LB (redis-py goes with its caller)
            f"call (/r/engine/integration/http_service.py:9);admit (/r/engine/persistence/service_registry.py:4);"
            f"execute ({site}/redis/client.py:2);read ({site}/redis/_parsers/socket.py:8) 3",
            # a saga commit: engine, even through a module named socket.py that is not the stdlib's
            f"commit (/r/engine/persistence/workflow_repository.py:2);read ({site}/redis/_parsers/socket.py:8) 5",
            "tick (/r/engine/saga/bulkheads.py:3) 2",
            "garbage line without a count",
        ]
    )
    samples = parse_raw(raw)
    assert samples.counts == {"http_client": 7, "breaker_lb": 5, "engine": 5}
    assert samples.hottest()["http_client"] == [["recv (python3.11/ssl.py:3)", 7]]
    split = split_per_step(340.0, samples)
    assert split == {"http_client": 140.0, "breaker_lb": 100.0, "engine": 100.0}
    assert split_per_step(None, samples) is None and split_per_step(100.0, parse_raw("")) is None
