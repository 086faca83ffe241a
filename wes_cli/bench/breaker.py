"""``wes bench --breaker``: what the circuit breaker and load balancer add to each service call.

Against one simulated service instance on loopback, the same number of calls are made directly
with httpx and through ``HttpServicePort`` (breaker admission and instance choice in one Lua call,
the outcome in another). Reported: p50/p99 of both and of the breaker's two round trips alone.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from engine.domain.policies import ActionRef
from engine.integration.http_service import HttpServicePort
from engine.persistence.embedded import EmbeddedRedis, free_port
from engine.persistence.service_registry import Lease
from engine.persistence.stores import open_stores
from engine.ports import StepContext
from engine.settings import EngineSettings
from wes_cli.bench.support import relay_logs


def _quantiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return s[len(s) // 2] * 1000, s[min(len(s) - 1, int(len(s) * 0.99))] * 1000


def run_breaker_bench(calls: int = 2000, redis_url: str | None = None) -> dict[str, Any]:
    from sim.launcher import SimCluster

    home = Path(tempfile.mkdtemp(prefix="wes-bench-breaker-"))
    server = None
    try:
        if redis_url is None:
            server = EmbeddedRedis(home, port=free_port())
            redis_url = server.start().url
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        settings = EngineSettings(redis_url=redis_url, key_prefix=prefix)
        with SimCluster(redis_url, {"inventory": 1}, prefix=prefix, log_file=home / "sim.log") as cluster:
            registry = open_stores(settings).services
            registry.apply(cluster.services_config())
            endpoint = registry.endpoint("inventory")
            port = HttpServicePort(registry)
            url = cluster.instances[0].url + endpoint.path("reserve")
            direct_client = httpx.Client(trust_env=False)
            ref = ActionRef(service="inventory", operation="reserve")

            def ctx(i: int) -> StepContext:
                return StepContext(f"w{i}", "bench", "reserve", 1, f"bench:{i}:{uuid.uuid4().hex}", f"c{i}", {})

            # Warm both paths (connections, scripts) before measuring.
            for i in range(50):
                port.call(ref, ctx(i))
                direct_client.post(url, json={"workflow_id": "w", "step_id": "s", "input": {}},
                                   headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
            direct, through, breaker = [], [], []
            for i in range(calls):
                t0 = time.perf_counter()
                direct_client.post(url, json={"workflow_id": f"d{i}", "step_id": "s", "input": {}},
                                   headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
                direct.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                port.call(ref, ctx(i))
                through.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                lease = registry.select_instance(endpoint, f"c{i}")
                assert isinstance(lease, Lease)
                registry.release(endpoint, lease, True)
                breaker.append(time.perf_counter() - t0)
        d50, d99 = _quantiles(direct)
        t50, t99 = _quantiles(through)
        b50, b99 = _quantiles(breaker)
        return {
            "calls": calls,
            "direct_p50_ms": round(d50, 3),
            "direct_p99_ms": round(d99, 3),
            "through_breaker_p50_ms": round(t50, 3),
            "through_breaker_p99_ms": round(t99, 3),
            "breaker_added_p50_ms": round(t50 - d50, 3),
            "breaker_added_p99_ms": round(t99 - d99, 3),
            "breaker_round_trips_p50_ms": round(b50, 3),
            "breaker_round_trips_p99_ms": round(b99, 3),
            "server": "embedded" if server else "external",
        }
    finally:
        if server is not None:
            server.stop()
        relay_logs(home / "sim.log")
        shutil.rmtree(home, ignore_errors=True)
