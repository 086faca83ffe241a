"""A busy worker's ear for new work: it waits on the wake list on a connection of its own, so the
blocking read never holds up the hot path's pipelined calls."""

from __future__ import annotations

import redis

from engine.persistence.aio import Address, AsyncRedis
from engine.persistence.keys import Keys


class WakeListener:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.keys = keys
        self._conn = AsyncRedis(lambda: Address.of(client))

    async def wait(self, timeout_s: float) -> bool:
        """True when a wake token arrived (a start or a due timer) within ``timeout_s``."""
        # BLPOP takes fractional seconds; 0 would block forever.
        reply = await self._conn.execute("BLPOP", self.keys.wake, f"{max(timeout_s, 0.01):.3f}")
        return reply is not None

    def close(self) -> None:
        self._conn.close()
