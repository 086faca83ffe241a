"""Bulkheads: the calls a worker has in flight to each service, bounded by the service's capacity.

A service's capacity is the sum of its healthy instances' ``capacity``; each live worker takes an equal
share of it (the load balancer then aims each instance at its target utilization, 85 % by default). A
step that calls a service whose share is full waits for a slot before its attempt starts (before
anything is recorded), and its saga does not count against the worker's ``max_in_flight`` meanwhile, so
sagas that never call a slow or failing service keep the worker's capacity for themselves. Past a bound
on waiting sagas, a saga is handed back to the schedule and waits there, durably.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict, deque

from engine.domain.services import ServiceEndpoint
from engine.persistence.service_registry import ServiceRegistry

REFRESH_S = 2.0
"""How long a service's share is kept before its healthy capacity is read again."""


class Bulkheads:
    def __init__(self, registry: ServiceRegistry, max_waiting: int = 256):
        self.registry = registry
        self.max_waiting = max_waiting
        """Sagas waiting for a slot at once in this worker, over every service; past it they are handed back."""
        self.live_workers = 1
        """Set by the worker's heartbeat: the service capacity is shared among this many workers."""
        self.in_flight: dict[str, int] = defaultdict(int)
        self._waiters: dict[str, deque[asyncio.Future]] = defaultdict(deque)
        self._shares: dict[str, tuple[float, int]] = {}

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiters.values())

    def share(self, endpoint: ServiceEndpoint) -> int:
        """This worker's slots for the service: its share of the healthy instances' summed capacity."""
        now = time.monotonic()
        cached = self._shares.get(endpoint.name)
        if cached is not None and now - cached[0] < REFRESH_S:
            return cached[1]
        healthy = self.registry.healthy_instances(endpoint)
        # No healthy instance: let calls through, to be refused at once (and retried) by the breaker.
        capacity = sum(i.capacity for i in healthy) or sum(i.capacity for i in endpoint.instances) or 1
        share = max(1, math.ceil(capacity / max(1, self.live_workers)))
        self._shares[endpoint.name] = (now, share)
        return share

    def can_wait(self) -> bool:
        return self.waiting < self.max_waiting

    async def take(self, endpoint: ServiceEndpoint, until_monotonic: float | None) -> bool:
        """A slot for one call to the service; False if none came before ``until`` (the saga's deadline)."""
        name = endpoint.name
        if self.in_flight[name] < self.share(endpoint) and not self._waiters[name]:
            self.in_flight[name] += 1
            return True
        fut = asyncio.get_running_loop().create_future()
        self._waiters[name].append(fut)
        timeout = None if until_monotonic is None else max(until_monotonic - time.monotonic(), 0.0)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except TimeoutError:
            if fut.done() and not fut.cancelled():
                return True  # granted as the wait timed out: keep it
            fut.cancel()
            return False
        finally:
            if fut in self._waiters[name]:
                self._waiters[name].remove(fut)

    def give_back(self, endpoint: ServiceEndpoint) -> None:
        """The call ended (however): its slot goes to the longest-waiting saga, or back to the pool."""
        self.in_flight[endpoint.name] = max(0, self.in_flight[endpoint.name] - 1)
        self._grant(endpoint)

    def _grant(self, endpoint: ServiceEndpoint) -> None:
        """Hand free slots to waiters (after the share grew, or a slot came back with nobody queued)."""
        name = endpoint.name
        waiters = self._waiters[name]
        while waiters and self.in_flight[name] < self.share(endpoint):
            fut = waiters.popleft()
            if not fut.done():
                self.in_flight[name] += 1
                fut.set_result(True)
