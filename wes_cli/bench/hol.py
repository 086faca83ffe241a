"""``wes bench hol``: head-of-line blocking, i.e. whether sagas that never call a slow service wait for it.

One run starts its own Redis (or uses ``redis_url`` under a unique key prefix) and one simulated
``payment`` instance whose every call waits ``service_latency`` (the ``latency_ms`` chaos knob with
mean == p99), with the registry's default capacity, so its bulkhead works as it would in production. It
then starts, interleaved in one burst, ``slow`` sagas of one step that charges the payment service (the
*affected* ones) and ``fast`` sagas of ``fast_steps`` no-op Python steps (the *unaffected* ones: they never
call payment), and waits for all of them.

Reported: the end-to-end latency (created -> finished) of each group, ``unaffected_p95_ms`` and
``affected_p95_ms`` first, and the counts of each group.
"""

from __future__ import annotations

import time
from typing import Any

from wes_cli.bench.harness import SagaRun, cost_figures, first_failure, saga_figures
from wes_cli.bench.http import RETRY, service_step, start_services
from wes_cli.bench.support import ms, quantile
from wes_cli.bench.throughput import bench_definition

SERVICE = "payment"


def slow_definition(service_latency: float) -> dict[str, Any]:
    return {
        "name": "bench-hol-payment",
        "description": "wes bench hol: one step that charges the (slow) payment service",
        "consistency": "AT_LEAST_ONCE",
        "step_defaults": {"timeout": max(10.0, 5 * service_latency), "retry": RETRY},
        "steps": [service_step("charge", SERVICE)],
    }


def interleave(slow: int, fast: int) -> list[bool]:
    """``slow + fast`` start slots, True for a slow saga, the slow ones spread evenly through the burst."""
    total = slow + fast
    return [(i + 1) * slow // total > i * slow // total for i in range(total)]


def group_figures(snaps: list[dict[str, Any]], started: int) -> dict[str, Any]:
    done = [s for s in snaps if s.get("status") == "COMPLETED"]
    e2e = sorted(s["time_constraints"]["finished_at"] - s["time_constraints"]["created_at"] for s in done)
    failed = sum(1 for s in snaps if s.get("status") not in ("COMPLETED", "CREATED", "RUNNING", "PAUSED"))
    return {
        "started": started,
        "completed": len(done),
        "failed": failed,
        "unfinished": started - len(done) - failed,
        "p50_ms": ms(quantile(e2e, 0.5)),
        "p95_ms": ms(quantile(e2e, 0.95)),
        "max_ms": ms(e2e[-1] if e2e else None),
    }


def run_hol_bench(
    slow: int = 30,
    fast: int = 60,
    fast_steps: int = 6,
    service_latency: float = 2.0,
    workers: int = 2,
    redis_url: str | None = None,
    *,
    max_in_flight: int | None = None,
    step_threads: int | None = None,
) -> dict[str, Any]:
    """Run the bench and return its figures (see the module docstring)."""
    if slow < 1 or fast < 1 or fast_steps < 1:
        raise ValueError("slow, fast and fast_steps must be >= 1")
    if service_latency < 0:
        raise ValueError("service_latency must be >= 0")
    wall0 = time.perf_counter()
    options = {"max_in_flight": max_in_flight, "step_threads": step_threads}
    with SagaRun(redis_url, workers, options, label="bench-hol") as run:
        start_services(run, [SERVICE], None, service_latency)
        client = run.engine_client
        capacity = sum(i.capacity for i in client.services.endpoint(SERVICE).instances)
        slow_def, _ = client.apply_definition(slow_definition(service_latency))
        fast_def, _ = client.apply_definition(bench_definition(fast_steps))
        run.start_workers()

        slots = interleave(slow, fast)
        plan = [(d.name, d.version, {}) for d in (slow_def if is_slow else fast_def for is_slow in slots)]
        window = run.begin()
        started = run.start_sagas(plan, None)
        run.wait_finished(len(plan))
        window = run.end(window)
        rss = run.peak_rss_mb()
        snaps = run.snapshots(started.ids)
        run.stop_workers()

        by_id = {s["workflow_id"]: s for s in snaps}
        affected = [by_id[w] for w, is_slow in zip(started.ids, slots, strict=True) if is_slow and w in by_id]
        unaffected = [by_id[w] for w, is_slow in zip(started.ids, slots, strict=True) if not is_slow and w in by_id]
        steps = {slow_def.name: 1, fast_def.name: fast_steps}
        overall = saga_figures(snaps, started, lambda s: steps[s["workflow_type"]])
        fast_fig, slow_fig = group_figures(unaffected, fast), group_figures(affected, slow)
        result: dict[str, Any] = {
            "unaffected_p95_ms": fast_fig["p95_ms"],
            "affected_p95_ms": slow_fig["p95_ms"],
            "unaffected_p50_ms": fast_fig["p50_ms"],
            "affected_p50_ms": slow_fig["p50_ms"],
            "unaffected": fast_fig,
            "affected": slow_fig,
            "slow_sagas": slow,
            "fast_sagas": fast,
            "fast_steps": fast_steps,
            "service": SERVICE,
            "service_latency_ms": ms(service_latency),
            "service_capacity": capacity,
            "workers": workers,
            "worker_options": run.worker_options_in_force(),
            "redis_version": run.redis_version,
            "server": run.server_kind,
            "start_burst_ms": ms(started.elapsed_s),
            "steps_per_s": overall["steps_per_s"],
            "run_s": overall["run_s"],
            **cost_figures(window, overall["steps_done"], rss),
        }
        if overall["completed"] < len(plan):
            result["first_failure"] = first_failure(snaps)
        result["wall_s"] = round(time.perf_counter() - wall0, 2)
        return result
