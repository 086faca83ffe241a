"""Token bucket per API key in Redis, shared by every API process: control requests only."""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from api.errors import ApiProblem
from engine.persistence.keys import Keys

TOKEN_BUCKET = """
-- KEYS: 1 bucket hash (t tokens, ts ms)
-- ARGV: 1 tokens per ms, 2 burst
-- Takes one token if there is one. Returns {1, 0} | {0, ms until a token is back}. Time is the
-- server's, so API processes on hosts with skewed clocks share one bucket correctly.
local now_t = redis.call('TIME')
local now = now_t[1] * 1000 + math.floor(now_t[2] / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
if tokens < 1 then
  redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', now)
  return {0, math.ceil((1 - tokens) / rate)}
end
redis.call('HSET', KEYS[1], 't', tostring(tokens - 1), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return {1, 0}
"""


class RateLimiter:
    def __init__(self, ar: aioredis.Redis, keys: Keys, per_second: float, burst: int):
        self.keys = keys
        self.per_ms = per_second / 1000.0
        self.burst = max(1, burst)
        self.enabled = per_second > 0
        self._script = ar.register_script(TOKEN_BUCKET)

    async def take(self, key_id: str) -> None:
        """One control request of ``key_id``; ApiProblem 429 with Retry-After when over the limit."""
        if not self.enabled:
            return
        ok, wait_ms = await self._script(keys=[self.keys.api_rate(key_id)], args=[repr(self.per_ms), self.burst])
        if int(ok):
            return
        retry_after = max(1, math.ceil(int(wait_ms) / 1000))
        raise ApiProblem(
            429,
            "rate-limited",
            f"too many control requests for key {key_id}: {self.per_ms * 1000:g}/s sustained, bursts of "
            f"{self.burst}; retry in {retry_after}s",
            headers={"Retry-After": str(retry_after)},
        )
