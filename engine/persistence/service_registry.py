"""Service endpoints, instance health, circuit breakers and load in Redis, shared by every worker.

Also the seed's LoadBalancingService: ``select_instance`` (through the breaker, least utilization,
sticky sessions), ``update_service_health``, ``rebalance_load`` and ``get_circuit_breaker_state``.
Endpoints and health results are cached per process for a second (seed: cache service endpoints
and health check results); any configuration change bumps a version that invalidates the caches.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

from engine.domain.services import (
    CircuitState,
    ForcedState,
    HealthStatus,
    InstanceLoad,
    ServiceEndpoint,
    circuit_state,
    parse_service,
    parse_services,
    rebalance_moves,
)
from engine.errors import NotFound
from engine.persistence import scripts
from engine.persistence.aio import async_redis_for
from engine.persistence.codec import dumps, loads
from engine.persistence.fastpath import runner_for
from engine.persistence.keys import Keys
from engine.persistence.stats_store import StatsStore
from engine.settings import EngineSettings
from engine.stats import Series

log = logging.getLogger(__name__)

CACHE_S = 1.0
STICKY_TTL_S = 3600
CALL_GRACE_MS = 5000
"""A call still counted in flight this long after its timeout was lost (a worker died mid-call)."""


class ServiceNotFound(NotFound):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no service endpoint named {name!r} is configured")


class CallTokens:
    """Unique call tokens, cheaply: a random prefix per process and a counter (no syscall per call)."""

    def __init__(self) -> None:
        self._prefix = uuid.uuid4().hex[:16]
        self._count = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):x}"


@dataclass(frozen=True)
class Lease:
    """A call admitted by the breaker, counted in flight on ``instance`` until released."""

    service: str
    instance_id: str
    url: str
    token: str
    trial: bool
    state: CircuitState


@dataclass(frozen=True)
class Refusal:
    """The breaker (or the lack of a healthy instance) refused the call; nothing was sent."""

    service: str
    reason: str
    retry_after: float
    state: CircuitState


class ServiceRegistry:
    def __init__(self, client: redis.Redis, settings: EngineSettings):
        self.r = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._begin = client.register_script(scripts.BREAKER_BEGIN)
        self._end = client.register_script(scripts.BREAKER_END)
        self._force = client.register_script(scripts.BREAKER_FORCE)
        self._fast = runner_for(client)
        self._aio = async_redis_for(client)
        self._endpoints: dict[str, ServiceEndpoint] = {}
        self._version: str | None = None
        self._checked = 0.0
        self._health: dict[str, tuple[float, dict[str, dict]]] = {}
        self._tokens = CallTokens()

    # ------------------------------------------------------------------ configuration
    def apply(self, config: Any) -> list[ServiceEndpoint]:
        """Validate and store endpoints (each replaces its earlier configuration)."""
        endpoints = parse_services(config)
        pipe = self.r.pipeline(transaction=True)
        for e in endpoints:
            pipe.hset(self.keys.services, e.name, dumps(e.to_dict()))
        pipe.incr(self.keys.services_version)
        pipe.execute()
        self._checked = 0.0
        return endpoints

    def remove(self, name: str) -> None:
        if not self.r.hdel(self.keys.services, name):
            raise ServiceNotFound(name)
        self.r.incr(self.keys.services_version)
        self._checked = 0.0

    def endpoints(self) -> dict[str, ServiceEndpoint]:
        now = time.monotonic()
        if now - self._checked >= CACHE_S:
            version = self.r.get(self.keys.services_version)
            if version != self._version or (not self._endpoints and version is not None):
                raw = self.r.hgetall(self.keys.services)
                self._endpoints = {name: parse_service(name, loads(cfg)) for name, cfg in raw.items()}
                self._version = version
                self._health.clear()
            self._checked = now
        return self._endpoints

    def endpoint(self, name: str) -> ServiceEndpoint:
        found = self.endpoints().get(name)
        if found is None:
            raise ServiceNotFound(name)
        return found

    # ------------------------------------------------------------------ health
    def health(self, name: str) -> dict[str, dict]:
        """Instance id -> last health check result ({status, checked_at, latency_ms, error})."""
        now = time.monotonic()
        cached = self._health.get(name)
        if cached is not None and now - cached[0] < CACHE_S:
            return cached[1]
        raw = self.r.hgetall(self.keys.service_health(name))
        result = {iid: loads(v) for iid, v in raw.items()}
        self._health[name] = (now, result)
        return result

    def update_service_health(
        self, service: str, instance_id: str, status: HealthStatus, latency_ms: float | None = None, error: str = ""
    ) -> None:
        record = {"status": status.value, "checked_at": time.time(), "latency_ms": latency_ms, "error": error}
        self.r.hset(self.keys.service_health(service), instance_id, dumps(record))
        self._health.pop(service, None)

    def healthy_instances(self, endpoint: ServiceEndpoint) -> list:
        """Instances not known to be unhealthy (never checked counts as healthy)."""
        health = self.health(endpoint.name)
        return [i for i in endpoint.instances if health.get(i.id, {}).get("status") != HealthStatus.UNHEALTHY.value]

    # ------------------------------------------------------------------ load balancing + breaker
    def select_instance(self, endpoint: ServiceEndpoint, correlation_id: str | None = None) -> Lease | Refusal:
        """Admit a call through the endpoint's breaker and choose its instance (seed: selectInstance)."""
        call, token = self._begin_call(endpoint, correlation_id)
        return self._begin_result(endpoint, token, self._fast.run(*call))

    async def select_instance_async(
        self, endpoint: ServiceEndpoint, correlation_id: str | None = None
    ) -> Lease | Refusal:
        call, token = self._begin_call(endpoint, correlation_id)
        return self._begin_result(endpoint, token, await self._aio.evalsha_checked(*call))

    def _begin_call(
        self, endpoint: ServiceEndpoint, correlation_id: str | None
    ) -> tuple[tuple[Script, list[str], list[Any]], str]:
        k = self.keys
        now = _ms()
        candidates = self.healthy_instances(endpoint)
        token = self._tokens.next()
        timeout_ms = int((endpoint.timeout or 30.0) * 1000)
        keys = [
            k.breaker(endpoint.name),
            k.sticky(endpoint.name, correlation_id or "-"),
            k.drain(endpoint.name),
            *(k.in_flight(endpoint.name, i.id) for i in candidates),
        ]
        args: list[Any] = [
            now,
            token,
            now + timeout_ms + CALL_GRACE_MS,
            int(endpoint.breaker.open_seconds * 1000),
            endpoint.breaker.half_open_calls,
            1 if endpoint.sticky and correlation_id else 0,
            STICKY_TTL_S,
            endpoint.target_utilization,
        ]
        for i in candidates:
            args += [i.id, i.capacity]
        return (self._begin, keys, args), token

    @staticmethod
    def _begin_result(endpoint: ServiceEndpoint, token: str, reply: Any) -> Lease | Refusal:
        code, what, state, retry_ms, trial = reply
        if int(code) != 1:
            return Refusal(endpoint.name, what, int(retry_ms) / 1000.0, CircuitState(state))
        instance = endpoint.instance(what)
        assert instance is not None
        return Lease(endpoint.name, what, instance.url, token, bool(int(trial)), CircuitState(state))

    def release(self, endpoint: ServiceEndpoint, lease: Lease, ok: bool) -> tuple[CircuitState, str]:
        """Record the call's outcome: it leaves the in-flight count and enters the breaker's window."""
        return self._released(endpoint, self._fast.run(*self._end_call(endpoint, lease, ok)))

    def release_soon(self, endpoint: ServiceEndpoint, lease: Lease, ok: bool) -> None:
        """``release`` on the worker's event loop, without waiting: the call's slot and outcome reach
        Redis with the next write, and nothing waits for the reply (a trip is counted when it comes)."""
        reply = self._aio.evalsha_soon(*self._end_call(endpoint, lease, ok))
        reply.add_done_callback(lambda fut: self._release_done(endpoint, fut))

    def _release_done(self, endpoint: ServiceEndpoint, fut: asyncio.Future) -> None:
        if fut.cancelled():
            return
        error = fut.exception()
        if error is not None:
            log.warning("service %s: recording a call's outcome failed: %s", endpoint.name, error)
            return
        self._released(endpoint, fut.result())

    def _end_call(self, endpoint: ServiceEndpoint, lease: Lease, ok: bool) -> tuple[Script, list[str], list[Any]]:
        k = self.keys
        b = endpoint.breaker
        return (
            self._end,
            [k.breaker(endpoint.name), k.breaker_window(endpoint.name), k.in_flight(endpoint.name, lease.instance_id),
             k.feed],
            [_ms(), lease.token, "ok" if ok else "fail", 1 if lease.trial else 0, b.window, b.min_calls,
             b.failure_rate, int(b.open_seconds * 1000), b.half_open_calls, endpoint.name, self.settings.feed_maxlen],
        )  # fmt: skip

    def _released(self, endpoint: ServiceEndpoint, reply: Any) -> tuple[CircuitState, str]:
        state, transition = reply
        if transition == "OPENED":
            trip = Series("breaker_trips", (endpoint.name,))
            StatsStore(self.r, self.settings.key_prefix).flush(time.time(), {}, {trip: 1})
        return CircuitState(state), transition

    def loads(self, endpoint: ServiceEndpoint) -> list[InstanceLoad]:
        now = _ms()
        health = self.health(endpoint.name)
        pipe = self.r.pipeline(transaction=False)
        for i in endpoint.instances:
            pipe.zcount(self.keys.in_flight(endpoint.name, i.id), now, "+inf")
        counts = pipe.execute()
        return [
            InstanceLoad(i.id, i.capacity, int(n), health.get(i.id, {}).get("status") != HealthStatus.UNHEALTHY.value)
            for i, n in zip(endpoint.instances, counts, strict=True)
        ]

    def claim_health_round(self, name: str, owner: str, ttl_ms: int) -> bool:
        """One worker checks a service per round: True if ``owner`` won this round's lock."""
        return bool(self.r.set(self.keys.health_lock(name), owner, nx=True, px=ttl_ms))

    def rebalance_load(self, endpoint: ServiceEndpoint) -> tuple[str, str] | None:
        """Past the spread threshold, move sticky sessions off the busiest instance (seed: rebalanceLoad)."""
        move = rebalance_moves(self.loads(endpoint), endpoint.rebalance_threshold)
        if move is not None:
            self.r.set(self.keys.drain(endpoint.name), move[0], px=int(endpoint.health.interval * 1000))
        return move

    # ------------------------------------------------------------------ breaker state
    def get_circuit_breaker_state(self, name: str) -> dict[str, Any]:
        endpoint = self.endpoint(name)
        raw = self.r.hgetall(self.keys.breaker(name))
        window = self.r.lrange(self.keys.breaker_window(name), 0, -1)
        open_until = int(raw.get("open_until", 0) or 0)
        state = circuit_state(raw.get("state", CircuitState.CLOSED.value), open_until, _ms())
        fails = sum(1 for v in window if v == "1")
        return {
            "service": name,
            "state": state,
            "forced": raw.get("forced", "") or None,
            "open_until": open_until / 1000.0 if open_until else None,
            "trips": int(raw.get("trips", 0) or 0),
            "calls": int(raw.get("calls", 0) or 0),
            "failures": int(raw.get("failures", 0) or 0),
            "window_calls": len(window),
            "window_failure_rate": fails / len(window) if window else 0.0,
            "policy": endpoint.to_dict()["breaker"],
        }

    def force(self, name: str, mode: ForcedState | str, by: str = "") -> dict[str, Any]:
        """Force a breaker OPEN or CLOSED until reset; RESET clears the force and the window."""
        self.endpoint(name)
        mode = str(mode).upper() or "RESET"
        if mode not in ("OPEN", "CLOSED", "RESET"):
            raise ValueError(f"breaker mode must be OPEN, CLOSED or RESET, got {mode!r}")
        self._fast.run(
            self._force,
            [self.keys.breaker(name), self.keys.breaker_window(name), self.keys.feed],
            [mode, _ms(), name, self.settings.feed_maxlen, by],
        )
        return self.get_circuit_breaker_state(name)


def _ms() -> int:
    return int(time.time() * 1000)
