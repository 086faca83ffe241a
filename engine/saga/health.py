"""Health checks of service instances, run by one worker per service per interval.

Every worker runs the loop; a short Redis lock per service and round makes one of them do the
checks. A failing instance is marked UNHEALTHY and load balancing stops choosing it; when it
answers again it is marked HEALTHY and comes back. After each round the service is rebalanced.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from engine.domain.services import HealthStatus, ServiceEndpoint, ServiceInstance
from engine.persistence.service_registry import ServiceRegistry

log = logging.getLogger(__name__)

TICK_S = 0.25


class HealthChecker:
    def __init__(self, registry: ServiceRegistry, owner: str, stop: threading.Event):
        self.registry = registry
        self.owner = owner
        self.stop = stop
        self.http = httpx.Client(trust_env=False)
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="wes-health")
        self._next: dict[str, float] = {}

    def run(self) -> None:
        while not self.stop.wait(TICK_S):
            try:
                self.round()
            except Exception:
                log.exception("health checks failed")

    def round(self, force: bool = False) -> list[str]:
        """Check every service whose interval has passed (and whose lock this worker won)."""
        checked = []
        now = time.monotonic()
        for endpoint in self.registry.endpoints().values():
            if not force and now < self._next.get(endpoint.name, 0.0):
                continue
            self._next[endpoint.name] = now + endpoint.health.interval
            ttl_ms = max(int(endpoint.health.interval * 900), 100)
            if not force and not self.registry.claim_health_round(endpoint.name, self.owner, ttl_ms):
                continue
            self.check(endpoint)
            self.registry.rebalance_load(endpoint)
            checked.append(endpoint.name)
        return checked

    def check(self, endpoint: ServiceEndpoint) -> dict[str, HealthStatus]:
        results = list(self.pool.map(lambda i: (i, self._probe(endpoint, i)), endpoint.instances))
        out = {}
        for instance, (status, latency_ms, error) in results:
            self.registry.update_service_health(endpoint.name, instance.id, status, latency_ms, error)
            out[instance.id] = status
        return out

    def _probe(self, endpoint: ServiceEndpoint, instance: ServiceInstance) -> tuple[HealthStatus, float | None, str]:
        started = time.perf_counter()
        try:
            response = self.http.get(instance.url + endpoint.health.path, timeout=endpoint.health.timeout)
        except httpx.HTTPError as exc:
            return HealthStatus.UNHEALTHY, None, f"{type(exc).__name__}: {exc}"[:300]
        latency_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            return HealthStatus.UNHEALTHY, latency_ms, f"HTTP {response.status_code}"
        return HealthStatus.HEALTHY, latency_ms, ""

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.http.close()
