"""Live worker processes: each heartbeat stamps the worker's name with the time."""

from __future__ import annotations

import redis

from engine.persistence.keys import Keys


class WorkerRegistry:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.r = client
        self.keys = keys

    def beat(self, name: str, now_ms: int) -> None:
        self.r.zadd(self.keys.workers, {name: now_ms})

    def leave(self, name: str) -> None:
        self.r.zrem(self.keys.workers, name)

    def alive(self, since_ms: int) -> list[str]:
        """Workers whose last heartbeat is at or after ``since_ms``."""
        return list(self.r.zrangebyscore(self.keys.workers, since_ms, "+inf"))

    def seen(self) -> dict[str, float]:
        """Every worker ever recorded, with the ms of its last heartbeat."""
        return {name: float(ms) for name, ms in self.r.zrange(self.keys.workers, 0, -1, withscores=True)}

    def last_beat(self) -> float | None:
        """The ms of the freshest heartbeat of any worker; None when no worker ever registered."""
        newest = self.r.zrevrange(self.keys.workers, 0, 0, withscores=True)
        return float(newest[0][1]) if newest else None
