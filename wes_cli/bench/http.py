"""``wes bench --http``: sagas whose steps call the simulated warehouse services over real HTTP.

One run starts its own Redis (or uses ``redis_url`` under a unique key prefix), one instance of each
simulated service a saga calls (``sim/``: real uvicorn processes on free ports), applies their endpoints
to the engine and sets each instance's ``latency_ms`` chaos knob to ``service_latency`` with mean == p99,
so every call waits exactly that long in the service. The saga has ``steps`` steps, step ``i`` calling the
forward operation of the ``i``-th service in :data:`sim.services.SERVICES` order (inventory, location,
picking, packing, shipping, payment, then around again), with its undo as compensation.

Each instance has ``capacity`` calls in flight (default ``SERVICE_CAPACITY``): the worker's bulkheads
keep calls within it, as in production, so the services are never asked for more than they can serve in
their fixed latency (at 50 ms a call, 64 slots serve 1,280 calls/s per service, beyond what these cores
carry); the rest of the sagas wait for a slot before their step starts. Reported: the throughput bench's figures, the simulated services' CPU per step, and the
worker CPU per step split into HTTP client, breaker/load balancer and engine by sampling the workers
(:mod:`wes_cli.bench.profile`, ``cpu_split.method``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from engine.domain.services import TARGET_UTILIZATION
from sim.services import SERVICES
from wes_cli.bench.harness import SagaRun, cost_figures, first_failure, saga_figures
from wes_cli.bench.profile import METHOD, CpuSampler, split_per_step
from wes_cli.bench.support import cpu_seconds, ms, per_step_us, progress

WARM_CALLS = 10
"""Direct calls to every instance before the run, so the run does not pay for cold servers."""


def service_plan(steps: int) -> list[str]:
    """The service step ``i`` calls (in SERVICES order, around again past the sixth)."""
    names = list(SERVICES)
    return [names[i % len(names)] for i in range(steps)]


RETRY = {"max_attempts": 3, "backoff": "EXPONENTIAL", "initial_delay": "100ms", "max_delay": "1s"}


def service_step(step_id: str, service: str) -> dict[str, Any]:
    """A step calling ``service``'s forward operation, its undo as compensation."""
    forward, undo = SERVICES[service]
    compensation = {"service": service, "operation": undo}
    return {
        "id": step_id,
        "action": {"service": service, "operation": forward},
        "compensation": {"type": "RETRY", "action": compensation, "max_retries": 3, "retry_delay": "200ms"},
    }


def http_definition(steps: int, service_latency: float) -> dict[str, Any]:
    return {
        "name": f"bench-http-{steps}steps",
        "description": "wes bench --http: every step calls a simulated warehouse service",
        "consistency": "AT_LEAST_ONCE",
        "step_defaults": {"timeout": max(5.0, 20 * service_latency), "retry": RETRY},
        "steps": [service_step(f"s{i + 1}-{service}", service) for i, service in enumerate(service_plan(steps))],
    }


SERVICE_CAPACITY = 64
"""Calls in flight each simulated instance is configured to take."""


