"""A service's shared state in Redis: idempotency records, in-progress markers, effects ledger, stock.

Keys (``p`` = prefix, ``s`` = service):

- ``p:idem:s``       HASH ``op|key`` -> ``"<status>:<body json>"``, the first successful response per key
- ``p:inprog:s:op|key`` STRING, the in-progress marker (``SET NX PX``, renewed while its request runs)
- ``p:effects:s``    HASH ``op|key`` -> times the effect was applied (exactly-once: all values 1)
- ``p:totals:s``     HASH ``op`` -> effects applied per operation
- ``p:forwards:s``   HASH ``workflow_id|step_id`` -> the forward's result, so an undo without output finds it
- ``p:stock:s``      HASH sku -> units available (absent: the default)
- ``p:holds:s``      HASH reservation id -> ``"<quantity>|<sku>"``, what a release gives back

Applying an effect is one Lua script: it re-checks the idempotency record, moves stock, bumps the
ledger and stores the response atomically, so an effect is never applied without its record (or twice).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis.asyncio as aredis

from sim.services import DEFAULT_STOCK

APPLY = """
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev then return {'replay', prev} end
local mode = ARGV[5]
if mode == 'hold' then
  local available = tonumber(redis.call('HGET', KEYS[5], ARGV[6]) or ARGV[8])
  local wanted = tonumber(ARGV[7])
  if available < wanted then return {'insufficient', tostring(available)} end
  redis.call('HSET', KEYS[5], ARGV[6], available - wanted)
  redis.call('HSET', KEYS[6], ARGV[9], ARGV[7] .. '|' .. ARGV[6])
elseif mode == 'unhold' and ARGV[9] ~= '' then
  local hold = redis.call('HGET', KEYS[6], ARGV[9])
  if hold then
    local sep = string.find(hold, '|', 1, true)
    local sku = string.sub(hold, sep + 1)
    local available = tonumber(redis.call('HGET', KEYS[5], sku) or ARGV[8])
    redis.call('HSET', KEYS[5], sku, available + tonumber(string.sub(hold, 1, sep - 1)))
    redis.call('HDEL', KEYS[6], ARGV[9])
  end
end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[4], ARGV[4], ARGV[3]) end
return {'applied', ARGV[3]}
"""

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def encode_record(status: int, body_json: str) -> str:
    return f"{status}:{body_json}"


def decode_record(record: str) -> tuple[int, str]:
    status, _, body = record.partition(":")
    return int(status), body


@dataclass
class Applied:
    outcome: str
    """``applied``, ``replay`` (another request stored a response first) or ``insufficient``."""
    record: str = ""
    available: int = 0


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class ServiceStore:
    MARKER_TTL_MS = 2000
    """An in-progress marker lives this long unless renewed: a killed instance's marker soon expires."""

    def __init__(self, client: aredis.Redis, prefix: str, service: str):
        self.r = client
        self.prefix = prefix
        self.service = service
        base = f"{prefix}:{{}}:{service}"
        self.idem, self.effects_key, self.totals_key = (base.format(n) for n in ("idem", "effects", "totals"))
        self.forwards, self.stock_key, self.holds = (base.format(n) for n in ("forwards", "stock", "holds"))
        self._apply = client.register_script(APPLY)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)

    def marker_key(self, field: str) -> str:
        return f"{self.prefix}:inprog:{self.service}:{field}"

    async def stored(self, field: str) -> str | None:
        return await self.r.hget(self.idem, field)

    async def try_mark(self, field: str) -> str | None:
        """Take the in-progress marker of `field`; its token, or None when another request holds it."""
        token = uuid.uuid4().hex
        ok = await self.r.set(self.marker_key(field), token, nx=True, px=self.MARKER_TTL_MS)
        return token if ok else None

    async def renew_mark(self, field: str, token: str) -> None:
        await self._renew(keys=[self.marker_key(field)], args=[token, self.MARKER_TTL_MS])

    async def unmark(self, field: str, token: str) -> None:
        await self._release(keys=[self.marker_key(field)], args=[token])

    async def apply(
        self,
        field: str,
        operation: str,
        record: str,
        forward_field: str = "",
        mode: str = "",
        sku: str = "",
        quantity: int = 0,
        hold_id: str = "",
    ) -> Applied:
        outcome, value = await self._apply(
            keys=[self.idem, self.effects_key, self.totals_key, self.forwards, self.stock_key, self.holds],
            args=[field, operation, record, forward_field, mode, sku, quantity, DEFAULT_STOCK, hold_id],
        )
        if outcome == "insufficient":
            return Applied(outcome, available=int(value))
        return Applied(outcome, record=value)

    async def forward_of(self, workflow_id: str, step_id: str) -> str | None:
        """The recorded forward result (body JSON) of a workflow's step, if this service applied one."""
        record = await self.r.hget(self.forwards, f"{workflow_id}|{step_id}")
        return decode_record(record)[1] if record else None

    async def effects(self) -> tuple[dict[str, int], dict[str, int]]:
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.effects_key)
            pipe.hgetall(self.totals_key)
            effects, totals = await pipe.execute()
        return {k: int(v) for k, v in effects.items()}, {k: int(v) for k, v in totals.items()}

    async def stock(self) -> dict[str, int]:
        return {k: int(v) for k, v in (await self.r.hgetall(self.stock_key)).items()}

    async def set_stock(self, levels: dict[str, int]) -> None:
        if levels:
            await self.r.hset(self.stock_key, mapping=levels)

    async def reset(self) -> int:
        """Delete this service's keys (records, markers, ledger, stock, holds); the number deleted."""
        keys = [self.idem, self.effects_key, self.totals_key, self.forwards, self.stock_key, self.holds]
        pattern = f"{_glob_escape(self.prefix)}:inprog:{_glob_escape(self.service)}:*"
        keys += [k async for k in self.r.scan_iter(match=pattern, count=500)]
        return int(await self.r.delete(*keys))
