"""Token bucket per API key, shared by every API process (``engine.RateLimitStore``): control requests only."""

from __future__ import annotations

import math

from api.errors import ApiProblem
from engine import RateLimitStore


class RateLimiter:
    def __init__(self, store: RateLimitStore, per_second: float, burst: int):
        self.store = store
        self.per_ms = per_second / 1000.0
        self.burst = max(1, burst)
        self.enabled = per_second > 0

    async def take(self, key_id: str) -> None:
        """One control request of ``key_id``; ApiProblem 429 with Retry-After when over the limit."""
        if not self.enabled:
            return
        wait_ms = await self.store.take(key_id, self.per_ms, self.burst)
        if not wait_ms:
            return
        retry_after = max(1, math.ceil(wait_ms / 1000))
        raise ApiProblem(
            429,
            "rate-limited",
            f"too many control requests for key {key_id}: {self.per_ms * 1000:g}/s sustained, bursts of "
            f"{self.burst}; retry in {retry_after}s",
            headers={"Retry-After": str(retry_after)},
        )