def start_services(run: SagaRun, services: list[str], capacity: int | None, latency_s: float):
    """One sim instance per service, torn down with the run; endpoints applied to the engine (with
    ``capacity``, else the registry's default), warmed, then every instance set to wait ``latency_s`` per
    call."""
    from sim.launcher import SimCluster, set_chaos

    log = run.tmp / "sim.log"
    run.logs.append(log)
    cluster = SimCluster(str(run.url), dict.fromkeys(services, 1), prefix=f"{run.prefix}-sim", log_file=log)
    run.cleanups.append(cluster.stop)
    cluster.start()
    config = cluster.services_config()
    for entry in config["services"].values():
        if capacity is not None:
            entry["capacity"] = capacity
    run.engine_client.services.apply(config)
    with httpx.Client(trust_env=False, timeout=5.0) as http:
        for inst in cluster.instances:
            for i in range(WARM_CALLS):
                body = {"workflow_id": f"warm-{i}", "step_id": "warm", "input": {}}
                http.post(f"{inst.url}/{SERVICES[inst.service][0]}", json=body,
                          headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    for inst in cluster.instances:
        set_chaos(inst.url, latency_ms=latency_s * 1000.0)
    progress(f"{len(cluster.instances)} simulated service instance(s) up, {latency_s * 1000:g} ms per call")
    return cluster


def run_http_bench(
    workflows: int = 1000,
    steps: int = 6,
    workers: int = 2,
    service_latency: float = 0.05,
    rate: float | None = None,
    redis_url: str | None = None,
    *,
    cpu_split: bool = True,
    service_capacity: int = SERVICE_CAPACITY,
    max_in_flight: int | None = None,
    step_threads: int | None = None,
) -> dict[str, Any]:
    """Run the bench and return its figures (see the module docstring)."""
    if workflows < 1 or steps < 1:
        raise ValueError("workflows and steps must be >= 1")
    if service_latency < 0:
        raise ValueError("service_latency must be >= 0")
    wall0 = time.perf_counter()
    services = list(dict.fromkeys(service_plan(steps)))
    capacity = service_capacity
    options = {"max_in_flight": max_in_flight, "step_threads": step_threads}
    with SagaRun(redis_url, workers, options, label="bench-http") as run:
        cluster = start_services(run, services, capacity, service_latency)
        service_pids = [pid for inst in cluster.instances if (pid := cluster.pid(inst.instance_id))]
        definition, _ = run.engine_client.apply_definition(http_definition(steps, service_latency))
        run.start_workers()

        sampler = None
        if cpu_split:
            sampler = CpuSampler(run.worker_pids, run.tmp, run.tmp / "py-spy.log")
            run.logs.append(sampler.log)
            run.cleanups.append(sampler.stop)
            sampler.start()
        window = run.begin()
        services_cpu0 = cpu_seconds(service_pids)
        bench_epoch = time.time()
        started = run.start_sagas([(definition.name, definition.version, {})] * workflows, rate)
        run.wait_finished(workflows)
        window = run.end(window)
        services_cpu1 = cpu_seconds(service_pids)
        samples = sampler.stop() if sampler is not None else None
        rss = run.peak_rss_mb()
        snaps = run.snapshots(started.ids)
        run.stop_workers()
        sagas = saga_figures(snaps, started, lambda _snap: steps)
        costs = cost_figures(window, sagas["steps_done"], rss)

        result: dict[str, Any] = {
            "workflows": workflows,
            "steps": steps,
            "workers": workers,
            "rate": rate,
            "service_latency_ms": ms(service_latency),
            "services": services,
            "service_capacity": capacity,
            "bulkhead": f"each service instance has capacity {capacity}: calls beyond it wait for a slot in the "
            f"workers' bulkheads ({TARGET_UTILIZATION:.0%} is the load balancer's target per instance)",
            "worker_options": run.worker_options_in_force(),
            "redis_version": run.redis_version,
            "server": run.server_kind,
            **{k: v for k, v in sagas.items() if k != "steps_done"},
            "retries": sum(int(s["retry_state"]["total_retries"]) for s in snaps),
            **run.engine_stats(bench_epoch),
            **costs,
            "worker_cpu_us_per_step_split": split_per_step(costs["worker_cpu_us_per_step"], samples),
            "cpu_split": {
                "method": METHOD if cpu_split else "not measured (--no-cpu-split)",
                "samples": samples.counts if samples is not None else None,
                "hottest_frames": samples.hottest() if samples is not None else None,
                "problem": sampler.problem if sampler is not None else None,
            },
            "services_cpu_us_per_step": per_step_us(services_cpu0, services_cpu1, sagas["steps_done"]),
        }
        if sagas["completed"] < workflows:
            result["first_failure"] = first_failure(snaps)
        result["wall_s"] = round(time.perf_counter() - wall0, 2)
        return result
