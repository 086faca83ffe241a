"""Dispatch: claim due workflows, acquire, renew and release their leases, a dispatcher's exit, the
safety-net tick."""

from __future__ import annotations

from engine.persistence.scripts.wake import WAKE

CLAIM = """
-- KEYS: 1 sched, 2 idle
-- ARGV: 1 now ms, 2 lease until ms, 3 max count, 4 dispatcher id, 5 idle until ms
-- Returns {n, more, id...}; with n = 0: {0, next due ms or ''} after registering as idle
redis.call('ZREM', KEYS[2], ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
if #ids == 0 then
  if tonumber(ARGV[5]) > 0 then redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4]) end
  local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, nxt[2] or ''}
end
for i = 1, #ids do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ids[i]) end
local more = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
local out = {#ids, #more}
for i = 1, #ids do out[#out + 1] = ids[i] end
return out
"""

ACQUIRE = """
-- KEYS: 1 state, 2 sched, 3 events
-- ARGV: 1 wid, 2 owner, 3 lease until ms
-- Returns {fence, version, snapshot, snapshot version, tail entries newest first...} or {0} when the
-- workflow no longer exists. The tail is the events after the snapshot.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {0}
end
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'lease_until', ARGV[3])
local st = redis.call('HMGET', KEYS[1], 'v', 'snap', 'sv')
local out = {fence, st[1], st[2], st[3] or st[1]}
local behind = tonumber(st[1]) - tonumber(st[3] or st[1])
if behind > 0 then
  local tail = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', behind)
  for i = 1, #tail do out[#out + 1] = tail[i][2] end
end
return out
"""

RENEW = """
-- KEYS: 1 state, 2 sched
-- ARGV: 1 wid, 2 fence, 3 lease until ms
-- Extends a held lease; a released (lease_until 0) or fenced-out lease is left alone.
local st = redis.call('HMGET', KEYS[1], 'fence', 'lease_until')
if st[1] ~= ARGV[2] or tonumber(st[2] or '0') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[3])
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
return 1
"""

RELEASE = """
-- KEYS: 1 state, 2 sched
-- ARGV: 1 wid, 2 fence, 3 next look ms
-- Hands back a workflow this worker claimed but will not run (shutdown): runnable again at once.
local st = redis.call('HGET', KEYS[1], 'fence')
if st ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', 0)
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
return 1
"""

EXIT = """
-- KEYS: 1 idle, 2 wake, 3 sched
-- ARGV: 1 dispatcher id, 2 now ms
-- A dispatcher may stop only if no wake token is waiting and nothing is due; atomic with CREATE's
-- check of idle dispatchers, so no start is left without a dispatcher.
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('LLEN', KEYS[2]) > 0 then return 1 end
if #redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[2], 'LIMIT', 0, 1) > 0 then return 1 end
return 0
"""

TICK = (
    WAKE
    + """
-- KEYS: 1 sched, 2 idle, 3 wake, 4 queued flag
-- ARGV: 1 now ms, 2 flag ttl ms
-- Safety net: if work is due, wake a dispatcher or ask for a dispatch job.
if #redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1) == 0 then return 0 end
return wake(KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
"""
)
