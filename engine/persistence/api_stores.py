"""What the control API keeps in Redis and reads from it: API key records, the audit log, the per-key
rate limit buckets, the live feed, and the few index reads of its health and count endpoints.

Calls off the request path (key management, audit pages, feed pages) share the engine's connection
pool; those on it (key lookups, rate limits, audit writes, SSE) use an asyncio client to the same
server, which connects on first use. What the records mean (hashing, roles, the audit entry's fields,
the 429) is the API's; these stores only keep them.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

import redis
import redis.asyncio as aioredis

from engine.persistence.connection import connect_async
from engine.persistence.event_stream import EventFeed
from engine.persistence.keys import Keys
from engine.persistence.stores import Stores

BOOTSTRAP_LOCK_MS = 10_000

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


class ApiKeyStore:
    """Stored API keys: an opaque record (the API's JSON, holding only a hash) per key id."""

    def __init__(self, client: redis.Redis, aclient: aioredis.Redis, keys: Keys):
        self.r, self.ar, self.keys = client, aclient, keys

    async def find(self, key_id: str) -> str | None:
        return await self.ar.hget(self.keys.api_keys, key_id)

    def records(self) -> dict[str, str]:
        return self.r.hgetall(self.keys.api_keys)

    def put(self, key_id: str, record: str) -> None:
        self.r.hset(self.keys.api_keys, key_id, record)

    def remove(self, key_id: str) -> str | None:
        """The removed record, or None when there was none."""
        raw = self.r.hget(self.keys.api_keys, key_id)
        if raw is None or not self.r.hdel(self.keys.api_keys, key_id):
            return None
        return raw

    def put_first(self, key_id: str, record: str) -> bool:
        """Store this record only while no key is stored, and only in one of several processes
        bootstrapping at once (a lock held for the attempt). True when it was stored."""
        if self.r.hlen(self.keys.api_keys):
            return False
        token = secrets.token_hex(8)
        if not self.r.set(self.keys.api_bootstrap, token, nx=True, px=BOOTSTRAP_LOCK_MS):
            return False  # another process is creating the first key right now
        try:
            if self.r.hlen(self.keys.api_keys):
                return False
            self.r.hset(self.keys.api_keys, key_id, record)
            return True
        finally:
            self.r.delete(self.keys.api_bootstrap)


class AuditStore:
    """The audit log: a capped stream of flat string entries, read newest first."""

    def __init__(self, client: redis.Redis, aclient: aioredis.Redis, keys: Keys):
        self.r, self.ar, self.key = client, aclient, keys.api_audit

    async def append(self, fields: Mapping[str, str], maxlen: int) -> str:
        return await self.ar.xadd(self.key, dict(fields), maxlen=maxlen, approximate=True)

    def before(self, entry_id: str | None, count: int) -> list[tuple[str, dict[str, str]]]:
        """Up to ``count`` entries older than ``entry_id`` (None: from the newest), newest first."""
        if entry_id is not None and entry_id.strip("0-") == "":
            return []  # nothing is older than 0-0
        upper = f"({entry_id}" if entry_id else "+"
        return self.r.xrevrange(self.key, max=upper, min="-", count=count)

    def size(self) -> int:
        return int(self.r.xlen(self.key))


class RateLimitStore:
    """Token buckets per API key, shared by every API process (the server's clock refills them)."""

    def __init__(self, aclient: aioredis.Redis, keys: Keys):
        self.keys = keys
        self._script = aclient.register_script(TOKEN_BUCKET)

    async def take(self, key_id: str, per_ms: float, burst: int) -> int:
        """Take a token from ``key_id``'s bucket: 0 when there was one, else the ms until one is back."""
        ok, wait_ms = await self._script(keys=[self.keys.api_rate(key_id)], args=[repr(per_ms), burst])
        return 0 if int(ok) else max(1, int(wait_ms))


class ApiStores:
    """Every store of the control API over the engine's :class:`Stores` (same server, same prefix)."""

    def __init__(self, stores: Stores, *, socket_timeout: float | None = None):
        self._r, self._keys = stores.client, stores.keys
        self.aclient = connect_async(stores.settings, stores.url, socket_timeout=socket_timeout)
        self.api_keys = ApiKeyStore(stores.client, self.aclient, stores.keys)
        self.audit = AuditStore(stores.client, self.aclient, stores.keys)
        self.rate_limits = RateLimitStore(self.aclient, stores.keys)
        self.feed = EventFeed(stores.client, self.aclient, stores.keys)

    async def ping(self) -> bool:
        return bool(await self.aclient.ping())

    async def live_worker_count(self, since_ms: int) -> int:
        """Workers whose last heartbeat is at or after ``since_ms``."""
        return int(await self.aclient.zcount(self._keys.workers, since_ms, "+inf"))

    def live_workers(self, since_ms: int) -> list[tuple[str, int]]:
        """(name, ms of the last heartbeat) of the workers seen at or after ``since_ms``, oldest beat first."""
        rows = self._r.zrangebyscore(self._keys.workers, since_ms, "+inf", withscores=True)
        return [(name, int(ms)) for name, ms in rows]

    def attention_count(self) -> int:
        """Workflows that need an operator now."""
        return int(self._r.zcard(self._keys.attention))

    async def aclose(self) -> None:
        await self.aclient.aclose()
